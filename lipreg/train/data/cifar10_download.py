"""CIFAR-10 fetched from its authors' site: :data:`CIFAR10_ARCHIVE`, :func:`fetch_cifar10` and
:func:`load_cifar10`."""

from __future__ import annotations

import pickle
from pathlib import Path

from torch import Tensor

from lipreg.train.data.archive import fetch_archive, repair_from_archive
from lipreg.train.data.cifar10 import _cifar_folder, _read_cifar_batch, read_cifar10
from lipreg.train.data.download import Remote

CIFAR10_ARCHIVE = Remote(
    # The python version and its md5sum as listed on the authors' page
    # (https://www.cs.toronto.edu/~kriz/cifar.html: "CIFAR-10 python version, 163 MB,
    # c58f30108f718f92721af3b95e74349a"), the same URL and MD5 as torchvision's
    # (pytorch/vision, torchvision/datasets/cifar.py: CIFAR10.url, CIFAR10.tgz_md5).
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    filename="cifar-10-python.tar.gz",
    algorithm="md5",
    digest="c58f30108f718f92721af3b95e74349a",
    url_env="LIPREG_CIFAR10_URL",
    digest_env="LIPREG_CIFAR10_MD5",
)
"""The official ``cifar-10-python.tar.gz`` (163 MB) and its published MD5; a mirror is set by
``LIPREG_CIFAR10_URL`` (and ``LIPREG_CIFAR10_MD5`` when it serves another file)."""

CIFAR10_FOLDER = "cifar-10-batches-py"
"""The folder the archive unpacks to."""

CIFAR10_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
"""The batch files of the folder, training then test."""


def damaged_batches(folder: Path) -> dict[str, str]:
    """The batch files of ``folder`` that are missing or cannot be read as CIFAR-10 batches,
    each with ``"missing"`` or ``"damaged"`` (every file is read: about 0.1 s each)."""
    found = {}
    for name in CIFAR10_BATCHES:
        path = folder / name
        if not path.is_file():
            found[name] = "missing"
            continue
        try:
            _read_cifar_batch(path)
        except (ValueError, pickle.UnpicklingError, OSError):
            found[name] = "damaged"
    return found


def fetch_cifar10(
    root: str | Path, *, archive: Remote | None = None, progress: bool = True
) -> Path:
    """The CIFAR-10 folder of ``root`` with all six batch files readable, downloaded first if
    ``root`` holds none, repaired if some are missing or damaged.

    ``root`` is ``cifar-10-batches-py`` itself or the folder containing it (as for
    :func:`~lipreg.train.data.read_cifar10`); the data are fetched into
    ``root / "cifar-10-batches-py"``, or into ``root`` itself when it bears that name: the
    ``archive`` (default :data:`CIFAR10_ARCHIVE`, read when called: tests serve small
    archives locally; a mirror through its environment variables) is downloaded, its
    checksum verified, and its ``cifar-10-batches-py`` unpacked safely and atomically
    (:func:`~lipreg.train.data.archive.fetch_archive`). In a folder that has data, every
    batch file is read (:func:`damaged_batches`); those missing or unreadable (an
    interrupted copy, a truncated file) are replaced by the archive's
    (:func:`~lipreg.train.data.archive.repair_from_archive`), and readable ones are never
    touched.
    """
    root = Path(root).expanduser()
    remote = CIFAR10_ARCHIVE if archive is None else archive
    try:
        folder = _cifar_folder(root)
    except FileNotFoundError:
        # a root named after the folder is where the data should appear, not its parent
        parent = root.parent if root.name == CIFAR10_FOLDER else root
        return fetch_archive(remote, parent, CIFAR10_FOLDER, progress=progress)
    broken = damaged_batches(folder)
    if not broken:
        return folder
    why = ", ".join(f"{name} ({state})" for name, state in broken.items())
    return repair_from_archive(
        remote, folder, CIFAR10_FOLDER, list(broken), why=why, progress=progress
    )


def load_cifar10(
    root: str | Path, *, train: bool = True, download: bool = False
) -> tuple[Tensor, Tensor]:
    """:func:`~lipreg.train.data.read_cifar10` of ``root``; with ``download``, data that are
    absent, incomplete or unreadable are first fetched or repaired (:func:`fetch_cifar10`)
    and read again. Intact data are read once, as without ``download``."""
    try:
        return read_cifar10(root, train=train)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError):
        if not download:
            raise
    fetch_cifar10(root)
    return read_cifar10(root, train=train)
