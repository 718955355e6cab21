"""Verified downloads into lipreg's cache: :func:`cache_dir`, :class:`Remote`, :func:`download`
and :func:`fetch_file`.

A file is streamed from its URL into a temporary file while its digest is computed, compared
with the published checksum, and only then renamed to its final name (``os.replace``, atomic
within a filesystem). An interrupted, truncated or corrupt transfer therefore never leaves a
file under the final name, and a file found under it was verified when it was written.
Temporary files and directories are named ``.lipreg-download-*`` and are deleted on any
error, on Ctrl-C (SIGINT) and on SIGTERM (:func:`removed_on_sigterm`); only a process killed
outright (SIGKILL, a power cut) leaves one behind.

Settings, read when a download starts: a :class:`Remote`'s mirror variables
(``url_env``, ``digest_env``, e.g. ``LIPREG_CIFAR10_URL`` and ``LIPREG_CIFAR10_MD5``;
``folder_env`` for files published together, e.g. ``LIPREG_FASHION_MNIST_URL``) and
``LIPREG_DOWNLOAD_TIMEOUT`` (:func:`download_timeout`). Standard library only (``urllib``,
``hashlib``, ``tempfile``, ``signal``); the progress bar is tqdm's, shown on terminals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import math
import os
import signal
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

CACHE_ENV = "LIPREG_CACHE"
"""The environment variable that moves :func:`cache_dir`."""

TIMEOUT_ENV = "LIPREG_DOWNLOAD_TIMEOUT"
"""The environment variable that sets :func:`download_timeout`, in seconds."""

DEFAULT_TIMEOUT = 60.0
"""Seconds a download waits for the server to connect or to send more data."""

TEMPORARY_PREFIX = ".lipreg-download-"
"""The name prefix of every temporary file or directory a download creates."""

_SCHEMES = ("https", "http", "ftp", "file")
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
        url_env: the environment variable that replaces ``url`` (a mirror), or ``None``.
        digest_env: the environment variable that replaces ``digest`` when ``url_env`` is set
            too (a mirror that serves another file, trusted knowingly), or ``None`` when the
            file must always be the published one.
        folder_env: the environment variable of a folder URL that replaces ``url`` by
            ``$folder_env/filename`` (a mirror of several files published together, each
            still with its published checksum), or ``None``.
    """

    url: str
    filename: str
    algorithm: str
    digest: str
    url_env: str | None = None
    digest_env: str | None = None
    folder_env: str | None = None

    def __post_init__(self) -> None:
        size = _hash(self.algorithm).digest_size
        if len(self.digest) != 2 * size or self.digest.strip("0123456789abcdef"):
            raise ValueError(
                f"digest must be the {2 * size} lowercase hexadecimal digits of a "
                f"{self.algorithm} checksum, got {self.digest!r}"
            )

    def resolved(self) -> Remote:
        """This file as the environment sets it: ``url`` from ``$url_env`` (or from
        ``$folder_env`` and ``filename``) and ``digest`` from ``$digest_env`` when they are set
        (and not empty). Raises ``ValueError`` naming the variable when a value is not a URL
        (``https``, ``http``, ``ftp`` or ``file``) or a checksum, or when ``$digest_env`` is
        set without ``$url_env``."""
        url = os.environ.get(self.url_env, "") if self.url_env else ""
        folder = os.environ.get(self.folder_env, "") if self.folder_env else ""
        digest = os.environ.get(self.digest_env, "") if self.digest_env else ""
        if digest and not url:
            raise ValueError(
                f"{self.digest_env} is set but {self.url_env} is not: a checksum describes the "
                f"file of a mirror; set {self.url_env} to its URL too, or unset {self.digest_env}"
            )
        if folder and not url:
            _check_url(
                f"{self.folder_env}={folder!r}",
                f"a folder holding {self.filename}, e.g. https://mirror.example.org/data/ or "
                "file:///data/",
                folder,
            )
            return dataclasses.replace(self, url=folder.rstrip("/") + "/" + self.filename)
        if not url:
            return self
        _check_url(
            f"{self.url_env}={url!r}",
            f"a copy of {self.filename}, e.g. https://mirror.example.org/{self.filename} or "
            f"file:///data/{self.filename}",
            url,
        )
        try:
            return dataclasses.replace(self, url=url, digest=digest.lower() or self.digest)
        except ValueError as err:
            raise ValueError(f"{self.digest_env}={digest!r}: {err}") from None

    def mirror_hint(self) -> str:
        """One sentence on fetching the file from elsewhere (empty without a mirror
        variable)."""
        if self.folder_env and not self.url_env:
            return (
                f" To fetch it from elsewhere, set {self.folder_env} to the URL of a folder "
                f"holding a copy of {self.filename}."
            )
        if not self.url_env:
            return ""
        other = (
            f" (and {self.digest_env} to its {self.algorithm} if it is another file you trust)"
            if self.digest_env
            else ""
        )
        return f" To fetch it from elsewhere, set {self.url_env} to the URL of a copy{other}."


def _check_url(setting: str, expected: str, url: str) -> None:
    """Raise ``ValueError`` naming ``setting`` (``VARIABLE='value'``) unless ``url`` is the
    full address of ``expected``."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in _SCHEMES or not (parsed.netloc or parsed.scheme == "file"):
        raise ValueError(f"{setting} is not a URL: give the full address of {expected}")


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


def download_timeout() -> float:
    """Seconds a download waits for a connection or for more data before it gives up:
    ``$LIPREG_DOWNLOAD_TIMEOUT`` when set (a positive number), else :data:`DEFAULT_TIMEOUT`.
    It bounds each wait, not the whole transfer. Raises ``ValueError`` naming the variable
    when its value is not a positive number."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds (the default is "
            f"{DEFAULT_TIMEOUT:g})"
        )
    return value


class _Terminated(BaseException):
    """SIGTERM arrived during a download: unwinds the stack so that partial files are
    deleted (a ``BaseException``, so that no ``except Exception`` swallows it)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextmanager
def removed_on_sigterm() -> Iterator[None]:
    """Inside the block, SIGTERM raises an exception instead of ending the process at once,
    so that ``finally`` clauses and context managers delete what the block was writing; the
    process then ends by SIGTERM as it would have (same exit status). Applies where SIGTERM
    has its default action, in the main thread; a handler the program installed itself is
    left alone, and nested blocks share the outermost one.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
        raise  # not reached where SIGTERM ends the process
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def download(
    remote: Remote, path: Path, *, progress: bool = True, timeout: float | None = None
) -> None:
    """Stream ``remote.url`` into ``path`` (created or truncated) and check its checksum
    (``remote`` as the environment sets it, :meth:`Remote.resolved`).

    Raises :class:`DownloadError`, with ``path`` removed, when the transfer fails, ends before
    the announced ``Content-Length``, or gives a digest other than ``remote.digest``; any
    other exception (``KeyboardInterrupt`` and SIGTERM included, :func:`removed_on_sigterm`)
    also removes ``path``. ``progress`` shows a progress bar when stderr is a terminal;
    ``timeout`` (seconds, default :func:`download_timeout`) bounds each network operation,
    not the whole transfer.
    """
    remote = remote.resolved()
    timeout = download_timeout() if timeout is None else timeout
    with removed_on_sigterm():
        try:
            with path.open("wb") as f:
                got, size, head = _stream(remote, f, progress, timeout)
            if got != remote.digest:
                raise DownloadError(_mismatch(remote, got, size, head))
        except BaseException:
            path.unlink(missing_ok=True)
            raise


def _mismatch(remote: Remote, got: str, size: int, head: bytes) -> str:
    """Why a downloaded file was refused: what came, what was expected, what to do."""
    mirrored = bool(remote.digest_env and os.environ.get(remote.digest_env))
    expected = f"{remote.digest} (set by {remote.digest_env})" if mirrored else "the published"
    if not mirrored:
        expected += f" {remote.digest}"
    html = head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))
    what = (
        "it is an HTML page (a login portal or an error page?), not the file"
        if html
        else "the source serves another file than the one expected, or it was damaged on its way"
    )
    return (
        f"{remote.url} served {size} bytes whose {remote.algorithm} is {got}, not {expected}: "
        f"{what}; it was deleted.{remote.mirror_hint()}"
    )


def fetch_file(remote: Remote, folder: Path, *, progress: bool = True) -> Path:
    """``folder / remote.filename``, downloaded first (:func:`download`) if it is absent.

    The download goes to a hidden temporary file in ``folder`` (``.lipreg-download-*``) and
    is renamed into place once verified; a file already there is checked against
    ``remote.digest`` before it is returned (a mismatch raises :class:`DownloadError`
    naming the file to delete). ``remote`` as the environment sets it
    (:meth:`Remote.resolved`).
    """
    remote = remote.resolved()
    timeout = download_timeout()
    target = folder / remote.filename
    if target.is_file():
        got = file_digest(target, remote.algorithm)
        if got != remote.digest:
            raise DownloadError(
                f"{target} has {remote.algorithm} {got}, not {remote.digest} of "
                f"{remote.url} (a damaged or foreign file); delete it to download it again"
            )
        return target
    folder.mkdir(parents=True, exist_ok=True)
    announce(remote, target)
    with removed_on_sigterm():
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix=f"{TEMPORARY_PREFIX}{remote.filename}.", suffix=".part"
        )
        os.close(fd)
        try:
            download(remote, Path(tmp), progress=progress, timeout=timeout)
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


def _stream(remote: Remote, f: BinaryIO, progress: bool, timeout: float) -> tuple[str, int, bytes]:
    """Write the body at ``remote.url`` to ``f``; returns its hex digest, its size and its
    first bytes."""
    from lipreg import __version__

    h = _hash(remote.algorithm)
    request = urllib.request.Request(remote.url, headers={"User-Agent": f"lipreg/{__version__}"})
    received, head = 0, b""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = response.length  # Content-Length, or None
            with _bar(total, remote.filename, progress) as bar:
                while chunk := response.read(_CHUNK):
                    if not head:
                        head = chunk[:64]
                    f.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        if isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None), TimeoutError):
            why = f"no data for {timeout:g} s (set {TIMEOUT_ENV} to wait longer)"
        else:
            why = str(err)
        raise DownloadError(f"cannot download {remote.url}: {why}.{remote.mirror_hint()}") from err
    if total is not None and received != total:
        raise DownloadError(
            f"the transfer of {remote.url} ended after {received} of its {total} bytes (the "
            "connection was cut); nothing was kept, try again"
        )
    return h.hexdigest(), received, head


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
