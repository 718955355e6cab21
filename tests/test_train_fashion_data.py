"""Fashion-MNIST's data: the strict IDX reader on files built here (gzipped and raw, every
type, truncated, foreign, hostile headers, gzip bombs), the four files found in the data
root, the cache or a system folder and checked against their recorded SHA-256 (a
recompressed copy accepted, a damaged one refused), downloads from a local server, and the
command line's one-line exit 2. The real files are never needed."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import usage_error

from conftest import FileServer
from lipreg.train.cli import main
from lipreg.train.data import (
    FASHION_MNIST_FILES,
    DownloadError,
    IdxError,
    IdxFile,
    Remote,
    cache_dir,
    fetch_fashion_mnist,
    load_dataset,
    read_fashion_mnist,
    read_idx,
)
from lipreg.train.data import fashion_mnist as fm
from lipreg.train.data.idx import parse_idx, read_idx_bytes

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C}
CODES |= {np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(
    array: np.ndarray, code: int | None = None, shape: tuple[int, ...] | None = None
) -> bytes:
    """An IDX file of ``array`` written by hand (big-endian), optionally with a forged type
    ``code`` or header ``shape``."""
    code = CODES[array.dtype.type] if code is None else code
    shape = array.shape if shape is None else shape
    header = bytes([0, 0, code, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


# --------------------------------------------------------------------------------------
# the IDX reader


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("zipped", [False, True])
def test_every_type_reads_back_gzipped_or_not(dtype: type, zipped: bool, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    data = idx_bytes(array)
    # the name says nothing: gzip is recognised by its content
    path = tmp_path / "file"
    path.write_bytes(gzip.compress(data) if zipped else data)
    got = read_idx(path)
    assert got.shape == (3, 4, 5) and got.dtype == torch.from_numpy(array).dtype
    assert np.array_equal(got.numpy(), array)
    assert got.numpy().dtype.isnative  # converted from big-endian


def test_one_dimension_and_the_reference_layout() -> None:
    # the MNIST labels header of LeCun's page: 0x00000801, then the count, then the bytes
    data = bytes.fromhex("00000801 00000003".replace(" ", "")) + bytes([7, 0, 9])
    assert parse_idx(data).tolist() == [7, 0, 9]


BAD_FILES = {
    "empty": (b"", "truncated: 0 bytes"),
    "wrong magic": (b"\x01\x02\x08\x01" + (1).to_bytes(4, "big") + b"\x00", "magic number"),
    "unknown type": (b"\x00\x00\x07\x01" + (1).to_bytes(4, "big") + b"\x00", "magic number"),
    "no dimensions": (b"\x00\x00\x08\x00", "magic number"),
    "short header": (b"\x00\x00\x08\x03" + (5).to_bytes(4, "big"), "declares 3 dimensions"),
    "truncated": (idx_bytes(np.zeros((4, 2, 2), np.uint8))[:-3], "truncated"),
    "stray bytes": (idx_bytes(np.zeros((4, 2, 2), np.uint8)) + b"\x00", "stray bytes"),
    "2**31 images": (
        idx_bytes(np.zeros((1, 28, 28), np.uint8), shape=(2**31, 28, 28)),
        "truncated",
    ),
    "huge float64": (
        idx_bytes(np.zeros(1, np.float64), shape=(2**32 - 1,) * 4),
        "truncated",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
@pytest.mark.parametrize("zipped", [False, True])
def test_bad_files_are_one_line_errors_without_allocation(
    case: str, zipped: bool, tmp_path: Path
) -> None:
    data, message = BAD_FILES[case]
    path = tmp_path / "bad"
    path.write_bytes(gzip.compress(data) if zipped else data)
    tracemalloc.start()
    try:
        with pytest.raises(IdxError, match=message) as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # a header's claim allocates nothing (the file is a few bytes)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_gzip_bomb_is_cut_at_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(bytes(64 << 20)))  # 64 MiB of zeros in 64 kB
    tracemalloc.start()
    try:
        with pytest.raises(IdxError, match="more than 1000000 bytes once decompressed"):
            read_idx(path, max_bytes=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    raw = tmp_path / "raw"
    raw.write_bytes(bytes(2000))
    with pytest.raises(IdxError, match="more than 1000 bytes,"):
        read_idx_bytes(raw, max_bytes=1000)


def test_a_damaged_gzip_stream_is_refused(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    for name, data in (("cut", packed[: len(packed) // 2]), ("flipped", _flip(packed, 30))):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(IdxError, match="damaged gzip file") as info:
            read_idx(path)
        assert "\n" not in str(info.value)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


# --------------------------------------------------------------------------------------
# Fashion-MNIST's files: built here, with checksums of their own


class FakeFashion:
    """Four small Fashion-MNIST-like IDX files (``n`` training, ``n // 2`` test images) and
    the :data:`FASHION_MNIST_FILES`-like record of their contents."""

    def __init__(self, n: int = 6, url: str = "http://127.0.0.1:9/") -> None:
        rng = np.random.default_rng(n)
        self.content: dict[str, bytes] = {}
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        files = {}
        for split, m in (("train", n), ("test", n // 2)):
            images = rng.integers(0, 256, (m, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, m, dtype=np.uint8)
            self.arrays[split] = (images, labels)
            pair = []
            for official, array in zip(FASHION_MNIST_FILES[split], (images, labels), strict=True):
                data = idx_bytes(array)
                self.content[official.name] = data
                packed = gzip.compress(data, mtime=0)
                remote = dataclasses.replace(  # the official mirror variable kept
                    official.remote,
                    url=url + official.remote.filename,
                    digest=hashlib.md5(packed).hexdigest(),
                )
                pair.append(IdxFile(remote, hashlib.sha256(data).hexdigest(), len(data)))
            files[split] = (pair[0], pair[1])
        self.files = files

    def gz(self, name: str, level: int = 9) -> bytes:
        """The gzipped file: at another ``level`` its bytes (and MD5) change, not its content."""
        return gzip.compress(self.content[name], compresslevel=level, mtime=0)

    def write(self, folder: Path, *, zipped: bool = True, level: int = 9) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.content:
            if zipped:
                (folder / f"{name}.gz").write_bytes(self.gz(name, level))
            else:
                (folder / name).write_bytes(self.content[name])
        return folder


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeFashion:
    """Small files recorded as the official ones; no system folder (this machine's Debian
    copy, if any, stays out of the tests)."""
    made = FakeFashion()
    monkeypatch.setattr(fm, "FASHION_MNIST_FILES", made.files)
    monkeypatch.setattr(fm, "SYSTEM_FOLDERS", (tmp_path / "system",))
    return made


def test_official_record_matches_the_published_checksums() -> None:
    # the README's MD5s and the decompressed sizes stated in the issue
    expected = {
        "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 47_040_016),
        "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", 60_008),
        "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", 7_840_016),
        "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", 10_008),
    }
    found = {
        f.name: (f.remote.digest, f.size) for pair in FASHION_MNIST_FILES.values() for f in pair
    }
    assert found == expected
    for pair in FASHION_MNIST_FILES.values():
        images, labels = pair
        assert images.size == 16 + 28 * 28 * (labels.size - 8)  # header + N images
        for f in pair:
            assert f.remote.url == fm.FASHION_MNIST_URL + f.name + ".gz"
            assert f.remote.folder_env == "LIPREG_FASHION_MNIST_URL" and f.remote.url_env is None
            assert len(f.sha256) == 64


@pytest.mark.parametrize("zipped", [True, False])
def test_files_in_the_root_are_read_with_labels(
    fake: FakeFashion, tmp_path: Path, zipped: bool
) -> None:
    root = fake.write(tmp_path / "root", zipped=zipped)
    for split in ("train", "test"):
        images, labels = read_fashion_mnist(root, train=split == "train")
        want_images, want_labels = fake.arrays[split]
        assert images.dtype == torch.uint8 and images.shape == (len(want_images), 1, 28, 28)
        assert np.array_equal(images[:, 0].numpy(), want_images)
        assert labels.dtype == torch.int64 and labels.tolist() == want_labels.tolist()
    data = load_dataset("fashion-mnist", root=root)
    assert data.sample_shape == (1, 28, 28) and data.num_classes == 10
    x = data.take(torch.arange(len(data)))
    assert torch.equal(x, torch.from_numpy(fake.arrays["train"][0]).float()[:, None] / 127.5 - 1)
    assert x.min() >= -1 and x.max() <= 1
    assert len(load_dataset("fashion-mnist-test", root=root, size=2)) == 2
    assert load_dataset("fashion-mnist", root=root, image_size=16).sample_shape == (1, 16, 16)


def test_sub_folders_of_the_root_are_searched(fake: FakeFashion, tmp_path: Path) -> None:
    for sub in ("fashion-mnist", "FashionMNIST/raw"):
        root = tmp_path / sub.replace("/", "_")
        fake.write(root / sub)
        assert len(read_fashion_mnist(root)[0]) == 6


def test_a_recompressed_copy_is_accepted_and_a_damaged_one_refused(
    fake: FakeFashion, tmp_path: Path
) -> None:
    # Debian's case: other .gz bytes (another MD5), the same content
    root = fake.write(tmp_path / "recompressed", level=1)
    name = "train-images-idx3-ubyte"
    official = fake.files["train"][0]
    assert hashlib.md5((root / f"{name}.gz").read_bytes()).hexdigest() != official.remote.digest
    assert len(read_fashion_mnist(root)[0]) == 6
    # one pixel changed: the same structure, another content
    damaged = bytearray(fake.content[name])
    damaged[100] ^= 1
    (root / f"{name}.gz").write_bytes(gzip.compress(bytes(damaged)))
    with pytest.raises(IdxError, match="not the official train-images-idx3-ubyte") as info:
        read_fashion_mnist(root)
    assert official.sha256 in str(info.value) and "--download" in str(info.value)
    # a truncated copy is refused by the reader before any checksum
    (root / f"{name}.gz").write_bytes(gzip.compress(fake.content[name][:-5]))
    with pytest.raises(IdxError, match="is truncated"):
        read_fashion_mnist(root)
    # a file larger than the official one is not even read whole
    (root / f"{name}.gz").write_bytes(gzip.compress(fake.content[name] + bytes(10)))
    with pytest.raises(IdxError, match=f"more than {official.size} bytes"):
        read_fashion_mnist(root)


def test_files_of_the_wrong_kind_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # self-consistent records of files that are not 28x28 images with labels 0..9
    def record(images: np.ndarray, labels: np.ndarray) -> dict[str, tuple[IdxFile, IdxFile]]:
        pair = []
        for official, array in zip(FASHION_MNIST_FILES["train"], (images, labels), strict=True):
            data = idx_bytes(array)
            (tmp_path / official.name).write_bytes(data)
            pair.append(IdxFile(official.remote, hashlib.sha256(data).hexdigest(), len(data)))
        return {"train": (pair[0], pair[1])}

    cases = [
        (np.zeros((2, 32, 32), np.uint8), np.zeros(2, np.uint8), "uint8 images \\[N, 28, 28\\]"),
        (np.zeros((2, 28, 28), np.float32), np.zeros(2, np.uint8), "uint8 images"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros(3, np.uint8), "2 uint8 labels in 0..9"),
        (np.zeros((2, 28, 28), np.uint8), np.array([1, 10], np.uint8), "labels in 0..9"),
    ]
    for images, labels, message in cases:
        with pytest.raises(IdxError, match=message):
            read_fashion_mnist(tmp_path, files=record(images, labels))


def test_the_cache_comes_before_the_system_folder(fake: FakeFashion, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert str(cache_dir() / "fashion-mnist") in message and str(tmp_path / "system") in message
    assert "--download" in message and "apt-get install dataset-fashion-mnist" in message
    system = fake.write(tmp_path / "system")
    assert fm.find_fashion_mnist(None, "train") == system
    assert len(load_dataset("fashion-mnist")) == 6
    cached = fake.write(cache_dir() / "fashion-mnist", zipped=False)
    assert fm.find_fashion_mnist(None, "test") == cached
    # a root given is the only place looked at
    with pytest.raises(FileNotFoundError, match="none of"):
        read_fashion_mnist(tmp_path / "elsewhere")


def test_only_train_files_are_not_enough_for_the_test_split(
    fake: FakeFashion, tmp_path: Path
) -> None:
    root = fake.write(tmp_path / "root")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    assert len(read_fashion_mnist(root)[0]) == 6
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[\.gz\] and t10k-labels"):
        read_fashion_mnist(root, train=False)


# --------------------------------------------------------------------------------------
# downloads from a local server


def serve(fake: FakeFashion, server: FileServer) -> dict[str, tuple[IdxFile, IdxFile]]:
    """The fake files served by ``server``, as a record whose URLs point to it."""
    files = {}
    for split, pair in fake.files.items():
        served = []
        for f in pair:
            remote = server.remote(f.remote.filename, fake.gz(f.name))
            assert remote.digest == f.remote.digest
            served.append(IdxFile(remote, f.sha256, f.size))
        files[split] = (served[0], served[1])
    return files


def test_download_fetches_the_four_files_once(
    fake: FakeFashion, file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = serve(fake, file_server)
    monkeypatch.setattr(fm, "FASHION_MNIST_FILES", files)
    with pytest.raises(FileNotFoundError):
        load_dataset("fashion-mnist")  # nothing is downloaded without download=True
    assert file_server.requests == []
    data = load_dataset("fashion-mnist", download=True)
    assert len(data) == 6
    folder = cache_dir() / "fashion-mnist"
    names = sorted(f.remote.filename for pair in files.values() for f in pair)
    assert sorted(file_server.requests) == [f"/{n}" for n in names]
    assert sorted(p.name for p in folder.iterdir()) == names  # no temporary file left
    assert len(load_dataset("fashion-mnist-test", download=True)) == 3
    assert len(file_server.requests) == 4  # later runs read the cache


def test_download_into_a_root_fetches_only_what_is_missing(
    fake: FakeFashion, file_server: FileServer, tmp_path: Path
) -> None:
    files = serve(fake, file_server)
    root = fake.write(tmp_path / "root", level=1)  # a recompressed copy: not replaced
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (root / name).unlink()
    before = (root / "train-images-idx3-ubyte.gz").read_bytes()
    assert fetch_fashion_mnist(root, files=files) == root
    assert sorted(file_server.requests) == [
        "/t10k-images-idx3-ubyte.gz",
        "/t10k-labels-idx1-ubyte.gz",
    ]
    assert (root / "train-images-idx3-ubyte.gz").read_bytes() == before
    assert len(read_fashion_mnist(root, train=False, files=files)[0]) == 3


def test_a_system_copy_is_not_downloaded_again(
    fake: FakeFashion, file_server: FileServer, tmp_path: Path
) -> None:
    files = serve(fake, file_server)
    fake.write(tmp_path / "system", level=1)
    fetch_fashion_mnist(files=files)
    assert file_server.requests == [] and not (cache_dir() / "fashion-mnist").exists()


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_mirror_folder_is_set_by_an_environment_variable(
    fake: FakeFashion, file_server: FileServer, monkeypatch: pytest.MonkeyPatch, slash: str
) -> None:
    """``LIPREG_FASHION_MNIST_URL``: the four official files from a folder of a mirror (the
    record's own URLs point to a closed port), each still checked against its MD5."""
    names = [f.remote.filename for pair in fake.files.values() for f in pair]
    for name in names:
        file_server.remote(f"mirror/{name}", fake.gz(name.removesuffix(".gz")))
    port = file_server.httpd.server_address[1]
    with pytest.raises(DownloadError, match="set LIPREG_FASHION_MNIST_URL to the URL of a folder"):
        fetch_fashion_mnist()  # the record's own address is unreachable
    monkeypatch.setenv("LIPREG_FASHION_MNIST_URL", f"http://127.0.0.1:{port}/mirror{slash}")
    assert len(load_dataset("fashion-mnist", download=True)) == 6
    assert sorted(file_server.requests) == sorted(f"/mirror/{n}" for n in names)
    # another file under an official name: refused by the published MD5
    name = names[0]
    file_server.remote(f"mirror/{name}", fake.gz(name.removesuffix(".gz"), level=1))
    with pytest.raises(DownloadError, match="not the published"):
        fetch_fashion_mnist(cache_dir() / "elsewhere")


def test_a_mirror_folder_that_is_not_a_url_is_refused_naming_it(
    fake: FakeFashion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIPREG_FASHION_MNIST_URL", "mirror.example.org/fashion")
    with pytest.raises(
        ValueError, match=r"^LIPREG_FASHION_MNIST_URL='mirror\.example\.org/fashion' is not a URL"
    ):
        fetch_fashion_mnist(tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_a_wrong_md5_leaves_nothing(
    fake: FakeFashion, file_server: FileServer, tmp_path: Path
) -> None:
    files = serve(fake, file_server)
    images, labels = files["test"]
    wrong = Remote(labels.remote.url, labels.remote.filename, "md5", "0" * 32)
    files["test"] = (images, IdxFile(wrong, labels.sha256, labels.size))
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match="not the published"):
        fetch_fashion_mnist(root, files=files)
    assert "t10k-labels-idx1-ubyte.gz" not in [p.name for p in root.iterdir()]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no partial file


# --------------------------------------------------------------------------------------
# the command line


def test_a_truncated_file_exits_2_in_one_line(
    fake: FakeFashion, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = fake.write(tmp_path / "root")
    name = "train-images-idx3-ubyte.gz"
    (root / name).write_bytes(gzip.compress(fake.content[name[:-3]][:-100]))
    argv = ["--data", "fashion-mnist", "--data-root", str(root), "--out", str(tmp_path / "run")]
    err = usage_error(capsys, lambda: main([*argv, "--steps", "1", "--no-progress"]))
    last = err.strip().splitlines()[-1]
    assert last.startswith("lipreg train: error: --data fashion-mnist: ") and "truncated" in last
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_hostile_header_exits_2_from_a_real_process(tmp_path: Path) -> None:
    # the official names, a header claiming 2**31 images and a few bytes: nothing is
    # allocated for them, the process prints one line and exits 2
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        idx_bytes(np.zeros((1, 28, 28), np.uint8), shape=(2**31, 28, 28))
    )
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(1, np.uint8)))
    done = subprocess.run(
        [sys.executable, "-m", "lipreg.train", "--data", "fashion-mnist", "--data-root",
         str(tmp_path), "--out", str(tmp_path / "run"), "--no-progress"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after argparse's usage lines
    assert last.startswith("python -m lipreg.train: error: --data fashion-mnist: ")
    assert "is truncated" in last and "Traceback" not in done.stderr
