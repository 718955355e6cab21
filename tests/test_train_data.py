"""The trainer's data sets: toy sets against their definitions, embedded images against the
scikit-learn originals, CIFAR-10 on files written here in the official format, folders of
PNGs written here, and a clear error for every bad option."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images, make_swiss_roll
from torch.utils.data import DataLoader, StackDataset
from train_helpers import write_cifar

from lipreg.train.data import (
    DATASETS,
    DEFAULT_IMAGE_DATASET,
    ForbiddenPickleError,
    ImageFolder,
    TensorData,
    describe_datasets,
    load_dataset,
    read_cifar10,
)

# --------------------------------------------------------------------------------------
# toy data


def nearest(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2)
    k = d.argmin(axis=1)
    return k, points - centres[k]


def test_eight_gaussians_follow_wgan_gp() -> None:
    data = load_dataset("8gaussians", size=8000, seed=3)
    assert isinstance(data, TensorData) and data.is_toy and data.sample_shape == (2,)
    assert len(data) == 8000 and data[0].dtype == torch.float32 and data[0].shape == (2,)
    x = data.data.double().numpy() * 1.414  # undo the reference's divisor
    centres = (
        np.array(
            [(1, 0), (-1, 0), (0, 1), (0, -1)]
            + [(a / math.sqrt(2), b / math.sqrt(2)) for a in (1, -1) for b in (1, -1)]
        )
        * 2.0
    )
    k, noise = nearest(x, centres)
    assert np.abs(noise).max() < 0.02 * 6  # every point sits on one of the 8 centres
    assert np.allclose(noise.std(axis=0), 0.02, rtol=0.05)
    counts = np.bincount(k, minlength=8)
    assert np.all(np.abs(counts - 1000) < 4 * math.sqrt(1000))  # uniform choice of centre


def test_twenty_five_gaussians_balanced_grid() -> None:
    data = load_dataset("25gaussians", size=2500, seed=1)
    x = data.data.double().numpy() * 2.828
    centres = np.array([(2 * i, 2 * j) for i in range(-2, 3) for j in range(-2, 3)], float)
    k, noise = nearest(x, centres)
    assert np.array_equal(np.bincount(k, minlength=25), np.full(25, 100))
    assert np.allclose(noise.std(axis=0), 0.05, rtol=0.08)
    assert np.abs(noise).max() < 0.05 * 6
    # shuffled, not in centre order
    assert len(set(k[:25].tolist())) > 5


def test_swiss_roll_is_sklearns_scaled() -> None:
    data = load_dataset("swissroll", size=300, seed=7)
    points, _ = make_swiss_roll(n_samples=300, noise=0.25, random_state=7)
    assert torch.allclose(data.data.double(), torch.from_numpy(points[:, [0, 2]] / 7.5), atol=1e-6)


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians", "swissroll"])
def test_toy_seeding(name: str) -> None:
    a, b = load_dataset(name, size=50, seed=5), load_dataset(name, size=50, seed=5)
    c = load_dataset(name, size=50, seed=6)
    assert isinstance(a, TensorData) and isinstance(b, TensorData) and isinstance(c, TensorData)
    assert torch.equal(a.data, b.data) and not torch.equal(a.data, c.data)
    assert a.labels is None and a.num_classes is None and a.kind == "toy"
    batch = next(iter(DataLoader(a, batch_size=16)))
    assert batch.shape == (16, 2) and batch.dtype == torch.float32


def test_toy_default_size() -> None:
    assert len(load_dataset("8gaussians")) == DATASETS["8gaussians"].default_size == 100_000


# --------------------------------------------------------------------------------------
# embedded images


def block_means(photo: np.ndarray, k: int) -> np.ndarray:
    h, w = photo.shape[0] // k, photo.shape[1] // k
    blocks = photo[: h * k, : w * k].astype(np.float64).reshape(h, k, w, k, 3)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def find_patch(patch: np.ndarray, sources: list[np.ndarray]) -> list[tuple[int, int, int]]:
    """Brute force: corners where five probe pixels match, then the whole patch."""
    s = patch.shape[0]
    probes = [(0, 0), (0, s - 1), (s - 1, 0), (s - 1, s - 1), (s // 2, s // 2)]
    found = []
    for i, src in enumerate(sources):
        h, w = src.shape[0] - s + 1, src.shape[1] - s + 1
        if h < 1 or w < 1:
            continue
        hit = np.ones((h, w), bool)
        for py, px in probes:
            hit &= (src[py : py + h, px : px + w] == patch[py, px]).all(2)
        ys, xs = np.nonzero(hit)
        found += [
            (i, y, x)
            for y, x in zip(ys, xs, strict=True)
            if np.array_equal(src[y : y + s, x : x + s], patch)
        ]
    return found


def test_patches_are_cut_from_the_photographs() -> None:
    data = load_dataset("patches", size=60, seed=2)
    assert isinstance(data, TensorData) and DEFAULT_IMAGE_DATASET == "digits"
    assert data.kind == "image" and not data.is_toy and data.sample_shape == (3, 32, 32)
    assert len(data) == 60 and data.data.dtype == torch.uint8
    sources = [block_means(p, k) for p in load_sample_images().images for k in (1, 2, 4)]
    scales = set()
    for i in range(0, 60, 6):
        x = data[i]
        assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
        patch = np.rint((x.permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)
        found = find_patch(patch, sources)
        assert found, f"patch {i} is not a crop of either photograph at scale 1, 1/2 or 1/4"
        scales |= {src % 3 for src, _, _ in found}
    assert scales == {0, 1, 2}  # every scale is drawn
    again = load_dataset("patches", size=60, seed=2)
    other = load_dataset("patches", size=60, seed=3)
    assert isinstance(again, TensorData) and isinstance(other, TensorData)
    assert torch.equal(again.data, data.data) and not torch.equal(other.data, data.data)


def test_patches_image_size_cuts_larger_patches() -> None:
    data = load_dataset("patches", size=3, image_size=48)
    assert data.sample_shape == (3, 48, 48) and data[2].shape == (3, 48, 48)
    # 300 pixels: only the full-size photographs (427 high) hold such a patch
    big = load_dataset("patches", size=2, image_size=300)
    photos = list(load_sample_images().images)
    patch = np.rint((big[1].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)
    assert find_patch(patch, photos)


def test_digits_match_sklearn() -> None:
    """The training digits are scikit-learn's digits 1, 2, 4, 5, 7, ... (every third one,
    from index 0, is held out)."""
    data = load_dataset("digits")
    ref = load_digits()
    kept = [i for i in range(1797) if i % 3]
    assert isinstance(data, TensorData) and len(data) == len(kept) == 1198
    assert data.sample_shape == (1, 8, 8) and data.num_classes == 10
    assert data.labels is not None
    assert torch.equal(data.labels, torch.from_numpy(ref.target[kept]))
    assert torch.equal(data[5][0].double(), torch.from_numpy(ref.images[kept[5]] / 8.0 - 1.0))
    pairs = StackDataset(data, data.labels)
    x, y = pairs[11]
    assert torch.equal(x, data[11]) and y == ref.target[kept[11]]


def test_digits_subset_keeps_labels_aligned() -> None:
    data = load_dataset("digits", size=40, seed=4)
    ref = load_digits()
    assert isinstance(data, TensorData) and len(data) == 40 and data.labels is not None
    for i in range(40):
        matches = np.nonzero((ref.images / 8.0 - 1.0 == data[i][0].double().numpy()).all((1, 2)))
        assert ref.target[matches[0]].tolist().count(int(data.labels[i])) >= 1
    assert torch.equal(load_dataset("digits", size=40, seed=4).data, data.data)


def test_digits_resize() -> None:
    data = load_dataset("digits", image_size=16, size=10)
    assert isinstance(data, TensorData) and data.sample_shape == (1, 16, 16)
    assert data.data.dtype == torch.float32
    assert data.data.min() >= -1 and data.data.max() <= 1
    # a resize keeps the mean grey level (antialiased bicubic, up to the edge clamp)
    small = load_dataset("digits", size=10)
    assert isinstance(small, TensorData)
    assert torch.allclose(data.data.mean((1, 2, 3)), small.data.mean((1, 2, 3)), atol=0.05)


# --------------------------------------------------------------------------------------
# CIFAR-10 in the official python format


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_reads_official_format(tmp_path: Path, protocol: int) -> None:
    batches = write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    for root in (tmp_path, tmp_path / "cifar-10-batches-py", str(tmp_path)):
        data = load_dataset("cifar10", root=root)
        assert isinstance(data, TensorData) and len(data) == 15 and data.labels is not None
        assert data.sample_shape == (3, 32, 32) and data.num_classes == 10
    raw = batches["data_batch_2"][b"data"]
    assert isinstance(raw, np.ndarray)
    x = data[3 + 1]  # second row of the second batch
    for c, y, col in [(0, 0, 0), (1, 5, 7), (2, 31, 31), (0, 17, 3)]:
        assert x[c, y, col].item() == pytest.approx(
            raw[1, c * 1024 + y * 32 + col] / 127.5 - 1, abs=1e-6
        )
    labels = [y for i in range(1, 6) for y in batches[f"data_batch_{i}"][b"labels"]]  # type: ignore[attr-defined]
    assert data.labels is not None and data.labels.tolist() == labels
    test = load_dataset("cifar10-test", root=tmp_path)
    assert len(test) == 3 and test.labels is not None
    assert test.labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar_python2_global_names(tmp_path: Path) -> None:
    """The official files were pickled by Python 2 and name numpy.core.multiarray."""
    write_cifar(tmp_path / "c")
    path = tmp_path / "c" / "test_batch"
    blob = path.read_bytes()
    assert b"numpy._core.multiarray\n_reconstruct" in blob
    path.write_bytes(blob.replace(b"numpy._core.", b"numpy.core."))
    images, labels = read_cifar10(tmp_path / "c", train=False)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (3,)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_refuses_foreign_globals(tmp_path: Path, protocol: int) -> None:
    write_cifar(tmp_path / "c")
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil(marker)}
    (tmp_path / "c" / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=protocol))
    with pytest.raises(ForbiddenPickleError) as info:
        load_dataset("cifar10", root=tmp_path / "c")
    assert "data_batch_3" in str(info.value) and "system" in str(info.value)
    assert not marker.exists()
    assert isinstance(info.value, pickle.UnpicklingError)


def test_cifar_missing_directory_says_where_to_get_it(tmp_path: Path) -> None:
    for root in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(FileNotFoundError) as info:
            load_dataset("cifar10", root=root)
        msg = str(info.value)
        assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg
        assert "cifar-10-python.tar.gz" in msg and "cifar-10-batches-py" in msg
        assert str(root) in msg


def test_cifar_missing_batch(tmp_path: Path) -> None:
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cifar10", root=tmp_path / "c")
    assert "data_batch_4" in str(info.value) and "cifar.html" in str(info.value)
    assert len(load_dataset("cifar10-test", root=tmp_path / "c")) == 3


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ([1, 2, 3], "dict with keys b'data' and b'labels'"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "list of 2 integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "in 0..9"),
    ],
)
def test_cifar_rejects_wrong_contents(tmp_path: Path, content: object, expect: str) -> None:
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(ValueError) as info:
        load_dataset("cifar10-test", root=tmp_path / "c")
    assert expect in str(info.value) and "test_batch" in str(info.value)


def test_cifar_truncated_file(tmp_path: Path) -> None:
    write_cifar(tmp_path / "c")
    path = tmp_path / "c" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError) as info:
        load_dataset("cifar10-test", root=tmp_path / "c")
    assert "cannot read" in str(info.value) and "test_batch" in str(info.value)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar_re_saved_with_any_protocol_is_read(tmp_path: Path, protocol: int) -> None:
    """Genuine data re-pickled by Python 3 (protocol 5 builds arrays with numpy's
    _frombuffer, protocols 0-2 build empty bytes with bytes()) is not foreign."""
    batches = write_cifar(tmp_path / "c", protocol=protocol)
    path = tmp_path / "c" / "test_batch"
    batch = {**batches["test_batch"], b"filenames": [b"", b"b.png", b""], b"batch_label": b""}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = read_cifar10(tmp_path / "c", train=False)
    raw = batches["test_batch"][b"data"]
    assert isinstance(raw, np.ndarray)
    assert torch.equal(images, torch.from_numpy(raw).view(-1, 3, 32, 32))
    assert labels.tolist() == batches["test_batch"][b"labels"]


class _Declared:
    """Pickles as a call of an allowed global that declares an array of ``shape``."""

    def __init__(self, call: str, shape: tuple[int, ...]) -> None:
        self.call, self.shape = call, shape

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        if self.call == "ndarray":
            return (np.ndarray, (self.shape, np.dtype("u1")))
        rebuild = np.zeros(1).__reduce__()[0]
        return (rebuild, (np.ndarray, self.shape, b"B"))


@pytest.mark.parametrize("call", ["_reconstruct", "ndarray"])
def test_cifar_arrays_are_bounded_by_the_file_size(tmp_path: Path, call: str) -> None:
    """A small file must not declare a large uninitialised array that passes as images."""
    write_cifar(tmp_path / "c")
    n = 20_000  # 61 MB of images declared by a file of about 40 kB (the labels)
    bomb = {b"data": _Declared(call, (n, 3072)), b"labels": [0] * n}
    path = tmp_path / "c" / "test_batch"
    path.write_bytes(pickle.dumps(bomb, protocol=2))
    assert path.stat().st_size < 100_000
    with pytest.raises(pickle.UnpicklingError) as info:
        read_cifar10(tmp_path / "c", train=False)
    assert "test_batch" in str(info.value) and "numpy" in str(info.value)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00@\x85R.",  # bytes(2**30): 1 GiB of zeros
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.",
    ],
    ids=["bytes-of-a-size", "encode-not-latin1"],
)
def test_cifar_byte_globals_take_only_the_genuine_arguments(tmp_path: Path, payload: bytes) -> None:
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(payload)
    with pytest.raises(ForbiddenPickleError, match="test_batch"):
        read_cifar10(tmp_path / "c", train=False)


def test_cifar_resize_and_subset(tmp_path: Path) -> None:
    write_cifar(tmp_path / "c", n=4)
    data = load_dataset("cifar10", root=tmp_path / "c", image_size=16, size=6, seed=1)
    assert len(data) == 6 and data.sample_shape == (3, 16, 16) and data[5].shape == (3, 16, 16)


# --------------------------------------------------------------------------------------
# a folder of images


def test_folder_resize_and_centre_crop(tmp_path: Path) -> None:
    wide = np.random.default_rng(0).integers(0, 256, (20, 40, 3), dtype=np.uint8)  # h=20, w=40
    Image.fromarray(wide).save(tmp_path / "a_wide.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((30, 30), 77, np.uint8), mode="L").save(tmp_path / "sub" / "grey.PNG")
    Image.fromarray(np.full((50, 25, 3), 200, np.uint8)).save(tmp_path / "tall.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_dataset("folder", root=tmp_path, image_size=20)
    assert isinstance(data, ImageFolder) and len(data) == 3 and data.sample_shape == (3, 20, 20)
    # the shorter side is already 20: no resampling, the centre 20 columns are kept
    expect = torch.from_numpy(wide[:, 10:30]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(data[0], expect)
    grey = data[1]  # sorted paths: a_wide.png, sub/grey.PNG, tall.jpg
    assert grey.shape == (3, 20, 20) and torch.allclose(grey, torch.full_like(grey, 77 / 127.5 - 1))
    tall = data[2]
    assert tall.shape == (3, 20, 20) and (tall - (200 / 127.5 - 1)).abs().max() < 2 / 127.5


def test_folder_default_size_and_subset(tmp_path: Path) -> None:
    for i in range(5):
        Image.fromarray(np.full((40, 40, 3), i * 10, np.uint8)).save(tmp_path / f"{i}.png")
    data = load_dataset("folder", root=tmp_path)
    assert data.sample_shape == (3, 32, 32) and data[4].shape == (3, 32, 32)
    sub = load_dataset("folder", root=tmp_path, size=2, seed=3)
    assert isinstance(sub, ImageFolder) and len(sub) == 2
    assert set(sub.files) <= set(data.files)  # type: ignore[attr-defined]
    assert next(iter(DataLoader(sub, batch_size=2))).shape == (2, 3, 32, 32)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("folder", root=tmp_path / "missing")
    assert "does not exist" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("folder", root=tmp_path)
    assert "holds no images" in str(info.value)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    data = load_dataset("folder", root=tmp_path)
    with pytest.raises(OSError) as broken:
        data[0]
    assert "broken.png" in str(broken.value)


# --------------------------------------------------------------------------------------
# registry and bad options


def test_tensor_data_checks() -> None:
    with pytest.raises(TypeError) as info:
        TensorData("x", "toy", torch.zeros(3, 2, dtype=torch.float64))
    assert "float32 or uint8" in str(info.value)
    with pytest.raises(ValueError) as shape:
        TensorData("x", "image", torch.zeros(3, 1, 2, 2), labels=torch.zeros(2, dtype=torch.long))
    assert "labels must have shape [3]" in str(shape.value)
    data = TensorData("x", "image", torch.full((2, 1, 2, 2), 255, dtype=torch.uint8))
    assert torch.equal(data[1], torch.ones(1, 2, 2)) and "size=2" in repr(data)


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_take_is_the_stack_of_the_items(dtype: torch.dtype) -> None:
    values = torch.arange(5 * 3 * 2 * 2).reshape(5, 3, 2, 2) % 256
    data = TensorData("x", "image", values.to(dtype))
    indices = torch.tensor([4, 0, 4, 2])
    batch = data.take(indices)
    assert batch.dtype == torch.float32
    assert torch.equal(batch, torch.stack([data[i] for i in (4, 0, 4, 2)]))  # bitwise
    assert data.take(torch.tensor([], dtype=torch.int64)).shape == (0, 3, 2, 2)


def test_take_of_a_folder_reads_each_image(tmp_path: Path) -> None:
    for k, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (6, 6), colour).save(tmp_path / f"{k}.png")
    data = load_dataset("folder", root=tmp_path, image_size=4)
    batch = data.take(torch.tensor([2, 0]))
    assert batch.shape == (2, 3, 4, 4) and torch.equal(batch, torch.stack([data[2], data[0]]))


@pytest.mark.parametrize(
    "indices",
    [
        torch.tensor([True, False]),
        torch.tensor([0.0, 1.0]),
        torch.zeros(1, 2, dtype=torch.long),
        [0],
    ],
    ids=["bool", "float", "2-D", "list"],
)
def test_take_rejects_indices_that_are_not_int64_vectors(indices: object) -> None:
    for data in (load_dataset("8gaussians", size=4), load_dataset("digits", size=4)):
        with pytest.raises(TypeError) as info:
            data.take(indices)  # type: ignore[arg-type]
        assert "indices must be an int64 tensor [B]" in str(info.value)


def test_registry_descriptions() -> None:
    text = describe_datasets()
    for name, spec in DATASETS.items():
        assert name in text and spec.description in text
        assert spec.kind in ("toy", "image")


@pytest.mark.parametrize(
    ("kwargs", "error", "expect"),
    [
        ({"name": "mnist"}, ValueError, "unknown data set 'mnist'"),
        ({"name": 3}, ValueError, "choose one of"),
        ({"name": "8gaussians", "root": "/tmp"}, ValueError, "reads no directory"),
        ({"name": "folder"}, ValueError, "pass root="),
        ({"name": "folder", "root": 5}, TypeError, "root must be a path"),
        ({"name": "swissroll", "image_size": 32}, ValueError, "image data only"),
        ({"name": "patches", "image_size": 0}, ValueError, "image_size must be an integer >= 1"),
        ({"name": "patches", "image_size": 32.0}, TypeError, "image_size must be an integer"),
        ({"name": "patches", "image_size": True}, TypeError, "image_size must be an integer"),
        ({"name": "patches", "image_size": 500}, ValueError, "at most 427"),
        ({"name": "digits", "seed": -1}, ValueError, "seed must be an integer in [0, "),
        ({"name": "digits", "seed": 2**32}, ValueError, "seed must be an integer in [0, "),
        ({"name": "digits", "seed": 1.5}, TypeError, "seed must be an integer"),
        ({"name": "8gaussians", "size": 0}, ValueError, "size must be an integer >= 1"),
        ({"name": "8gaussians", "size": False}, TypeError, "size must be an integer"),
        ({"name": "digits", "size": 1199}, ValueError, "size=1199 exceeds the 1198 samples"),
    ],
)
def test_bad_options(kwargs: dict[str, object], error: type[Exception], expect: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(error) as info:
        load_dataset(name, **kwargs)  # type: ignore[arg-type]
    assert expect in str(info.value)
