"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017) from its four IDX files:
:func:`read_fashion_mnist`, :func:`fetch_fashion_mnist` and :data:`FASHION_MNIST_FILES`.

The files (gzipped or not) are looked for in the data root when one is given, else in
lipreg's cache (``cache_dir() / "fashion-mnist"``) and then in Debian's folder
``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``). Whatever
their origin, their decompressed content must have the SHA-256 recorded here: Debian
recompressed the official ``.gz`` files (so their MD5s differ from the published ones) but
kept their content, which is accepted, while a damaged or foreign copy is refused. Downloads
fetch the official ``.gz`` files, each checked against its published MD5 and renamed into
place only then (:func:`~lipreg.train.data.download.fetch_file`), from
:data:`FASHION_MNIST_URL` or the folder URL of ``$LIPREG_FASHION_MNIST_URL`` (a mirror).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lipreg.train.data.download import Remote, cache_dir, fetch_file
from lipreg.train.data.idx import IdxError, parse_idx, read_idx_bytes

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
"""Where Fashion-MNIST's README links its four ``.gz`` files."""

MIRROR_ENV = "LIPREG_FASHION_MNIST_URL"
"""The environment variable of a folder URL serving the four official ``.gz`` files instead
(each must still have its published MD5)."""

FASHION_MNIST_FOLDER = "fashion-mnist"
"""The folder of the cache (and of a data root) that downloads go to."""

SYSTEM_FOLDERS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
"""Folders of system packages searched after the cache (Debian's ``dataset-fashion-mnist``)."""

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""The names of the labels 0..9."""

SIDE = 28
"""The images' side."""


@dataclass(frozen=True)
class IdxFile:
    """One IDX file of a data set: its official gzipped copy and what it holds.

    Attributes:
        remote: the published ``.gz`` file with its published MD5 (``remote.filename`` is
            the file name plus ``.gz``).
        sha256: the SHA-256 of the decompressed content, lowercase hexadecimal.
        size: the decompressed size in bytes (no file larger is read).
    """

    remote: Remote
    sha256: str
    size: int

    @property
    def name(self) -> str:
        """The file name without ``.gz``, e.g. ``train-images-idx3-ubyte``."""
        return self.remote.filename.removesuffix(".gz")


def _official(name: str, md5: str, sha256: str, size: int) -> IdxFile:
    remote = Remote(
        f"{FASHION_MNIST_URL}{name}.gz", f"{name}.gz", "md5", md5, folder_env=MIRROR_ENV
    )
    return IdxFile(remote, sha256, size)


FASHION_MNIST_FILES: dict[str, tuple[IdxFile, IdxFile]] = {
    # MD5s of the .gz files as published in Fashion-MNIST's README; SHA-256 and sizes of
    # their decompressed content, computed from Debian's dataset-fashion-mnist (whose
    # decompressed bytes are the originals).
    "train": (
        _official(
            "train-images-idx3-ubyte",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            47_040_016,
        ),
        _official(
            "train-labels-idx1-ubyte",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            60_008,
        ),
    ),
    "test": (
        _official(
            "t10k-images-idx3-ubyte",
            "bef4ecab320f06d8554ea6380940ec79",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            7_840_016,
        ),
        _official(
            "t10k-labels-idx1-ubyte",
            "bb300cfdad3c16e7a12a480ee83cd310",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            10_008,
        ),
    ),
}
"""The (images, labels) files of the ``"train"`` (60,000) and ``"test"`` (10,000) splits."""

Files = dict[str, tuple[IdxFile, IdxFile]]


def read_fashion_mnist(
    root: str | Path | None = None, *, train: bool = True, files: Files | None = None
) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST images ``[N, 1, 28, 28]`` uint8 and labels ``[N]`` int64 in ``0..9``.

    Args:
        root: the folder of the four files (or its ``fashion-mnist`` or torchvision's
            ``FashionMNIST/raw`` sub-folder); default: the cache, then Debian's folder.
        train: the 60,000 training images or, if ``False``, the 10,000 test images.
        files: the expected files (default :data:`FASHION_MNIST_FILES`, read when called:
            tests use files of their own).

    Each file, gzipped or not, is read whole (no more than its recorded size), parsed by the
    strict IDX reader (:func:`~lipreg.train.data.idx.parse_idx`) and refused unless its
    content has the recorded SHA-256 (:class:`~lipreg.train.data.idx.IdxError`, a
    ``ValueError``); ``FileNotFoundError`` says where the files were looked for and how to
    get them.
    """
    split = "train" if train else "test"
    images_file, labels_file = (FASHION_MNIST_FILES if files is None else files)[split]
    folder = find_fashion_mnist(root, split, files)
    images, labels = _read_checked(folder, images_file), _read_checked(folder, labels_file)
    n = images.shape[0]
    if images.dtype != torch.uint8 or images.shape[1:] != (SIDE, SIDE):
        raise IdxError(
            f"{folder / images_file.name} must hold uint8 images [N, {SIDE}, {SIDE}], got "
            f"{images.dtype} {list(images.shape)}"
        )
    if labels.dtype != torch.uint8 or labels.shape != (n,) or bool((labels > 9).any()):
        raise IdxError(
            f"{folder / labels_file.name} must hold {n} uint8 labels in 0..9 (one per image), "
            f"got {labels.dtype} {list(labels.shape)}"
        )
    return images.unsqueeze(1), labels.long()


def find_fashion_mnist(root: str | Path | None, split: str, files: Files | None = None) -> Path:
    """The first folder holding both files of ``split`` (``"train"`` or ``"test"``),
    gzipped or not, among :func:`search_folders` of ``root``; raises ``FileNotFoundError``
    naming them otherwise."""
    pair = (FASHION_MNIST_FILES if files is None else files)[split]
    folders = search_folders(root)
    for folder in folders:
        if all(_existing(folder, f) is not None for f in pair):
            return folder
    names = " and ".join(f"{f.name}[.gz]" for f in pair)
    raise FileNotFoundError(
        f"Fashion-MNIST's {split} files ({names}) are in none of "
        f"{', '.join(str(f) for f in folders)}. {_instructions(root)}"
    )


def fetch_fashion_mnist(
    root: str | Path | None = None, *, files: Files | None = None, progress: bool = True
) -> Path:
    """Download the Fashion-MNIST files that :func:`find_fashion_mnist` finds nowhere, into
    ``root`` (default: ``cache_dir() / "fashion-mnist"``); returns that folder.

    Both splits are fetched (the quality metric needs the test split beside the training
    one). Each ``.gz`` goes through :func:`~lipreg.train.data.download.fetch_file`: checked
    against its published MD5, renamed into place only then, so an interrupted or corrupt
    transfer leaves nothing. Files already found anywhere are never downloaded nor replaced.
    """
    files = FASHION_MNIST_FILES if files is None else files
    target = cache_dir() / FASHION_MNIST_FOLDER if root is None else Path(root).expanduser()
    for split, pair in files.items():
        try:
            find_fashion_mnist(root, split, files)
        except FileNotFoundError:
            for f in pair:
                if _existing(target, f) is None:
                    fetch_file(f.remote, target, progress=progress)
    return target


def search_folders(root: str | Path | None) -> list[Path]:
    """Where the files are looked for, in order: ``root``, ``root / "fashion-mnist"`` and
    ``root / "FashionMNIST" / "raw"`` (torchvision's layout) when ``root`` is given, else
    ``cache_dir() / "fashion-mnist"`` and :data:`SYSTEM_FOLDERS`."""
    if root is None:
        return [cache_dir() / FASHION_MNIST_FOLDER, *SYSTEM_FOLDERS]
    base = Path(root).expanduser()
    return [base, base / FASHION_MNIST_FOLDER, base / "FashionMNIST" / "raw"]


def _existing(folder: Path, f: IdxFile) -> Path | None:
    for path in (folder / f.name, folder / f.remote.filename):
        if path.is_file():
            return path
    return None


def _read_checked(folder: Path, f: IdxFile) -> Tensor:
    path = _existing(folder, f)
    assert path is not None  # found by find_fashion_mnist
    data = read_idx_bytes(path, max_bytes=f.size)
    values = parse_idx(data, str(path))
    got = hashlib.sha256(data).hexdigest()
    if got != f.sha256:
        raise IdxError(
            f"{path} is not the official {f.name}: its content has SHA-256 {got}, not "
            f"{f.sha256} (a damaged or foreign copy); delete it and pass --download "
            f"(download=True) to fetch the original, or get it from {FASHION_MNIST_URL}"
        )
    return values


def _instructions(root: str | Path | None) -> str:
    where = "the cache" if root is None else str(root)
    return (
        f"Pass --download (download=True) to fetch the official files, MD5-checked, into "
        f"{where}; install Debian's copy (apt-get install dataset-fashion-mnist); or put "
        f"the four files from {FASHION_MNIST_URL} (gzipped or not) in a folder and pass it "
        "as the data root (--data-root DIR)"
    )
