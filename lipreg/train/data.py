"""Training data of the reference trainer, all available without downloads at run time.

Every data set is a ``torch.utils.data.Dataset`` of fixed size whose items are float32
samples of shape :attr:`TrainingData.sample_shape`: ``[2]`` points for the toy sets,
``[C, H, W]`` images scaled to ``[-1, 1]`` otherwise. Build them by name with
:func:`load_dataset`; :data:`DATASETS` lists the names with one-line descriptions.

Toy 2-D sets (WGAN-GP's toy suite, Gulrajani et al. 2017, ``gan_toy.py``; same scales, noise
and divisors, drawn once from ``seed`` instead of fresh per batch):

- ``8gaussians``: centres ``2 (cos(k pi/4), sin(k pi/4))``, ``k`` uniform in ``0..7``, plus
  ``N(0, 0.02^2)`` noise per coordinate, all divided by 1.414.
- ``25gaussians``: centres ``(2i, 2j)``, ``i, j in -2..2``, equally many samples per centre
  (then shuffled), plus ``N(0, 0.05^2)`` noise, all divided by 2.828.
- ``swissroll``: ``sklearn.datasets.make_swiss_roll(noise=0.25)``, coordinates 0 and 2,
  divided by 7.5.

Images:

- ``patches`` (the default image data): ``image_size`` x ``image_size`` RGB patches (32 by
  default) cut at uniformly random positions from the two photographs scikit-learn ships
  (``load_sample_images``: china.jpg and flower.jpg, 427 x 640 each), at full size or
  downscaled by 2 or 4 (block means; the source, photograph and scale, is uniform among
  those large enough for the patch), so that patches hold structure at several scales.
- ``digits``: scikit-learn's 8x8 digits, ``[1, 8, 8]``, grey levels 0..16 mapped to
  ``x / 8 - 1``; labels 0..9.
- ``cifar10`` / ``cifar10-test``: the training (``data_batch_1..5``) or test (``test_batch``)
  images of CIFAR-10 read from the official python version in a local directory, with a
  restricted unpickler; labels 0..9.
- ``folder``: every image file under a directory (recursively), decoded with PIL, converted
  to RGB, resized so that the shorter side is ``image_size`` (bicubic) and centre-cropped.

8-bit images map ``v in 0..255`` to ``v / 127.5 - 1``. ``image_size`` resizes the embedded
``digits`` and ``cifar10`` images (bicubic with antialiasing, clamped to ``[-1, 1]``; the
resized copy is held as float32, four times the memory of the 8-bit original).
"""

from __future__ import annotations

import math
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

Kind = Literal["toy", "image"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class TrainingData(Dataset[Tensor], ABC):
    """A fixed-size data set whose items are float32 samples of shape ``sample_shape``.

    Attributes:
        name: the registry name it was built from (see :data:`DATASETS`).
        kind: ``"toy"`` for 2-D points ``[2]``, ``"image"`` for ``[C, H, W]`` in ``[-1, 1]``.
        sample_shape: the shape of one item.
        labels: class labels ``[N]`` (int64) when the data has them, else ``None``; pair them
            with the samples through ``torch.utils.data.StackDataset(data, labels)`` for
            conditional critics.
        num_classes: the number of classes when ``labels`` is set, else ``None``.
    """

    def __init__(
        self,
        name: str,
        kind: Kind,
        sample_shape: tuple[int, ...],
        labels: Tensor | None = None,
        num_classes: int | None = None,
    ) -> None:
        self.name = name
        self.kind: Kind = kind
        self.sample_shape = sample_shape
        self.labels = labels
        self.num_classes = num_classes

    @property
    def is_toy(self) -> bool:
        """Whether the samples are 2-D points (toy data) rather than images."""
        return self.kind == "toy"

    @abstractmethod
    def __len__(self) -> int:
        """The number of samples."""

    @abstractmethod
    def __getitem__(self, index: int) -> Tensor:
        """Sample ``index``, float32 of shape ``sample_shape``."""

    def take(self, indices: Tensor) -> Tensor:
        """Samples ``indices`` (int64 ``[B]``) stacked: float32 ``[B, *sample_shape]``, equal
        to ``torch.stack([self[i] for i in indices])`` (data sets held in memory override
        this with one indexing operation)."""
        _check_indices(indices)
        return torch.stack([self[int(i)] for i in indices])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r}, "
            f"size={len(self)}, sample_shape={list(self.sample_shape)})"
        )


class TensorData(TrainingData):
    """A data set held in memory as one tensor ``data`` ``[N, *sample_shape]``.

    ``data`` is either float32 (returned as is) or uint8 8-bit images (returned as
    ``v / 127.5 - 1``; keeping them 8-bit saves three quarters of the memory).
    """

    def __init__(
        self,
        name: str,
        kind: Kind,
        data: Tensor,
        labels: Tensor | None = None,
        num_classes: int | None = None,
    ) -> None:
        if data.dtype not in (torch.float32, torch.uint8):
            raise TypeError(f"data must be float32 or uint8, got {data.dtype}")
        if labels is not None and labels.shape != (data.shape[0],):
            raise ValueError(
                f"labels must have shape [{data.shape[0]}] to match data, got {list(labels.shape)}"
            )
        super().__init__(name, kind, tuple(data.shape[1:]), labels, num_classes)
        self.data = data

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> Tensor:
        x = self.data[index]
        return _from_uint8(x) if x.dtype == torch.uint8 else x

    def take(self, indices: Tensor) -> Tensor:
        # One gather for the whole batch; the uint8 conversion is elementwise, so the result
        # is bitwise the stack of the items.
        _check_indices(indices)
        x = self.data[indices]
        return _from_uint8(x) if x.dtype == torch.uint8 else x


class ImageFolder(TrainingData):
    """Every image under ``root`` (recursively, sorted paths), decoded lazily with PIL.

    Each image is converted to RGB, resized (bicubic) so that its shorter side is
    ``image_size``, centre-cropped to ``image_size`` x ``image_size`` and scaled to
    ``[-1, 1]``: items ``[3, image_size, image_size]``.
    """

    def __init__(self, root: Path, image_size: int, files: list[Path]) -> None:
        super().__init__("folder", "image", (3, image_size, image_size))
        self.root = root
        self.image_size = image_size
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise OSError(
                f"cannot read image {path} of the folder data set ({err}); remove or repair it"
            ) from err
        return _from_uint8(_resize_crop(rgb, self.image_size))


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
    """

    description: str
    kind: Kind
    needs_root: bool
    default_size: int | None
    native_size: int | None


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
        "32x32 RGB patches of scikit-learn's two photographs at scales 1, 1/2, 1/4 (default "
        "image data)",
        "image",
        needs_root=False,
        default_size=10_000,
        native_size=32,
    ),
    "digits": DatasetSpec(
        "scikit-learn's 1797 8x8 grey-level digits, [1, 8, 8], with labels",
        "image",
        needs_root=False,
        default_size=None,
        native_size=8,
    ),
    "cifar10": DatasetSpec(
        "CIFAR-10 training images (50000, 32x32 RGB, labels) from a local cifar-10-batches-py",
        "image",
        needs_root=True,
        default_size=None,
        native_size=32,
    ),
    "cifar10-test": DatasetSpec(
        "CIFAR-10 test images (10000, 32x32 RGB, labels) from a local cifar-10-batches-py",
        "image",
        needs_root=True,
        default_size=None,
        native_size=32,
    ),
    "folder": DatasetSpec(
        "every image in a local folder (PIL), RGB, shorter side resized and centre-cropped",
        "image",
        needs_root=True,
        default_size=None,
        native_size=32,
    ),
}

DEFAULT_IMAGE_DATASET = "patches"
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
) -> TrainingData:
    """The data set registered as ``name`` (see :data:`DATASETS`).

    Args:
        name: a key of :data:`DATASETS`.
        root: the local directory of ``cifar10``/``cifar10-test`` (``cifar-10-batches-py`` or
            its parent) and ``folder``; must be ``None`` for the others.
        image_size: the side of the square images (``patches``: the patch side, cut without
            resampling; ``digits``, ``cifar10``: a bicubic resize; ``folder``: the crop,
            32 by default); must be ``None`` for toy data.
        seed: seeds everything random (toy samples, patch positions, subsets), an integer in
            ``[0, 2**32)``.
        size: the number of samples: how many are generated for toy data and ``patches``
            (defaults in :data:`DATASETS`), the size of a seeded random subset otherwise
            (default: all).

    Returns:
        a :class:`TrainingData` (items float32 ``[2]`` or ``[C, H, W]`` in ``[-1, 1]``).
    """
    spec = _check_options(name, root, image_size, seed, size)
    gen = torch.Generator().manual_seed(seed)
    if spec.kind == "toy":
        n = spec.default_size if size is None else size
        assert n is not None  # every toy spec generates a default number of samples
        return TensorData(name, "toy", _TOY[name](n, seed, gen))
    side = spec.native_size if image_size is None else image_size
    assert side is not None  # every image spec has a native size
    if name == "patches":
        n = spec.default_size if size is None else size
        assert n is not None
        return TensorData(name, "image", _photo_patches(n, side, gen))
    if name == "folder":
        assert root is not None  # checked by _check_options
        files = _image_files(Path(root))
        return ImageFolder(Path(root), side, [files[i] for i in _subset(len(files), size, gen)])
    if name == "digits":
        images, labels = _digits()
    else:
        assert root is not None
        images, labels = read_cifar10(root, train=name == "cifar10")
    keep = _subset(images.shape[0], size, gen)
    images, labels = images[keep], labels[keep]
    if image_size is not None and image_size != spec.native_size:
        images = _resize(images, image_size)
    return TensorData(name, "image", images, labels, num_classes=10)


def _check_options(
    name: object, root: object, image_size: object, seed: object, size: object
) -> DatasetSpec:
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of:\n{describe_datasets()}")
    spec = DATASETS[name]
    if spec.needs_root and root is None:
        raise ValueError(
            f"data set {name!r} is read from a local directory: pass root=<directory> "
            "(--data-root DIR on the command line)"
            + (" (see " + CIFAR10_URL + ")" if name.startswith("cifar10") else "")
        )
    if not spec.needs_root and root is not None:
        raise ValueError(
            f"data set {name!r} is generated or embedded and reads no directory, but "
            f"root={root!r} was given; drop root, or use 'folder' / 'cifar10' for local data"
        )
    if root is not None and not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a path (str or pathlib.Path), got {type(root).__name__}")
    if image_size is not None:
        if spec.kind == "toy":
            raise ValueError(
                f"image_size applies to image data only; {name!r} is 2-D toy data, drop "
                f"image_size={image_size!r}"
            )
        _check_int(image_size, "image_size", 1)
        if name == "patches" and isinstance(image_size, int) and image_size > _PHOTO_SIDE:
            raise ValueError(
                f"image_size={image_size} exceeds the photographs' shorter side {_PHOTO_SIDE}; "
                f"patches can be at most {_PHOTO_SIDE} pixels wide"
            )
    _check_int(seed, "seed", 0, 2**32 - 1)
    if size is not None:
        _check_int(size, "size", 1)
    return spec


def _check_int(value: object, name: str, low: int, high: int | None = None) -> None:
    """Raise unless ``value`` is an int (not a bool) ``>= low`` (and ``<= high`` if given)."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer {bounds}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {bounds}, got {name}={value}")


def _subset(n: int, size: int | None, gen: torch.Generator) -> Tensor:
    """Indices of a seeded random subset of ``size`` of ``range(n)`` in increasing order."""
    if size is None:
        return torch.arange(n)
    if size > n:
        raise ValueError(f"size={size} exceeds the {n} samples available; pass size <= {n}")
    return torch.randperm(n, generator=gen)[:size].sort().values


def _check_indices(indices: object) -> None:
    # A bool tensor would index as a mask, a float one not at all: both are mistakes here.
    if not isinstance(indices, Tensor) or indices.ndim != 1 or indices.dtype != torch.int64:
        desc = (
            f"{indices.dtype} tensor of shape {list(indices.shape)}"
            if isinstance(indices, Tensor)
            else type(indices).__name__
        )
        raise TypeError(f"indices must be an int64 tensor [B], got {desc}")


def _from_uint8(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1.0


def _to_uint8(x: Tensor) -> Tensor:
    """Images in ``[-1, 1]`` (float) to 8-bit ``round((x + 1) * 127.5)`` clamped to
    ``0..255``, same shape: the inverse of :func:`_from_uint8` on its values."""
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------
# toy 2-D data (WGAN-GP gan_toy.py)


def _eight_gaussians(n: int, seed: int, gen: torch.Generator) -> Tensor:
    angles = torch.randint(0, 8, (n,), generator=gen, dtype=torch.float64) * (math.pi / 4)
    centres = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    noise = 0.02 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return ((centres + noise) / 1.414).float()


def _twenty_five_gaussians(n: int, seed: int, gen: torch.Generator) -> Tensor:
    # Balanced centres as in the reference's fixed data set, shuffled.
    k = torch.randperm(n, generator=gen) % 25
    centres = 2.0 * torch.stack([k // 5 - 2, k % 5 - 2], dim=1).double()
    noise = 0.05 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return ((centres + noise) / 2.828).float()


def _swiss_roll(n: int, seed: int, gen: torch.Generator) -> Tensor:
    from sklearn.datasets import make_swiss_roll

    points, _ = make_swiss_roll(n_samples=n, noise=0.25, random_state=seed)
    return (torch.from_numpy(points[:, [0, 2]]) / 7.5).float()


_TOY: dict[str, Callable[[int, int, torch.Generator], Tensor]] = {
    "8gaussians": _eight_gaussians,
    "25gaussians": _twenty_five_gaussians,
    "swissroll": _swiss_roll,
}


# ---------------------------------------------------------------------------------------
# embedded images

_PHOTO_SIDE = 427  # both of scikit-learn's photographs are 427 x 640


PATCH_SCALES = (1, 2, 4)
"""Downscaling factors of the photographs that ``patches`` are cut from."""


def _photo_sources(side: int) -> list[Tensor]:
    """The photographs at each of :data:`PATCH_SCALES` (``k x k`` block means, rounded),
    uint8 ``[H, W, 3]``, those at least ``side`` pixels high and wide."""
    import numpy as np
    from sklearn.datasets import load_sample_images

    sources = []
    for photo in load_sample_images().images:
        full = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float()
        for k in PATCH_SCALES:
            small = F.avg_pool2d(full, k).round().to(torch.uint8)[0].permute(1, 2, 0)
            if min(small.shape[:2]) >= side:
                sources.append(small)
    return sources


def _photo_patches(n: int, side: int, gen: torch.Generator) -> Tensor:
    """``[n, 3, side, side]`` uint8 patches: a source of :func:`_photo_sources` uniformly
    (photograph and scale), then top and left uniformly within it."""
    sources = _photo_sources(side)
    which = torch.randint(0, len(sources), (n,), generator=gen)
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    patches = torch.empty(n, side, side, 3, dtype=torch.uint8)
    offsets = torch.arange(side)
    for k, src in enumerate(sources):
        mask = which == k
        positions = u[mask] * torch.tensor([src.shape[0] - side + 1, src.shape[1] - side + 1])
        top, left = positions.long().unbind(1)
        rows = (top[:, None] + offsets)[:, :, None]
        cols = (left[:, None] + offsets)[:, None, :]
        patches[mask] = src[rows, cols]
    return patches.permute(0, 3, 1, 2).contiguous()


def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float().div(8.0).sub(1.0).unsqueeze(1)
    return images, torch.from_numpy(digits.target).long()


def _resize(images: Tensor, side: int, chunk: int = 1024) -> Tensor:
    """``[N, C, side, side]`` float32 in ``[-1, 1]``: bicubic, antialiased, clamped."""
    out = []
    for part in torch.split(images, chunk):
        x = _from_uint8(part) if part.dtype == torch.uint8 else part
        y = F.interpolate(x, size=(side, side), mode="bicubic", antialias=True)
        out.append(y.clamp(-1.0, 1.0))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------
# CIFAR-10, official python version


class ForbiddenPickleError(pickle.UnpicklingError):
    """A CIFAR-10 file references a global outside the allowed list (nothing was run)."""


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the globals that the official CIFAR-10 batches contain.

    They hold a dict of bytes, lists of ints/bytes and one uint8 array; rebuilding the array
    needs numpy's ``_reconstruct``, ``ndarray`` and ``dtype`` (``numpy.core`` in the official
    Python 2 files, ``numpy._core`` when written by numpy 2) and, for files re-written by
    Python 3 with protocol 2, ``_codecs.encode``. Anything else (such as ``os.system``) could
    run code while loading and is refused.
    """

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        allowed = _cifar_globals()
        if (module, name) not in allowed:
            raise ForbiddenPickleError(
                f"refusing to load {self.path}: it references {module}.{name}, which the "
                f"official CIFAR-10 python files never contain (allowed: "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in allowed))}); get the genuine files "
                f"from {CIFAR10_URL}"
            )
        return allowed[module, name]


def _cifar_globals() -> dict[tuple[str, str], Any]:
    import codecs

    import numpy as np

    # numpy's own array reconstructor, whatever module it lives in: importing it by name
    # would touch `numpy.core`, a deprecated alias in numpy 2 that warns.
    rebuild = np.zeros(1).__reduce__()[0]
    return {
        ("numpy.core.multiarray", "_reconstruct"): rebuild,
        ("numpy._core.multiarray", "_reconstruct"): rebuild,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }


def read_cifar10(root: str | Path, *, train: bool = True) -> tuple[Tensor, Tensor]:
    """CIFAR-10 images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` int64 from local files.

    Args:
        root: ``cifar-10-batches-py`` (extracted from ``cifar-10-python.tar.gz``) or the
            folder containing it.
        train: the five training batches (50000 images) or, if ``False``, the test batch.

    Each batch file is a pickled dict with ``b"data"`` (uint8 ``[N, 3072]``, the red, green
    and blue 32x32 planes row by row) and ``b"labels"`` (``N`` ints in ``0..9``), read with a
    restricted unpickler that refuses every global but numpy's array reconstruction.
    """
    folder = _cifar_folder(Path(root))
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}. {_cifar_instructions()}")
    images, labels = zip(*(_read_cifar_batch(folder / n) for n in names), strict=True)
    return torch.cat(images), torch.cat(labels)


def _cifar_instructions() -> str:
    return (
        f"Download cifar-10-python.tar.gz (the CIFAR-10 python version) from {CIFAR10_URL}, "
        "extract it (tar xzf cifar-10-python.tar.gz) and pass the folder cifar-10-batches-py "
        "(or the folder containing it) as the data root (--data-root DIR)"
    )


def _cifar_folder(root: Path) -> Path:
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / "batches.meta").is_file() or any(folder.glob("*_batch*")):
            return folder
    what = "does not exist" if not root.exists() else "holds no CIFAR-10 batch files"
    raise FileNotFoundError(f"CIFAR-10 directory {root} {what}. {_cifar_instructions()}")


def _read_cifar_batch(path: Path) -> tuple[Tensor, Tensor]:
    import numpy as np

    with path.open("rb") as f:
        try:
            batch = _CifarUnpickler(f, path).load()
        except ForbiddenPickleError:
            raise
        except Exception as err:  # truncated or foreign files raise anything from EOF on
            raise ValueError(
                f"cannot read {path} as a CIFAR-10 python batch ({type(err).__name__}: {err}); "
                f"{_cifar_instructions()}"
            ) from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: expected a dict with keys b'data' and "
            f"b'labels', got {type(batch).__name__}"
            + (f" with keys {sorted(map(repr, batch))}" if isinstance(batch, dict) else "")
        )
    data, labels = batch[b"data"], batch[b"labels"]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * 32 * 32
    ):
        desc = (
            f"{data.dtype} array of shape {list(data.shape)}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise ValueError(f"{path}: b'data' must be a uint8 array [N, 3072], got {desc}")
    if not (
        isinstance(labels, list)
        and len(labels) == data.shape[0]
        and all(isinstance(y, int) and not isinstance(y, bool) and 0 <= y < 10 for y in labels)
    ):
        raise ValueError(
            f"{path}: b'labels' must be a list of {data.shape[0]} integers in 0..9 (one per row "
            "of b'data')"
        )
    images = torch.from_numpy(data.copy()).view(-1, 3, 32, 32)
    return images, torch.tensor(labels, dtype=torch.int64)


# ---------------------------------------------------------------------------------------
# a folder of images


def _image_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {root} does not exist or is not a directory; pass a directory "
            f"holding images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(
            f"image folder {root} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}, "
            "recursively)"
        )
    return files


def _resize_crop(img: Any, side: int) -> Tensor:
    """``[3, side, side]`` uint8: shorter side resized to ``side`` (bicubic), centre crop."""
    import numpy as np
    from PIL import Image

    w, h = img.size
    scale = side / min(w, h)
    # The shorter side lands on `side` exactly; the longer one is rounded.
    new = (side, max(side, round(h * scale))) if w <= h else (max(side, round(w * scale)), side)
    if new != (w, h):
        img = img.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - side) // 2, (new[1] - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
