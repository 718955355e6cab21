"""Downloads without the internet: a server on 127.0.0.1 started here serves small archives
and files built here, with checksums passed in through the ``archive``/``remote`` parameters
or the mirror variables (``LIPREG_CIFAR10_URL``, ``LIPREG_CIFAR10_MD5``). Covered: a good
download (the data equal the files packed), reuse of the cache, the repair of missing or
damaged batches, a wrong checksum, a truncated transfer, an HTTP error, a stalled server
(``LIPREG_DOWNLOAD_TIMEOUT``), archives with traversal, absolute, link, device and FIFO
entries, Ctrl-C and SIGTERM in the middle of a transfer (in this process and in a child),
a concurrent download that finishes first, the cache directory's rules, and two processes
downloading once."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from train_helpers import image_config, one_thread, restore_threads, usage_error, write_cifar

from conftest import FileServer
from lipreg.train.cli import main, parse_command
from lipreg.train.data import (
    CIFAR10_ARCHIVE,
    DownloadError,
    Remote,
    UnsafeArchiveError,
    cache_dir,
    cifar10_download,
    fetch_cifar10,
    load_dataset,
)
from lipreg.train.data.archive import fetch_archive
from lipreg.train.data.download import download, fetch_file
from lipreg.train.distributed import Context
from lipreg.train.loop import Trainer

setup_module, teardown_module = one_thread, restore_threads

FOLDER = "cifar-10-batches-py"

# --------------------------------------------------------------------------------------
# archives


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in entries:
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def cifar_entries(tmp_path: Path, n: int = 2) -> tuple[list, dict[str, dict[bytes, object]]]:  # type: ignore[type-arg]
    """The entries of a CIFAR-10-like archive of ``n`` images per batch, and the batches."""
    src = tmp_path / "source" / FOLDER
    batches = write_cifar(src, n)
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = [(entry(FOLDER, tarfile.DIRTYPE), None)]
    entries += [(entry(f"{FOLDER}/{f.name}"), f.read_bytes()) for f in sorted(src.iterdir())]
    return entries, batches


def serve_cifar(tmp_path: Path, file_server: FileServer) -> Remote:
    """A CIFAR-10-like archive (two images per batch) served as cifar-10-python.tar.gz."""
    entries, _ = cifar_entries(tmp_path)
    return file_server.remote("cifar-10-python.tar.gz", tar_gz(entries))


def everything_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --------------------------------------------------------------------------------------
# CIFAR-10


def test_download_unpacks_the_archive_and_a_second_run_reuses_it(
    tmp_path: Path, file_server: FileServer
) -> None:
    entries, batches = cifar_entries(tmp_path)
    archive = file_server.remote("cifar-10-python.tar.gz", tar_gz(entries))
    root = tmp_path / "data"
    folder = fetch_cifar10(root, archive=archive)
    assert folder == root / FOLDER and file_server.requests == ["/cifar-10-python.tar.gz"]
    # only the data are left: no archive, no temporary directory
    names = sorted(f"{FOLDER}/{name}" for name in [*batches, "batches.meta"])
    assert everything_under(root) == [FOLDER, *names]
    data = load_dataset("cifar10-test", root=root)
    raw = batches["test_batch"][b"data"]
    assert isinstance(raw, np.ndarray)
    assert torch.equal(data.data.flatten(1), torch.from_numpy(raw))  # type: ignore[attr-defined]
    assert data.labels is not None and data.labels.tolist() == batches["test_batch"][b"labels"]
    # the second run finds the data and asks the server nothing
    assert fetch_cifar10(root, archive=archive) == folder
    assert len(load_dataset("cifar10", root=root, download=True)) == 10
    assert file_server.requests == ["/cifar-10-python.tar.gz"]


def test_load_dataset_downloads_into_the_cache_only_when_asked(
    tmp_path: Path, file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = serve_cifar(tmp_path, file_server)
    monkeypatch.setattr(cifar10_download, "CIFAR10_ARCHIVE", archive)
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cifar10")  # nothing is downloaded without download=True
    assert str(cache_dir()) in str(info.value) and "--download" in str(info.value)
    assert file_server.requests == []
    data = load_dataset("cifar10", download=True)
    assert len(data) == 10 and (cache_dir() / FOLDER / "data_batch_5").is_file()
    assert len(load_dataset("cifar10-test")) == 2  # later runs read the cache
    assert file_server.requests == ["/cifar-10-python.tar.gz"]


def test_a_root_named_after_the_folder_receives_the_data(
    tmp_path: Path, file_server: FileServer
) -> None:
    archive = serve_cifar(tmp_path, file_server)
    root = tmp_path / "data" / FOLDER
    assert fetch_cifar10(root, archive=archive) == root
    assert (root / "test_batch").is_file() and not (root / FOLDER).exists()


def test_missing_and_damaged_batches_are_repaired_and_readable_ones_kept(
    tmp_path: Path, file_server: FileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    entries, batches = cifar_entries(tmp_path)
    archive = file_server.remote("cifar-10-python.tar.gz", tar_gz(entries))
    root = tmp_path / "data"
    write_cifar(root / FOLDER, n=1)  # the user's own copy, one image per batch
    (root / FOLDER / "data_batch_4").unlink()
    cut = (root / FOLDER / "data_batch_2").read_bytes()
    (root / FOLDER / "data_batch_2").write_bytes(cut[: len(cut) // 2])
    kept = {
        name: (root / FOLDER / name).read_bytes()
        for name in ("data_batch_1", "data_batch_3", "data_batch_5", "test_batch")
    }
    with pytest.raises(FileNotFoundError) as info:  # without download: the advice
        load_dataset("cifar10", root=root)
    assert "data_batch_4" in str(info.value) and "--download" in str(info.value)
    assert fetch_cifar10(root, archive=archive) == root / FOLDER
    assert file_server.requests == ["/cifar-10-python.tar.gz"]
    err = capsys.readouterr().err
    assert f"repairing {root / FOLDER}" in err and "data_batch_2 (damaged)" in err
    assert "data_batch_4 (missing)" in err and archive.url in err
    for name in ("data_batch_2", "data_batch_4"):  # the archive's copies
        assert (root / FOLDER / name).read_bytes() == (
            tmp_path / "source" / FOLDER / name
        ).read_bytes()
    assert {name: (root / FOLDER / name).read_bytes() for name in kept} == kept
    assert len(load_dataset("cifar10", root=root)) == 3 * 1 + 2 * 2
    assert everything_under(root) == sorted(
        [FOLDER] + [f"{FOLDER}/{name}" for name in [*batches, "batches.meta"]]
    )
    assert fetch_cifar10(root, archive=archive) == root / FOLDER  # nothing left to repair
    assert file_server.requests == ["/cifar-10-python.tar.gz"]


def test_a_folder_with_another_name_is_repaired_in_place(
    tmp_path: Path, file_server: FileServer
) -> None:
    archive = serve_cifar(tmp_path, file_server)
    root = tmp_path / "my-cifar"
    write_cifar(root, n=1)
    (root / "test_batch").write_bytes(b"not a pickle")
    assert fetch_cifar10(root, archive=archive) == root
    assert len(load_dataset("cifar10-test", root=root)) == 2
    assert not (root / FOLDER).exists()


def test_an_empty_folder_is_filled(tmp_path: Path, file_server: FileServer) -> None:
    archive = serve_cifar(tmp_path, file_server)
    (tmp_path / "data" / FOLDER).mkdir(parents=True)
    assert fetch_cifar10(tmp_path / "data", archive=archive) == tmp_path / "data" / FOLDER
    assert len(load_dataset("cifar10", root=tmp_path / "data")) == 10


def test_a_wrong_checksum_keeps_nothing(tmp_path: Path, file_server: FileServer) -> None:
    entries, _ = cifar_entries(tmp_path)
    body = tar_gz(entries)
    archive = file_server.remote("c.tar.gz", body, digest=hashlib.md5(body + b"x").hexdigest())
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        fetch_cifar10(root, archive=archive)
    msg = str(info.value)
    assert hashlib.md5(body).hexdigest() in msg and archive.digest in msg and "md5" in msg
    assert archive.url in msg and f"{len(body)} bytes" in msg
    assert "try again" not in msg  # the source serves another file: retrying will not help
    assert everything_under(root) == []
    with pytest.raises(FileNotFoundError):  # nothing looks like data afterwards
        load_dataset("cifar10", root=root)
    with pytest.raises(DownloadError):
        download(archive, tmp_path / "direct.tar.gz")
    assert not (tmp_path / "direct.tar.gz").exists()


def test_a_truncated_transfer_keeps_nothing(tmp_path: Path, file_server: FileServer) -> None:
    entries, _ = cifar_entries(tmp_path)
    body = tar_gz(entries)
    archive = file_server.remote("c.tar.gz", body, cut=len(body) // 2)
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        fetch_cifar10(root, archive=archive)
    assert f"ended after {len(body) // 2} of its {len(body)} bytes" in str(info.value)
    assert everything_under(root) == []


def test_an_http_error_keeps_nothing(tmp_path: Path, file_server: FileServer) -> None:
    port = file_server.httpd.server_address[1]
    missing = Remote(f"http://127.0.0.1:{port}/gone.tar.gz", "gone.tar.gz", "md5", "0" * 32)
    with pytest.raises(DownloadError) as info:
        fetch_cifar10(tmp_path / "data", archive=missing)
    assert "404" in str(info.value) and missing.url in str(info.value)
    assert everything_under(tmp_path / "data") == []


UNSAFE = {
    "traversal": entry(f"{FOLDER}/../../escaped"),
    "absolute": entry("/tmp/lipreg-test-absolute-escaped"),
    "windows traversal": entry("..\\escaped"),
    "symlink": entry(f"{FOLDER}/link", tarfile.SYMTYPE, linkname="/etc/passwd"),
    "hard link": entry(f"{FOLDER}/hard", tarfile.LNKTYPE, linkname="/etc/passwd"),
    "device": entry(f"{FOLDER}/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
    "fifo": entry(f"{FOLDER}/pipe", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("kind", list(UNSAFE))
def test_unsafe_entries_reject_the_whole_archive(
    kind: str, tmp_path: Path, file_server: FileServer
) -> None:
    entries, _ = cifar_entries(tmp_path)
    bad = UNSAFE[kind]
    data = b"escaped" if bad.isreg() else None
    # the bad entry comes last: the files unpacked before it must vanish too
    archive = file_server.remote("c.tar.gz", tar_gz([*entries, (bad, data)]))
    root = tmp_path / "data"
    with pytest.raises(UnsafeArchiveError) as info:
        fetch_cifar10(root, archive=archive)
    assert repr(bad.name) in str(info.value)
    assert str(info.value).startswith(f"{archive.url}: ")  # not the deleted temporary file
    assert everything_under(root) == []
    assert not [p for p in tmp_path.rglob("*") if "escaped" in p.name or p.is_symlink()]
    assert not Path("/tmp/lipreg-test-absolute-escaped").exists()


def test_an_archive_without_the_folder_is_refused(tmp_path: Path, file_server: FileServer) -> None:
    archive = file_server.remote("c.tar.gz", tar_gz([(entry("other/test_batch"), b"x")]))
    with pytest.raises(ValueError) as info:
        fetch_cifar10(tmp_path / "data", archive=archive)
    assert f"holds no folder {FOLDER!r}" in str(info.value) and "['other']" in str(info.value)
    assert everything_under(tmp_path / "data") == []


def test_ctrl_c_during_the_transfer_keeps_nothing(tmp_path: Path, file_server: FileServer) -> None:
    """A real SIGINT reaches the main thread while it waits for the rest of the body."""
    body = os.urandom(3 << 20)  # several read chunks
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        signal.pthread_kill(main, signal.SIGINT)
        file_server.release.wait(10)

    archive = file_server.remote("c.tar.gz", body, cut=1 << 20, then=interrupt)
    root = tmp_path / "data"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            fetch_cifar10(root, archive=archive)
        with pytest.raises(KeyboardInterrupt):
            fetch_file(archive, tmp_path / "weights")
        with pytest.raises(KeyboardInterrupt):
            download(archive, tmp_path / "direct.tar.gz")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert everything_under(root) == [] and everything_under(tmp_path / "weights") == []
    assert not (tmp_path / "direct.tar.gz").exists()
    assert file_server.requests == ["/c.tar.gz"] * 3


_CHILD = """
import sys
from pathlib import Path
from lipreg.train.data import fetch_cifar10
from lipreg.train.data.download import Remote, fetch_file
kind, url, digest, root = sys.argv[1:]
remote = Remote(url, "c.tar.gz", "md5", digest)
if kind == "archive":
    fetch_cifar10(Path(root), archive=remote)
else:
    fetch_file(remote, Path(root))
"""


def interrupt_child(argv: list[str], root: Path, server: FileServer, signum: int) -> int:
    """Start ``argv``, wait until its download has written part of the body under ``root``,
    send it ``signum``; its exit code (negative: killed by that signal)."""
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any(
            p.is_file() and p.stat().st_size > 0
            for p in root.rglob("*")
            if ".lipreg-download-" in str(p)
        ):
            assert child.poll() is None, child.communicate()[1].decode()
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
        child.send_signal(signum)
        return child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
        server.release.set()


@pytest.mark.parametrize("kind", ["archive", "file"])
def test_sigterm_during_a_download_leaves_nothing(
    kind: str, tmp_path: Path, file_server: FileServer
) -> None:
    """SIGTERM (what cluster schedulers send) ends the process as it would, after deleting
    the partial download."""
    body = os.urandom(3 << 20)
    archive = file_server.remote("c.tar.gz", body, cut=1 << 20, then=file_server.release.wait)
    root = tmp_path / "data"
    root.mkdir()
    argv = [sys.executable, "-c", _CHILD, kind, archive.url, archive.digest, str(root)]
    assert interrupt_child(argv, root, file_server, signal.SIGTERM) == -signal.SIGTERM
    assert everything_under(root) == []


def test_sigint_during_a_command_line_download_leaves_nothing(
    tmp_path: Path, file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in ``lipreg train --download`` pointed at a mirror by the environment."""
    body = os.urandom(3 << 20)
    archive = file_server.remote("c.tar.gz", body, cut=1 << 20, then=file_server.release.wait)
    monkeypatch.setenv("LIPREG_CIFAR10_URL", archive.url)
    monkeypatch.setenv("LIPREG_CIFAR10_MD5", archive.digest)
    root = tmp_path / "data"
    root.mkdir()
    argv = [
        sys.executable, "-m", "lipreg.train", *CLI, "--download", "--data-root", str(root),
        "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    assert interrupt_child(argv, root, file_server, signal.SIGINT) == 130
    assert everything_under(root) == [] and not (tmp_path / "run").exists()


def test_a_mirror_is_set_by_environment_variables(
    tmp_path: Path, file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries, _ = cifar_entries(tmp_path)
    body = tar_gz(entries)
    mirror = file_server.remote("mirror/cifar-10-python.tar.gz", body)
    monkeypatch.setenv("LIPREG_CIFAR10_URL", mirror.url)
    # the URL alone: the file must be the official one (its published MD5)
    with pytest.raises(DownloadError) as info:
        fetch_cifar10(tmp_path / "a")
    msg = str(info.value)
    assert mirror.url in msg and f"published {CIFAR10_ARCHIVE.digest}" in msg
    assert "LIPREG_CIFAR10_MD5" in msg
    # with its checksum: another file, trusted knowingly
    monkeypatch.setenv("LIPREG_CIFAR10_MD5", mirror.digest)
    assert len(load_dataset("cifar10", root=tmp_path / "b", download=True)) == 10
    assert file_server.requests == ["/mirror/cifar-10-python.tar.gz"] * 2
    assert CIFAR10_ARCHIVE.resolved().url == mirror.url
    assert CIFAR10_ARCHIVE.resolved().digest == mirror.digest


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LIPREG_CIFAR10_MD5": "0" * 32}, "LIPREG_CIFAR10_MD5 is set but LIPREG_CIFAR10_URL"),
        ({"LIPREG_CIFAR10_URL": "http://127.0.0.1:9/c.tar.gz", "LIPREG_CIFAR10_MD5": "x"},
         "LIPREG_CIFAR10_MD5='x'"),
        ({"LIPREG_CIFAR10_URL": "mirror.example.org/c.tar.gz"},
         "LIPREG_CIFAR10_URL='mirror.example.org/c.tar.gz'"),
        ({"LIPREG_DOWNLOAD_TIMEOUT": "soon"}, "LIPREG_DOWNLOAD_TIMEOUT='soon'"),
        ({"LIPREG_DOWNLOAD_TIMEOUT": "-1"}, "LIPREG_DOWNLOAD_TIMEOUT='-1'"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_variable(
    env: dict[str, str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before anything is created or fetched (the official URL is never reached)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as info:
        fetch_cifar10(tmp_path / "data")
    assert expected in str(info.value)
    assert not (tmp_path / "data").exists()


def test_a_stalled_server_times_out_after_the_set_delay(
    tmp_path: Path, file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = os.urandom(1 << 20)
    remote = file_server.remote("w.pth", body, cut=1000, then=file_server.release.wait)
    monkeypatch.setenv("LIPREG_DOWNLOAD_TIMEOUT", "0.5")
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch_file(remote, tmp_path / "cache")
    assert time.monotonic() - start < 30
    msg = str(info.value)
    assert remote.url in msg and "no data for 0.5 s" in msg and "LIPREG_DOWNLOAD_TIMEOUT" in msg
    assert everything_under(tmp_path / "cache") == []


def test_an_html_page_in_place_of_the_file_is_named(
    tmp_path: Path, file_server: FileServer
) -> None:
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    remote = file_server.remote("c.tar.gz", page, digest="0" * 32)
    with pytest.raises(DownloadError) as info:
        fetch_cifar10(tmp_path / "data", archive=remote)
    assert "an HTML page" in str(info.value)


def test_a_concurrent_download_that_finishes_first_is_kept(
    tmp_path: Path, file_server: FileServer
) -> None:
    entries, _ = cifar_entries(tmp_path)
    root = tmp_path / "data"

    def other_process_finishes() -> None:
        write_cifar(root / FOLDER, n=4)

    archive = file_server.remote("c.tar.gz", tar_gz(entries), first=other_process_finishes)
    assert fetch_archive(archive, root, FOLDER) == root / FOLDER
    assert len(load_dataset("cifar10", root=root)) == 20  # the other copy, 5 x 4 images
    names = sorted(f"{FOLDER}/{f.name}" for f in (root / FOLDER).iterdir())
    assert everything_under(root) == [FOLDER, *names]


def test_the_official_archive_is_named_with_its_published_md5() -> None:
    assert CIFAR10_ARCHIVE.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert (CIFAR10_ARCHIVE.algorithm, CIFAR10_ARCHIVE.digest) == (
        "md5",
        "c58f30108f718f92721af3b95e74349a",
    )


def test_download_applies_to_cifar_and_fashion_mnist_only() -> None:
    fetchable = "'cifar10', 'cifar10-test', 'fashion-mnist', 'fashion-mnist-test'"
    for name in ("digits", "patches", "8gaussians"):
        with pytest.raises(ValueError) as info:
            load_dataset(name, download=True)
        assert f"download=True fetches {fetchable} only" in str(info.value)
    with pytest.raises(TypeError) as info2:
        load_dataset("cifar10", download="yes")  # type: ignore[arg-type]
    assert "download must be True or False" in str(info2.value)


# --------------------------------------------------------------------------------------
# files, the cache directory, the command line


def test_fetch_file_downloads_once_and_checks_what_it_finds(
    tmp_path: Path, file_server: FileServer
) -> None:
    remote = file_server.remote("w.pth", b"weights" * 1000, algorithm="sha256")
    path = fetch_file(remote, tmp_path / "cache")
    assert path == tmp_path / "cache" / "w.pth" and path.read_bytes() == b"weights" * 1000
    assert fetch_file(remote, tmp_path / "cache") == path and len(file_server.requests) == 1
    assert everything_under(tmp_path / "cache") == ["w.pth"]
    path.write_bytes(b"tampered")
    with pytest.raises(DownloadError) as info:
        fetch_file(remote, tmp_path / "cache")
    assert str(path) in str(info.value) and "delete it to download it again" in str(info.value)
    wrong = file_server.remote("x.pth", b"x", algorithm="sha256", digest="0" * 64)
    with pytest.raises(DownloadError):
        fetch_file(wrong, tmp_path / "cache")
    assert everything_under(tmp_path / "cache") == ["w.pth"]


def test_remote_checks_its_digest() -> None:
    for algorithm, digest in (("md5", "0" * 31), ("sha256", "0" * 32), ("md5", "A" * 32)):
        with pytest.raises(ValueError) as info:
            Remote("https://example.org/f", "f", algorithm, digest)
        assert "lowercase hexadecimal" in str(info.value)


def test_cache_dir_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIPREG_CACHE", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"
    monkeypatch.delenv("LIPREG_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "lipreg"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert cache_dir() == tmp_path / "home" / ".cache" / "lipreg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "lipreg"


CLI = [
    "--data", "cifar10", "--image-size", "8", "--model", "dcgan", "--width", "4",
    "--batch-size", "4", "--gen-batch-size", "4", "--no-progress", "--no-tensorboard",
]  # fmt: skip


def test_command_line_download_then_reuse(
    tmp_path: Path,
    file_server: FileServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Runs are built (not trained: the data are all that matters here) from command lines."""
    archive = serve_cifar(tmp_path, file_server)
    monkeypatch.setattr(cifar10_download, "CIFAR10_ARCHIVE", archive)
    err = usage_error(capsys, lambda: main([*CLI, "--out", str(tmp_path / "run")]))
    assert "--download" in err and str(cache_dir()) in err and file_server.requests == []
    assert not (tmp_path / "run").exists()
    for argv in ([*CLI, "--download"], CLI, [*CLI, "--download"]):  # later runs: the cache
        assert len(Trainer(parse_command(argv).config).data) == 10
    assert file_server.requests == ["/cifar-10-python.tar.gz"]
    # a damaged batch: the advice is --download, and --download repairs it
    (cache_dir() / FOLDER / "data_batch_3").write_bytes(b"cut")
    err = usage_error(capsys, lambda: main([*CLI, "--out", str(tmp_path / "run")]))
    assert "data_batch_3" in err and "--download" in err
    assert len(Trainer(parse_command([*CLI, "--download"]).config).data) == 10
    assert file_server.requests == ["/cifar-10-python.tar.gz"] * 2


# --------------------------------------------------------------------------------------
# two processes: rank 0 downloads, the other waits and reads


def _worker(
    rank: int, world: int, init_file: str, root: str, archive: Remote, results: dict
) -> None:  # type: ignore[type-arg]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cifar10_download.CIFAR10_ARCHIVE = archive
        ctx = Context(rank=rank, world=world, device=torch.device("cpu"), owns_group=False)
        config = image_config(
            Path(root) / "run", data="cifar10", data_root=root, download=True, data_size=None
        )
        trainer = Trainer(config, ctx=ctx)
        results[rank] = trainer.data.take(torch.arange(10)).sum().item()
        trainer.close()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_download_once(tmp_path: Path, file_server: FileServer) -> None:
    archive = serve_cifar(tmp_path, file_server)
    with mp.Manager() as manager:
        shared = manager.dict()
        args = (2, os.fspath(tmp_path / "init"), os.fspath(tmp_path / "data"), archive, shared)
        mp.spawn(_worker, args=args, nprocs=2)
        results = dict(shared)
    assert file_server.requests == ["/cifar-10-python.tar.gz"]
    assert results[0] == results[1]
