"""Exact l2 operator norms of convolution layers from the FFT of their kernels.

A stride-1 *circular* convolution on inputs of spatial size ``n = (n_1, ..., n_d)`` is
diagonalised by the spatial DFT (Sedghi, Gupta and Long, "The singular values of
convolutional layers", ICLR 2019): at every frequency ``f`` it acts on the channels as the
``C_out x C_in`` matrix

    W_hat(f) = sum_t w[:, :, t] exp(-2 pi i <f, t / n>),

so its singular values are those of all ``W_hat(f)`` together and its l2 operator norm is

    ||conv||_2 = max_f sigma_max(W_hat(f)).

PyTorch's layers compute cross-correlations and place the kernel with an offset; both only
conjugate or multiply ``W_hat(f)`` by a phase, which leaves its singular values unchanged.

Zero-padded (and reflect / replicate padded) layers are not circular. Writing the layer as
``y = R C_N E x`` -- ``E`` the padding map onto the padded size ``N = n + padding``, ``C_N`` the
circular convolution at size ``N`` (no valid output wraps around) and ``R`` the selection of the
strided outputs -- gives the bound ``||conv||_2 <= ||C_N||_2 ||E||_2`` with ``||E||_2 = 1`` for
zero padding. The circular value must be taken at the *padded* size: at the unpadded size it
can be smaller than the zero-padded layer's norm (kernel ``[-1, 2, -1]``, ``n = 3``: 3 vs 3.414).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lipreg._validation import check_int, upcast

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)  #: the layer types ConvGeometry describes


def _tuple(value: int | Sequence[int], dims: int, name: str) -> tuple[int, ...]:
    """``value`` as a ``dims``-tuple of positive integers (an int is repeated)."""
    values = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(values) != dims or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
    ):
        raise ValueError(
            f"{name} must be a positive integer or {dims} positive integers (one per spatial "
            f"axis of the kernel), got {name}={value!r}"
        )
    return values


@functools.lru_cache(maxsize=256)
def _most_copies(n: int, before: int, after: int, mode: str) -> int:
    """How often the most repeated entry of a length-``n`` axis appears after ``F.pad`` with
    ``mode``; cached because a parametrization asks on every new weight."""
    index = torch.arange(n, dtype=torch.float64).view(1, 1, n)
    padded = F.pad(index, (before, after), mode=mode)
    return int(torch.bincount(padded.flatten().long()).max())


def _fold(weight: Tensor, axis: int, n: int, dilation: int) -> Tensor:
    """Taps ``t`` of ``weight`` along ``axis`` moved to ``t * dilation mod n`` (summed where
    they meet): the kernel of the same circular convolution written on an ``n``-cycle."""
    k = weight.shape[axis]
    place = torch.zeros(n, k, dtype=weight.dtype, device=weight.device)
    place[
        (torch.arange(k, device=weight.device) * dilation) % n,
        torch.arange(k, device=weight.device),
    ] = 1
    moved = torch.tensordot(weight.movedim(axis, -1), place, dims=([-1], [1]))
    folded: Tensor = moved.movedim(-1, axis)
    return folded


def circular_conv_norm(
    weight: Tensor,
    input_size: Sequence[int],
    *,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Tensor:
    """The exact l2 operator norm of a stride-1 circular convolution with kernel ``weight``.

    ``max_f sigma_max(W_hat(f))`` over the DFT frequencies ``f`` of the input grid (see the
    module docstring), computed with one real FFT of the kernel zero-padded to
    ``input_size`` and a batched ``torch.linalg.matrix_norm(ord=2)``. Only the half-spectrum
    of the last axis is needed: ``W_hat(-f)`` is the complex conjugate of ``W_hat(f)``.
    Differentiable in ``weight`` (where the largest singular value is simple).

    Args:
        weight: kernel ``[C_out, C_in / groups, k_1, ..., k_d]`` of a ``d``-dimensional
            convolution, ``1 <= d <= 3``, as in ``nn.Conv{d}d.weight``.
        input_size: the spatial size ``(n_1, ..., n_d)`` of the layer's inputs. Kernels longer
            than the input wrap around the cycle (their taps are summed modulo ``n``).
        dilation: spacing of the kernel taps, an int or one per axis.
        groups: channel groups; the operator is block diagonal over groups and its norm is
            the largest of the groups' norms.

    Returns:
        a 0-dim tensor in ``weight``'s dtype (float32 for half precision kernels).
    """
    if not isinstance(weight, Tensor) or not weight.is_floating_point():
        raise TypeError(
            "weight must be a floating-point kernel tensor [C_out, C_in / groups, *kernel], got "
            f"{type(weight).__name__ if not isinstance(weight, Tensor) else weight.dtype}"
        )
    dims = weight.ndim - 2
    if dims not in (1, 2, 3):
        raise ValueError(
            "weight must be a 1d, 2d or 3d convolution kernel [C_out, C_in / groups, *kernel], "
            f"got shape {list(weight.shape)}"
        )
    size = _tuple(input_size, dims, "input_size")
    dil = _tuple(dilation, dims, "dilation")
    check_int(groups, "groups", 1)
    if weight.shape[0] % groups:
        raise ValueError(
            f"groups={groups} must divide the number of output channels {weight.shape[0]}"
        )
    weight = upcast(weight)
    for axis, (n, d) in enumerate(zip(size, dil, strict=True)):
        weight = _fold(weight, 2 + axis, n, d)
    spatial = tuple(range(2, 2 + dims))
    spectrum = torch.fft.rfftn(weight, dim=spatial)  # [C_out, C_in/g, n_1, ..., n_d // 2 + 1]
    c_out, c_in = weight.shape[:2]
    # [frequencies, groups, C_out / g, C_in / g]: one channel matrix per frequency and group
    blocks = spectrum.reshape(groups, c_out // groups, c_in, -1).permute(3, 0, 1, 2)
    norms: Tensor = torch.linalg.matrix_norm(blocks, ord=2)
    return norms.amax()


@dataclass(frozen=True)
class ConvGeometry:
    """How a convolution layer maps inputs of one spatial size: everything but its kernel.

    Built with :meth:`of` from a layer and its input size; :meth:`bound` then gives an upper
    bound on the layer's l2 operator norm for any kernel (a parametrization calls it on every
    new weight). The bound is exact (:attr:`exact`) for circular padding of total size
    ``dilation * (k - 1)`` per axis with stride 1, the circular "same" layer.
    """

    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]  #: (before, after) per spatial axis
    padding_mode: str
    groups: int

    @classmethod
    def of(cls, conv: nn.Module, input_size: Sequence[int]) -> ConvGeometry:
        """The geometry of ``conv`` (``nn.Conv1d/2d/3d``) on inputs of spatial ``input_size``."""
        if not isinstance(conv, CONVS):
            raise TypeError(
                f"conv must be an nn.Conv1d, nn.Conv2d or nn.Conv3d, got {type(conv).__name__} "
                "(transposed convolutions are not supported)"
            )
        dims = len(conv.kernel_size)
        size = _tuple(input_size, dims, "input_size")
        if conv.padding == "valid":
            pads = ((0, 0),) * dims
        elif conv.padding == "same":
            total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
            pads = tuple((t // 2, t - t // 2) for t in total)
        else:
            pads = tuple((int(p), int(p)) for p in conv.padding)
        return cls(
            input_size=size,
            kernel_size=tuple(conv.kernel_size),
            stride=tuple(conv.stride),
            dilation=tuple(conv.dilation),
            padding=pads,
            padding_mode=conv.padding_mode,
            groups=conv.groups,
        )

    @property
    def _circular_same(self) -> bool:
        return self.padding_mode == "circular" and all(
            before + after == d * (k - 1)
            for (before, after), d, k in zip(
                self.padding, self.dilation, self.kernel_size, strict=True
            )
        )

    @property
    def exact(self) -> bool:
        """Whether :meth:`bound` is the layer's exact operator norm."""
        return self._circular_same and all(s == 1 for s in self.stride)

    def padding_gain(self) -> float:
        """``||E||_2`` of the padding map: the square root of the largest number of times one
        input entry appears in the padded input (1 for zero padding), a product over axes."""
        if self.padding_mode == "zeros":
            return 1.0
        copies = (
            _most_copies(n, before, after, self.padding_mode)
            for n, (before, after) in zip(self.input_size, self.padding, strict=True)
        )
        return math.sqrt(math.prod(copies))

    def bound(self, weight: Tensor) -> Tensor:
        """An upper bound on the l2 operator norm of this layer with kernel ``weight``.

        Circular "same" padding: the circular norm at the input size (strided outputs are a
        subset of its rows). Otherwise ``||C_N||_2 ||E||_2`` with ``N`` the padded size (module
        docstring). Biases shift outputs and do not enter. Differentiable in ``weight``.
        """
        if self._circular_same:
            size = self.input_size
            gain = 1.0
        else:
            size = tuple(
                n + before + after
                for n, (before, after) in zip(self.input_size, self.padding, strict=True)
            )
            gain = self.padding_gain()
        return gain * circular_conv_norm(weight, size, dilation=self.dilation, groups=self.groups)


def conv_lipschitz_bound(conv: nn.Module, input_size: Sequence[int]) -> Tensor:
    """An upper bound on the l2 Lipschitz constant of ``conv`` (``nn.Conv1d/2d/3d``, any
    stride, dilation, groups and padding mode) on inputs of spatial ``input_size``; exact for
    stride-1 circular "same" layers. See :class:`ConvGeometry` and the module docstring."""
    weight = conv.weight
    assert isinstance(weight, Tensor)  # ConvGeometry.of checked the layer type
    return ConvGeometry.of(conv, input_size).bound(weight)
