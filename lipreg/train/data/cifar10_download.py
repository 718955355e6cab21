"""CIFAR-10 fetched from its authors' site: :data:`CIFAR10_ARCHIVE` and :func:`fetch_cifar10`."""

from __future__ import annotations

from pathlib import Path

from lipreg.train.data.archive import fetch_archive
from lipreg.train.data.cifar10 import _cifar_folder
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
)
"""The official ``cifar-10-python.tar.gz`` (163 MB) and its published MD5."""

CIFAR10_FOLDER = "cifar-10-batches-py"
"""The folder the archive unpacks to."""


def fetch_cifar10(
    root: str | Path, *, archive: Remote | None = None, progress: bool = True
) -> Path:
    """The CIFAR-10 folder of ``root``, downloaded first if ``root`` holds none.

    ``root`` is ``cifar-10-batches-py`` itself or the folder containing it (as for
    :func:`~lipreg.train.data.read_cifar10`); the data are fetched into
    ``root / "cifar-10-batches-py"``, or into ``root`` itself when it bears that name: the
    ``archive`` (default :data:`CIFAR10_ARCHIVE`, read when called: tests serve small
    archives locally) is downloaded, its checksum verified, and its ``cifar-10-batches-py``
    unpacked safely and atomically (:func:`~lipreg.train.data.archive.fetch_archive`). Data
    already there, even incomplete, are never replaced.
    """
    root = Path(root).expanduser()
    try:
        return _cifar_folder(root)
    except FileNotFoundError:
        pass
    # a root named after the folder is where the data should appear, not its parent
    parent = root.parent if root.name == CIFAR10_FOLDER else root
    remote = CIFAR10_ARCHIVE if archive is None else archive
    return fetch_archive(remote, parent, CIFAR10_FOLDER, progress=progress)
