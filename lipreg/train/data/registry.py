"""The registry of the trainer's data sets: :data:`DATASETS` and :func:`load_dataset`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lipreg.train.data.base import Kind, TensorData, TrainingData, check_int, resize, subset
from lipreg.train.data.cifar10_download import load_cifar10
from lipreg.train.data.download import cache_dir
from lipreg.train.data.embedded import PHOTO_SIDE, digits, photo_patches
from lipreg.train.data.fashion_mnist import fetch_fashion_mnist, read_fashion_mnist
from lipreg.train.data.folder import ImageFolder, image_files
from lipreg.train.data.toy import TOY


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry of :data:`DATASETS`.

    Attributes:
        description: one line for ``--help``.
        kind: ``"toy"`` or ``"image"``.
        needs_root: whether the data is read from a local directory (``root``).
        default_size: how many samples are generated when ``size`` is not given; ``None`` for
            sets of a given size, which ``size`` subsamples (a seeded random subset).
        native_size: the image side without ``image_size`` (``None`` for toy data).
        downloadable: whether ``download=True`` can fetch the data; such sets read
            :func:`~lipreg.train.data.cache_dir` when ``root`` is not given.
        held_out: the registry name of the data set's held-out split (the same ``root``),
            which the trainer's quality metrics compare samples with; ``None`` where there is
            none (the evaluation then compares with a subset of the training data).
    """

    description: str
    kind: Kind
    needs_root: bool
    default_size: int | None
    native_size: int | None
    downloadable: bool = False
    held_out: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    "8gaussians": DatasetSpec(
        "toy 2-D: 8 Gaussians (std 0.02) on a circle of radius 2, scaled by 1/1.414",
        "toy",
        needs_root=False,
        default_size=100_000,
        native_size=None,
    ),
    "25gaussians": DatasetSpec(
        "toy 2-D: 5x5 grid of Gaussians (std 0.05, spacing 2), scaled by 1/2.828",
        "toy",
        needs_root=False,
        default_size=100_000,
        native_size=None,
    ),
    "swissroll": DatasetSpec(
        "toy 2-D: scikit-learn's Swiss roll (noise 0.25), coordinates x and z, scaled by 1/7.5",
        "toy",
        needs_root=False,
        default_size=100_000,
        native_size=None,
    ),
    "patches": DatasetSpec(
        "32x32 RGB patches of scikit-learn's two photographs at scales 1, 1/2, 1/4",
        "image",
        needs_root=False,
        default_size=10_000,
        native_size=32,
    ),
    "digits": DatasetSpec(
        "scikit-learn's 8x8 grey-level digits, [1, 8, 8], with labels: the 1198 training "
        "digits (two thirds; the rest is held out for the digits quality metric; the default)",
        "image",
        needs_root=False,
        default_size=None,
        native_size=8,
        held_out="digits-test",
    ),
    "digits-test": DatasetSpec(
        "the 599 held-out digits (every third of scikit-learn's 1797), with labels",
        "image",
        needs_root=False,
        default_size=None,
        native_size=8,
    ),
    "cifar10": DatasetSpec(
        "CIFAR-10 training images (50000, 32x32 RGB, labels) from cifar-10-batches-py in the "
        "data root or the cache (--download fetches it)",
        "image",
        needs_root=True,
        default_size=None,
        native_size=32,
        downloadable=True,
        held_out="cifar10-test",
    ),
    "cifar10-test": DatasetSpec(
        "CIFAR-10 test images (10000, 32x32 RGB, labels) from cifar-10-batches-py in the "
        "data root or the cache (--download fetches it)",
        "image",
        needs_root=True,
        default_size=None,
        native_size=32,
        downloadable=True,
    ),
    "fashion-mnist": DatasetSpec(
        "Fashion-MNIST training images (60000, 28x28 grey level, labels) from the IDX files in "
        "the data root, the cache or Debian's /usr/share/datasets/fashion-mnist (--download "
        "fetches them)",
        "image",
        needs_root=True,
        default_size=None,
        native_size=28,
        downloadable=True,
        held_out="fashion-mnist-test",
    ),
    "fashion-mnist-test": DatasetSpec(
        "Fashion-MNIST test images (10000, 28x28 grey level, labels), found as fashion-mnist "
        "(the reference of the Fashion-MNIST quality metric)",
        "image",
        needs_root=True,
        default_size=None,
        native_size=28,
        downloadable=True,
    ),
    "folder": DatasetSpec(
        "every image in a local folder (PIL), RGB, shorter side resized and centre-cropped",
        "image",
        needs_root=True,
        default_size=None,
        native_size=32,
    ),
}

DEFAULT_IMAGE_DATASET = "digits"
"""The image data used when none is given."""


def describe_datasets() -> str:
    """One line ``name: description`` per registered data set (for ``--help``)."""
    width = max(map(len, DATASETS))
    return "\n".join(f"{name:<{width}}  {spec.description}" for name, spec in DATASETS.items())


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    image_size: int | None = None,
    seed: int = 0,
    size: int | None = None,
    download: bool = False,
) -> TrainingData:
    """The data set registered as ``name`` (see :data:`DATASETS`).

    Args:
        name: a key of :data:`DATASETS`.
        root: the local directory of ``cifar10``/``cifar10-test`` (``cifar-10-batches-py`` or
            its parent; default: :func:`~lipreg.train.data.cache_dir`), of
            ``fashion-mnist``/``fashion-mnist-test`` (the folder of the IDX files; default:
            the cache, then Debian's folder, :func:`~lipreg.train.data.read_fashion_mnist`)
            and of ``folder``; must be ``None`` for the others.
        image_size: the side of the square images (``patches``: the patch side, cut without
            resampling; ``digits``, ``fashion-mnist``, ``cifar10``: a bicubic resize;
            ``folder``: the crop, 32 by default); must be ``None`` for toy data.
        seed: seeds everything random (toy samples, patch positions, subsets), an integer in
            ``[0, 2**32)``.
        size: the number of samples: how many are generated for toy data and ``patches``
            (defaults in :data:`DATASETS`), the size of a seeded random subset otherwise
            (default: all).
        download: fetch ``cifar10``/``cifar10-test`` into ``root`` (or the cache) when absent,
            and repair them when a batch file is missing or unreadable
            (:func:`~lipreg.train.data.fetch_cifar10`: the official archive, MD5-checked,
            unpacked safely and atomically), and likewise the four Fashion-MNIST files
            (:func:`~lipreg.train.data.fetch_fashion_mnist`); without it nothing is
            downloaded.

    Returns:
        a :class:`TrainingData` (items float32 ``[2]`` or ``[C, H, W]`` in ``[-1, 1]``).
    """
    spec = _check_options(name, root, image_size, seed, size, download)
    gen = torch.Generator().manual_seed(seed)
    if spec.kind == "toy":
        n = spec.default_size if size is None else size
        assert n is not None  # every toy spec generates a default number of samples
        return TensorData(name, "toy", TOY[name](n, seed, gen))
    side = spec.native_size if image_size is None else image_size
    assert side is not None  # every image spec has a native size
    if name == "patches":
        n = spec.default_size if size is None else size
        assert n is not None
        return TensorData(name, "image", photo_patches(n, side, gen))
    if name == "folder":
        assert root is not None  # checked by _check_options
        files = image_files(Path(root))
        return ImageFolder(Path(root), side, [files[i] for i in subset(len(files), size, gen)])
    if name in ("digits", "digits-test"):
        images, labels = digits("train" if name == "digits" else "test")
    elif name in ("fashion-mnist", "fashion-mnist-test"):
        if download:
            fetch_fashion_mnist(root)
        images, labels = read_fashion_mnist(root, train=name == "fashion-mnist")
    else:
        folder = cache_dir() if root is None else Path(root)
        images, labels = load_cifar10(folder, train=name == "cifar10", download=download)
    keep = subset(images.shape[0], size, gen)
    images, labels = images[keep], labels[keep]
    if image_size is not None and image_size != spec.native_size:
        images = resize(images, image_size)
    return TensorData(name, "image", images, labels, num_classes=10)


def _check_options(
    name: object, root: object, image_size: object, seed: object, size: object, download: object
) -> DatasetSpec:
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of:\n{describe_datasets()}")
    spec = DATASETS[name]
    if spec.needs_root and root is None and not spec.downloadable:
        raise ValueError(
            f"data set {name!r} is read from a local directory: pass root=<directory> "
            "(--data-root DIR on the command line)"
        )
    if not spec.needs_root and root is not None:
        raise ValueError(
            f"data set {name!r} is generated or embedded and reads no directory, but "
            f"root={root!r} was given; drop root, or use 'folder' / 'cifar10' for local data"
        )
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    if download and not spec.downloadable:
        fetchable = ", ".join(repr(n) for n, s in DATASETS.items() if s.downloadable)
        raise ValueError(
            f"download=True fetches {fetchable} only; {name!r} is "
            + ("read from root as it is" if spec.needs_root else "generated or embedded")
            + ", drop download (--download)"
        )
    if root is not None and not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a path (str or pathlib.Path), got {type(root).__name__}")
    if image_size is not None:
        if spec.kind == "toy":
            raise ValueError(
                f"image_size applies to image data only; {name!r} is 2-D toy data, drop "
                f"image_size={image_size!r}"
            )
        check_int(image_size, "image_size", 1)
        if name == "patches" and isinstance(image_size, int) and image_size > PHOTO_SIDE:
            raise ValueError(
                f"image_size={image_size} exceeds the photographs' shorter side {PHOTO_SIDE}; "
                f"patches can be at most {PHOTO_SIDE} pixels wide"
            )
    check_int(seed, "seed", 0, 2**32 - 1)
    if size is not None:
        check_int(size, "size", 1)
    return spec
