"""The data-set classes of the trainer and the helpers every data set shares.

:class:`TrainingData` is a fixed-size ``Dataset`` of float32 samples of one shape; the data
sets held in memory are :class:`TensorData` (float32, or 8-bit images kept as uint8 and
mapped ``v -> v / 127.5 - 1`` when read).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

Kind = Literal["toy", "image"]


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
        check_indices(indices)
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
        return from_uint8(x) if x.dtype == torch.uint8 else x

    def take(self, indices: Tensor) -> Tensor:
        # One gather for the whole batch; the uint8 conversion is elementwise, so the result
        # is bitwise the stack of the items.
        check_indices(indices)
        x = self.data[indices]
        return from_uint8(x) if x.dtype == torch.uint8 else x


def check_int(value: object, name: str, low: int, high: int | None = None) -> None:
    """Raise unless ``value`` is an int (not a bool) ``>= low`` (and ``<= high`` if given)."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer {bounds}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {bounds}, got {name}={value}")


def subset(n: int, size: int | None, gen: torch.Generator) -> Tensor:
    """Indices of a seeded random subset of ``size`` of ``range(n)`` in increasing order."""
    if size is None:
        return torch.arange(n)
    if size > n:
        raise ValueError(f"size={size} exceeds the {n} samples available; pass size <= {n}")
    return torch.randperm(n, generator=gen)[:size].sort().values


def check_indices(indices: object) -> None:
    # A bool tensor would index as a mask, a float one not at all: both are mistakes here.
    if not isinstance(indices, Tensor) or indices.ndim != 1 or indices.dtype != torch.int64:
        desc = (
            f"{indices.dtype} tensor of shape {list(indices.shape)}"
            if isinstance(indices, Tensor)
            else type(indices).__name__
        )
        raise TypeError(f"indices must be an int64 tensor [B], got {desc}")


def from_uint8(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1.0


def to_uint8(x: Tensor) -> Tensor:
    """Images in ``[-1, 1]`` (float) to 8-bit ``round((x + 1) * 127.5)`` clamped to
    ``0..255``, same shape: the inverse of :func:`from_uint8` on its values."""
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def resize(images: Tensor, side: int, chunk: int = 1024) -> Tensor:
    """``[N, C, side, side]`` float32 in ``[-1, 1]``: bicubic, antialiased, clamped."""
    out = []
    for part in torch.split(images, chunk):
        x = from_uint8(part) if part.dtype == torch.uint8 else part
        y = F.interpolate(x, size=(side, side), mode="bicubic", antialias=True)
        out.append(y.clamp(-1.0, 1.0))
    return torch.cat(out)
