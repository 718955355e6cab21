"""Downloaded tar archives, unpacked safely and atomically: :func:`extract_tar` and
:func:`fetch_archive`.

Only regular files and directories whose names stay inside the destination are unpacked: an
absolute name, a ``..`` component, a symbolic or hard link, a device or a FIFO rejects the
whole archive (:class:`UnsafeArchiveError`), so a hostile or damaged archive can write
nothing outside its folder. Files are written by lipreg (``open(..., "xb")``), never by
``tarfile``'s extraction, so no owner, mode bits or timestamps come from the archive.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from lipreg.train.data.download import Remote, announce, download


class UnsafeArchiveError(ValueError):
    """An archive holds an entry that is not a plain file or directory inside its folder
    (nothing of it is kept)."""


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    return f"an entry of tar type {member.type!r}"


def _parts(member: tarfile.TarInfo, archive: Path) -> tuple[str, ...]:
    """The path components of ``member`` below the destination; raises if it leaves it or is
    not a regular file or directory."""
    name = member.name
    if not (member.isreg() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: {name!r} is {_kind(member)}; refusing to unpack it")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.anchor or ".." in posix.parts or ".." in windows.parts:
        raise UnsafeArchiveError(
            f"{archive}: {name!r} would be written outside the destination (an absolute path "
            "or a '..' component); refusing to unpack it"
        )
    return tuple(p for p in posix.parts if p != ".")


def extract_tar(archive: Path, dest: Path) -> None:
    """Unpack the tar ``archive`` (any compression ``tarfile`` reads) into the directory
    ``dest`` (created if absent; meant to be new and empty), in one pass.

    Raises :class:`UnsafeArchiveError` at the first entry that is a link, a device, a FIFO or
    named outside ``dest``, and ``FileExistsError`` at a repeated file name; whatever was
    written before stays in ``dest``, so unpack into a temporary directory
    (:func:`fetch_archive` does).
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = _parts(member, archive)
            if not parts:  # the archive's own root, "."
                continue
            path = dest.joinpath(*parts)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has contents
            with source, path.open("xb") as out:
                shutil.copyfileobj(source, out)


def fetch_archive(remote: Remote, root: Path, folder: str, *, progress: bool = True) -> Path:
    """``root / folder``, downloaded and unpacked from the tar archive ``remote`` if it is
    absent or empty.

    The archive is downloaded and checked (:func:`~lipreg.train.data.download.download`)
    into a hidden temporary directory in ``root``, unpacked there (:func:`extract_tar`), and
    its top-level ``folder`` is renamed to ``root / folder`` (atomic on one filesystem); the
    temporary directory, archive included, is then deleted. Whatever goes wrong
    (:class:`~lipreg.train.data.download.DownloadError`, :class:`UnsafeArchiveError`, an
    archive without ``folder``, Ctrl-C), nothing is left under ``root / folder``. If another
    process completes the same folder first, its copy is kept.
    """
    target = root / folder
    if target.is_dir() and any(target.iterdir()):
        return target
    root.mkdir(parents=True, exist_ok=True)
    announce(remote, target)
    with tempfile.TemporaryDirectory(dir=root, prefix=".lipreg-download-") as tmp:
        archive = Path(tmp) / remote.filename
        download(remote, archive, progress=progress)
        unpacked = Path(tmp) / "unpacked"
        extract_tar(archive, unpacked)
        source = unpacked / folder
        if not source.is_dir():
            found = sorted(p.name for p in unpacked.iterdir())
            raise ValueError(
                f"{remote.url} holds no folder {folder!r} (it holds {found}); it is not the "
                "expected archive"
            )
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # an empty folder holds nothing to keep (and blocks rename on Windows)
        try:
            os.rename(source, target)
        except OSError:
            if not target.is_dir():  # not a concurrent download that finished first
                raise
    return target
