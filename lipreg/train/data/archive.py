"""Downloaded tar archives, unpacked safely and atomically: :func:`extract_tar`,
:func:`fetch_archive` and :func:`repair_from_archive`.

Only regular files and directories whose names stay inside the destination are unpacked: an
absolute name, a ``..`` component, a symbolic or hard link, a device or a FIFO rejects the
whole archive (:class:`UnsafeArchiveError`), so a hostile or damaged archive can write
nothing outside its folder. Files are written by lipreg (``open(..., "xb")``), never by
``tarfile``'s extraction, so no owner, mode bits or timestamps come from the archive.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath

from lipreg.train.data.download import (
    TEMPORARY_PREFIX,
    Remote,
    announce,
    download,
    download_timeout,
    removed_on_sigterm,
)


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


def _parts(member: tarfile.TarInfo, source: str) -> tuple[str, ...]:
    """The path components of ``member`` below the destination; raises if it leaves it or is
    not a regular file or directory (``source`` names the archive in the message)."""
    name = member.name
    if not (member.isreg() or member.isdir()):
        raise UnsafeArchiveError(f"{source}: {name!r} is {_kind(member)}; refusing to unpack it")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.anchor or ".." in posix.parts or ".." in windows.parts:
        raise UnsafeArchiveError(
            f"{source}: {name!r} would be written outside the destination (an absolute path "
            "or a '..' component); refusing to unpack it"
        )
    return tuple(p for p in posix.parts if p != ".")


def extract_tar(archive: Path, dest: Path, *, source: str | None = None) -> None:
    """Unpack the tar ``archive`` (any compression ``tarfile`` reads) into the directory
    ``dest`` (created if absent; meant to be new and empty), in one pass.

    Raises :class:`UnsafeArchiveError` at the first entry that is a link, a device, a FIFO or
    named outside ``dest``, and ``FileExistsError`` at a repeated file name; whatever was
    written before stays in ``dest``, so unpack into a temporary directory
    (:func:`fetch_archive` does). Messages name ``source`` (e.g. the URL the archive came
    from), by default ``archive``.
    """
    named = source or str(archive)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = _parts(member, named)
            if not parts:  # the archive's own root, "."
                continue
            path = dest.joinpath(*parts)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            contents = tar.extractfile(member)
            assert contents is not None  # a regular file always has contents
            with contents, path.open("xb") as out:
                shutil.copyfileobj(contents, out)


@contextmanager
def _unpacked(remote: Remote, root: Path, folder: str, progress: bool) -> Iterator[Path]:
    """``folder`` of the archive ``remote``, downloaded, checked and unpacked into a hidden
    temporary directory in ``root`` (``.lipreg-download-*``, on ``root``'s filesystem so that
    renames are atomic), deleted with everything left in it when the block ends, however it
    ends (an error, Ctrl-C, SIGTERM)."""
    root.mkdir(parents=True, exist_ok=True)
    with (
        removed_on_sigterm(),
        tempfile.TemporaryDirectory(dir=root, prefix=TEMPORARY_PREFIX) as tmp,
    ):
        archive = Path(tmp) / remote.filename
        download(remote, archive, progress=progress)
        unpacked = Path(tmp) / "unpacked"
        extract_tar(archive, unpacked, source=remote.url)
        source = unpacked / folder
        if not source.is_dir():
            found = sorted(p.name for p in unpacked.iterdir())
            raise ValueError(
                f"{remote.url} holds no folder {folder!r} (it holds {found}); it is not the "
                "expected archive"
            )
        yield source


def fetch_archive(remote: Remote, root: Path, folder: str, *, progress: bool = True) -> Path:
    """``root / folder``, downloaded and unpacked from the tar archive ``remote`` if it is
    absent or empty.

    The archive (``remote`` as the environment sets it,
    :meth:`~lipreg.train.data.download.Remote.resolved`) is downloaded and checked
    (:func:`~lipreg.train.data.download.download`) into a hidden temporary directory in
    ``root`` (``.lipreg-download-*``), unpacked there (:func:`extract_tar`), and its
    top-level ``folder`` is renamed to ``root / folder`` (atomic on one filesystem); the
    temporary directory, archive included, is then deleted. Whatever goes wrong
    (:class:`~lipreg.train.data.download.DownloadError`, :class:`UnsafeArchiveError`, an
    archive without ``folder``, Ctrl-C, SIGTERM), nothing is left under ``root``. If another
    process completes the same folder first, its copy is kept.
    """
    remote = remote.resolved()
    target = root / folder
    if target.is_dir() and any(target.iterdir()):
        return target
    download_timeout()  # a bad setting stops here, before anything is created
    announce(remote, target)
    with _unpacked(remote, root, folder, progress) as source:
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # an empty folder holds nothing to keep (and blocks rename on Windows)
        try:
            os.rename(source, target)
        except OSError:
            if not target.is_dir():  # not a concurrent download that finished first
                raise
    return target


def repair_from_archive(
    remote: Remote,
    target: Path,
    folder: str,
    names: Sequence[str],
    *,
    why: str = "",
    progress: bool = True,
) -> Path:
    """``target``, an existing directory, with its files ``names`` replaced by those of
    ``folder`` in the tar archive ``remote`` (downloaded, checked and unpacked as by
    :func:`fetch_archive`, in a temporary directory beside ``target``).

    Every other file of ``target`` is kept as it is. Each file is renamed into place
    (``os.replace``, atomic), so an interruption leaves every file either as it was or as
    in the archive. ``why`` (e.g. ``"data_batch_4 (missing)"``) goes into the line announcing
    the repair. Raises ``ValueError`` if the archive lacks one of ``names``.
    """
    remote = remote.resolved()
    download_timeout()
    print(
        f"lipreg: repairing {target}: {why or ', '.join(names)}; taking the file"
        f"{'s' if len(names) > 1 else ''} from {remote.url}",
        file=sys.stderr,
    )
    with _unpacked(remote, target.parent, folder, progress) as source:
        absent = [name for name in names if not (source / name).is_file()]
        if absent:
            raise ValueError(
                f"{remote.url} holds no {', '.join(f'{folder}/{n}' for n in absent)}; it is "
                "not the expected archive"
            )
        for name in names:
            os.replace(source / name, target / name)
    return target
