"""Verified downloads into lipreg's cache: :func:`cache_dir`, :class:`Remote`, :func:`download`
and :func:`fetch_file`.

A file is streamed from its URL into a temporary file while its digest is computed, compared
with the published checksum, and only then renamed to its final name (``os.replace``, atomic
within a filesystem). An interrupted, truncated or corrupt transfer therefore never leaves a
file under the final name, and a file found under it was verified when it was written.
Standard library only (``urllib``, ``hashlib``, ``tempfile``); the progress bar is tqdm's, shown
on terminals.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

CACHE_ENV = "LIPREG_CACHE"
"""The environment variable that moves :func:`cache_dir`."""

_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The directory where lipreg keeps what it downloads (CIFAR-10, Inception weights).

    ``$LIPREG_CACHE`` when set; otherwise ``$XDG_CACHE_HOME/lipreg`` when ``XDG_CACHE_HOME``
    is an absolute path (the XDG base-directory rule: relative values are ignored), else
    ``~/.cache/lipreg``, on every platform, as ``torch.hub`` and Hugging Face do. Nothing is
    created until something is downloaded.
    """
    own = os.environ.get(CACHE_ENV)
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "lipreg"


@dataclass(frozen=True)
class Remote:
    """A file published at ``url`` with its checksum.

    Attributes:
        url: where to get it (``https://``; the tests serve files on ``http://127.0.0.1``).
        filename: the name it is stored under.
        algorithm: the ``hashlib`` name of the published checksum, ``"md5"`` or ``"sha256"``.
        digest: the published checksum, lowercase hexadecimal.
    """

    url: str
    filename: str
    algorithm: str
    digest: str

    def __post_init__(self) -> None:
        size = _hash(self.algorithm).digest_size
        if len(self.digest) != 2 * size or self.digest.strip("0123456789abcdef"):
            raise ValueError(
                f"digest must be the {2 * size} lowercase hexadecimal digits of a "
                f"{self.algorithm} checksum, got {self.digest!r}"
            )


class DownloadError(OSError):
    """Fetching a file failed (network error, truncated transfer, checksum mismatch); nothing
    is left under its final name."""


def file_digest(path: Path, algorithm: str) -> str:
    """The ``algorithm`` (a ``hashlib`` name) hex digest of the file at ``path``."""
    h = _hash(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(remote: Remote, path: Path, *, progress: bool = True, timeout: float = 60.0) -> None:
    """Stream ``remote.url`` into ``path`` (created or truncated) and check its checksum.

    Raises :class:`DownloadError`, with ``path`` removed, when the transfer fails, ends before
    the announced ``Content-Length``, or gives a digest other than ``remote.digest``; any
    other exception (``KeyboardInterrupt`` included) also removes ``path``. ``progress`` shows
    a progress bar when stderr is a terminal; ``timeout`` (seconds) bounds each network
    operation, not the whole transfer.
    """
    try:
        with path.open("wb") as f:
            got = _stream(remote, f, progress, timeout)
        if got != remote.digest:
            raise DownloadError(
                f"{remote.url} gave a file whose {remote.algorithm} is {got}, not the published "
                f"{remote.digest}: it is damaged or not the official file, so it was deleted; "
                "try again later"
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def fetch_file(remote: Remote, folder: Path, *, progress: bool = True) -> Path:
    """``folder / remote.filename``, downloaded first (:func:`download`) if it is absent.

    The download goes to a hidden temporary file in ``folder`` and is renamed into place once
    verified; a file already there is checked against ``remote.digest`` before it is returned
    (a mismatch raises :class:`DownloadError` naming the file to delete).
    """
    target = folder / remote.filename
    if target.is_file():
        got = file_digest(target, remote.algorithm)
        if got != remote.digest:
            raise DownloadError(
                f"{target} has {remote.algorithm} {got}, not the published {remote.digest} of "
                f"{remote.url} (a damaged or foreign file); delete it to download it again"
            )
        return target
    folder.mkdir(parents=True, exist_ok=True)
    announce(remote, target)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{remote.filename}.", suffix=".part")
    os.close(fd)
    try:
        download(remote, Path(tmp), progress=progress)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def announce(remote: Remote, destination: Path) -> None:
    """One line on stderr before a download, for logs without a progress bar."""
    print(f"lipreg: downloading {remote.url} to {destination}", file=sys.stderr)


def _hash(algorithm: str) -> hashlib._Hash:
    # an integrity check, not a security one: allowed for MD5 on FIPS-mode systems too
    return hashlib.new(algorithm, usedforsecurity=False)


def _stream(remote: Remote, f: BinaryIO, progress: bool, timeout: float) -> str:
    """Write the body at ``remote.url`` to ``f``; returns its hex digest."""
    from lipreg import __version__

    h = _hash(remote.algorithm)
    request = urllib.request.Request(remote.url, headers={"User-Agent": f"lipreg/{__version__}"})
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = response.length  # Content-Length, or None
            with _bar(total, remote.filename, progress) as bar:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DownloadError(f"cannot download {remote.url}: {err}") from err
    if total is not None and received != total:
        raise DownloadError(
            f"the transfer of {remote.url} ended after {received} of its {total} bytes (the "
            "connection was cut); nothing was kept, try again"
        )
    return h.hexdigest()


@contextmanager
def _bar(total: int | None, name: str, progress: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    # disable=None: tqdm shows the bar only when stderr is a terminal
    with tqdm(
        total=total,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None if progress else True,
        leave=False,
    ) as bar:
        yield bar
