"""CIFAR-10 from the official python version in a local directory, read through a
restricted unpickler (nothing in the files can run code)."""

from __future__ import annotations

import codecs
import math
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


class ForbiddenPickleError(pickle.UnpicklingError):
    """A CIFAR-10 file references a global outside the allowed list, or calls an allowed one
    as the genuine files never do (nothing was run)."""


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the globals that CIFAR-10 batches contain, however they were re-saved.

    They hold a dict of bytes, lists of ints/bytes and one uint8 array. Rebuilding the array
    needs numpy's ``_reconstruct``, ``ndarray`` and ``dtype`` (``numpy.core`` in the official
    Python 2 files, ``numpy._core`` when written by numpy 2), or ``_frombuffer`` with pickle
    protocol 5; files re-written by Python 3 with protocols 0-2 build bytes with
    ``_codecs.encode(text, "latin1")`` and empty bytes with ``bytes()``. Anything else (such
    as ``os.system``) could run code while loading and is refused, and so are calls of the
    allowed globals with other arguments: ``numpy.ndarray(shape)`` or ``_reconstruct`` with
    a shape would allocate an array the file does not hold, so an array may declare at most
    as many bytes as the file has.
    """

    def __init__(self, file: Any, size: int) -> None:
        super().__init__(file, encoding="bytes")
        self.allowed = _cifar_globals(size)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise ForbiddenPickleError(
                f"it references {module}.{name}, which CIFAR-10 python files never contain "
                f"(allowed: {', '.join(sorted(f'{m}.{n}' for m, n in self.allowed))})"
            )
        return self.allowed[module, name]


class _Ndarray:
    """Stands for ``numpy.ndarray`` as the class argument of ``_reconstruct``; the genuine
    files never call ``numpy.ndarray`` itself."""

    def __new__(cls, *args: object, **kwargs: object) -> _Ndarray:
        raise ForbiddenPickleError(
            "it calls numpy.ndarray(...) directly, which would allocate an array the file does "
            "not hold; CIFAR-10 files rebuild arrays with numpy's _reconstruct"
        )


def _cifar_globals(size: int) -> dict[tuple[str, str], Any]:
    """The allowed globals of a file of ``size`` bytes."""
    import numpy as np

    # numpy's array reconstructors, whatever module they live in: importing them by name
    # would touch `numpy.core`, a deprecated alias in numpy 2 that warns.
    rebuild: Any = np.zeros(1).__reduce__()[0]
    frombuffer: Any = np.zeros(1).__reduce_ex__(5)[0]

    def reconstruct(subtype: object, shape: Any, dtype: Any) -> Any:
        if subtype is not _Ndarray:
            raise ForbiddenPickleError(f"it rebuilds an array of class {subtype!r}")
        valid = isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
        if not valid or math.prod(shape) * np.dtype(dtype).itemsize > size:
            raise ForbiddenPickleError(
                f"it declares a numpy array of shape {shape!r}, more than the {size} bytes the "
                "file holds; the genuine files rebuild arrays from data they contain"
            )
        return rebuild(np.ndarray, shape, dtype)

    def encode(text: object, encoding: object = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise ForbiddenPickleError(
                f"it calls _codecs.encode with {type(text).__name__} and {encoding!r}; pickled "
                "bytes are encode(text, 'latin1')"
            )
        return codecs.encode(text, "latin1")

    def empty_bytes(*args: object) -> bytes:
        if args:
            raise ForbiddenPickleError(
                "it calls bytes(...) with arguments; pickled empty bytes are bytes()"
            )
        return b""

    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy.core.numeric", "_frombuffer"): frombuffer,
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("numpy", "ndarray"): _Ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): encode,
        ("__builtin__", "bytes"): empty_bytes,
        ("builtins", "bytes"): empty_bytes,
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
        "Pass --download (download=True) to fetch the official archive, MD5-checked, into "
        "this directory; or download cifar-10-python.tar.gz (the CIFAR-10 python version) "
        f"from {CIFAR10_URL}, extract it (tar xzf cifar-10-python.tar.gz) and pass the folder "
        "cifar-10-batches-py (or the folder containing it) as the data root (--data-root DIR)"
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
            batch = _CifarUnpickler(f, os.fstat(f.fileno()).st_size).load()
        except ForbiddenPickleError as err:
            raise ForbiddenPickleError(
                f"refusing to load {path}: {err}; get the genuine files from {CIFAR10_URL}"
            ) from None
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
