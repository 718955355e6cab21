"""Sobolev norms ``W^{s,p}`` defined through a Fourier multiplier, and their duals."""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import Tensor

from lipreg._validation import check_real, upcast
from lipreg.norms.base import Norm, format_number, sample_scale, standard_normal
from lipreg.norms.lp import check_exponent, conjugate, lp_norm

_LAYOUTS = {1: "[B, C, L]", 2: "[B, C, H, W]", 3: "[B, C, D, H, W]"}


def check_multiplier_range(exponent: float, c: float, dims: int, dtype: torch.dtype) -> None:
    """Raise unless ``(1 + c |xi|^2)^(+-exponent / 2)`` fits ``dtype`` on ``dims`` spatial axes.

    ``|xi|^2`` runs from 0 to ``dims`` (1 per axis at the Nyquist index), so the multipliers
    of the norm and of its dual span ``(1 + c dims)^(-|exponent| / 2)`` to
    ``(1 + c dims)^(|exponent| / 2)``; beyond the dtype's normal range they would overflow to
    inf (or lose the high frequencies to underflow), and the penalty would be inf or NaN.
    """
    info = torch.finfo(dtype)
    limit = min(math.log(info.max), -math.log(info.tiny))
    growth = math.log1p(c * dims) / 2
    if abs(exponent) * growth > limit:
        raise ValueError(
            f"Sobolev s={exponent:g} is out of range for {dtype}: with c={c:g} on {dims} spatial "
            f"axes the multiplier (1 + c|xi|^2)^(s/2) of the norm or of its dual reaches "
            f"10^{abs(exponent) * growth / math.log(10):.0f}, beyond {dtype} "
            f"(|s| <= {limit / growth:.4g} fits); use a smaller |s| or c, or float64 inputs"
        )


@functools.lru_cache(maxsize=64)
def sobolev_multiplier(
    shape: tuple[int, ...], exponent: float, c: float, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """The multiplier ``(1 + c |xi|^2)^(exponent / 2)`` on the ``rfftn`` grid of ``shape``.

    Per axis of length ``N`` the frequency index ``k`` maps to ``xi_k = min(k, N - k) / (N // 2)``
    (the grid of the paper's reference code, so ``|xi| <= 1`` per axis at the Nyquist index).
    The last axis keeps only ``k = 0 .. N // 2``, as ``torch.fft.rfftn`` does.

    Returns:
        real tensor of shape ``[*shape[:-1], shape[-1] // 2 + 1]`` on ``device`` in ``dtype``,
        cached per argument tuple.

    Raises:
        ValueError: if the multiplier does not fit ``dtype`` (:func:`check_multiplier_range`).
    """
    check_multiplier_range(exponent, c, len(shape), dtype)
    # A multiplier first built under inference_mode would be an inference tensor, which
    # autograd refuses to save for backward in later training steps.
    with torch.inference_mode(False):
        xi2 = torch.zeros((), dtype=torch.float64)
        for axis, n in enumerate(shape):
            last = axis == len(shape) - 1
            k = torch.arange(n // 2 + 1 if last else n, dtype=torch.float64)
            xi = torch.minimum(k, n - k) / (n // 2)
            xi2 = xi2.unsqueeze(-1) + xi.square()
        return (1 + c * xi2).pow(exponent / 2).to(device=device, dtype=dtype)


class Sobolev(Norm):
    """``||x||_{W^{s,p}} = || F^-1[(1 + c|xi|^2)^(s/2) F x] ||_p``, with dual ``W^{-s,q}``.

    ``F`` is the discrete Fourier transform over the spatial axes of each channel (real FFTs;
    the multiplier is real and even in ``xi``, so the inverse is real). The frequency grid is
    the reference implementation's: per axis of length ``N``, index ``k`` maps to
    ``min(k, N - k) / (N // 2)`` (see :func:`sobolev_multiplier`). The ``l^p`` norm is then
    taken over all ``C x spatial`` entries with plain sums. ``s > 0`` weights high
    frequencies (smoothness), ``s < 0`` discounts them; ``s = 0`` is ``L^p``.

    Writing ``T_s`` for the filter, ``T_s`` is symmetric with inverse ``T_{-s}``, so
    ``sup_h <g, h> / ||T_s h||_p = ||T_{-s} g||_q``: ``dual(g)`` filters with ``-s`` and takes
    the ``l^q`` norm, ``1/p + 1/q = 1``. ``Sobolev(s=-1.5)`` is the norm of the paper's
    W^{-3/2,2}-BWGAN (CIFAR-10 Inception Score 8.26).

    Args:
        s: smoothness order, a finite real whose multipliers ``(1 + c d)^(+-s/2)`` (``d``
            spatial axes) fit the inputs' dtype: ``|s| <= 72.8`` for float32 images with
            ``c = 5`` (a call on inputs beyond that raises, naming s; see
            :func:`check_multiplier_range`).
        p: Lebesgue exponent in ``[1, inf]`` (infinity as ``math.inf`` or ``"inf"``).
        c: frequency scale ``c > 0`` (the reference code uses 5).
        spatial_dims: 1 for signals ``[B, C, L]``, 2 for images ``[B, C, H, W]``, 3 for
            volumes ``[B, C, D, H, W]``; every spatial size must be at least 2.
    """

    name = "sobolev"

    def __init__(
        self, s: float, p: float | Literal["inf"] = 2.0, c: float = 5.0, spatial_dims: int = 2
    ) -> None:
        self.s = check_real(s, "s", -math.inf, math.inf, open_low=True, open_high=True)
        self.p = check_exponent(p)
        self.q = conjugate(self.p)
        self.c = check_real(c, "c", 0.0, math.inf, open_low=True, open_high=True)
        if type(spatial_dims) is not int or spatial_dims not in _LAYOUTS:  # not 2.0, not True
            raise ValueError(
                f"spatial_dims must be 1 ([B, C, L]), 2 ([B, C, H, W]) or 3 ([B, C, D, H, W]), "
                f"got spatial_dims={spatial_dims!r}"
            )
        self.spatial_dims = spatial_dims
        check_multiplier_range(self.s, self.c, spatial_dims, torch.float64)

    def check(self, x: Tensor, name: str) -> None:
        super().check(x, name)
        layout = _LAYOUTS[self.spatial_dims]
        if x.ndim != 2 + self.spatial_dims:
            raise ValueError(
                f"{name} must have layout {layout} for Sobolev(spatial_dims={self.spatial_dims}), "
                f"got shape {list(x.shape)}; set spatial_dims to the number of spatial axes "
                "(add a channel axis of size 1 for single-channel data)"
            )
        if min(x.shape[2:]) < 2:
            raise ValueError(
                f"{name} has spatial size {list(x.shape[2:])}; the Sobolev frequency grid needs "
                "every spatial size to be at least 2"
            )
        check_multiplier_range(self.s, self.c, self.spatial_dims, upcast(x).dtype)

    def filter(self, x: Tensor, s: float) -> Tensor:
        """``F^-1[(1 + c|xi|^2)^(s/2) F x]`` per channel: same shape and dtype as ``x``."""
        if s == 0:
            return x
        dims = tuple(range(-self.spatial_dims, 0))
        spatial = tuple(x.shape[-self.spatial_dims :])
        multiplier = sobolev_multiplier(spatial, s, self.c, x.device, x.dtype)
        spectrum = torch.fft.rfftn(x, dim=dims)
        filtered: Tensor = torch.fft.irfftn(spectrum * multiplier, s=spatial, dim=dims)
        return filtered

    def _norm(self, x: Tensor) -> Tensor:
        return self._filtered_norm(x, self.s, self.p)

    def _dual(self, g: Tensor) -> Tensor:
        return self._filtered_norm(g, -self.s, self.q)

    def _filtered_norm(self, x: Tensor, s: float, p: float) -> Tensor:
        """``||T_s x||_p``, the filter applied to ``x`` divided by a power of two per sample
        (exact, see :func:`lipreg.norms.base.sample_scale`): the FFT's sums of huge entries
        do not overflow."""
        scale = sample_scale(x)
        return lp_norm(self.filter(x / scale, s), p) * scale.flatten()

    def _dual_squared(self, g: Tensor) -> Tensor:
        if self.q != 2:
            return super()._dual_squared(g)
        return self.filter(g, -self.s).flatten(1).square().sum(1)

    def lp_embedding(self, x: Tensor) -> tuple[Tensor, float] | None:
        self.check(x, "x")
        return self.filter(upcast(x), self.s).flatten(1), self.p

    @property
    def hilbert(self) -> bool:
        return self.p == 2

    def _dual_gaussian(
        self, like: Tensor, generator: torch.Generator | None, at: Tensor | None
    ) -> Tensor:
        # T_{-s} is symmetric, so T_{-s} z has covariance T_{-s}^2 = T_{-2s} = M^{-1}.
        return self.filter(standard_normal(like.shape, like, generator), -self.s)

    def _dual_gaussian_variance(self, like: Tensor, at: Tensor | None) -> Tensor:
        # tr(T_{-2s}) per channel is the sum of its multiplier over the full frequency grid;
        # the rfft grid holds the bins 0 < k < N - k of the last axis once for two.
        spatial = tuple(like.shape[-self.spatial_dims :])
        multiplier = sobolev_multiplier(spatial, -2 * self.s, self.c, like.device, torch.float64)
        n = spatial[-1]
        k = torch.arange(n // 2 + 1, device=like.device)
        count = torch.where((k > 0) & (k < n - k), 2.0, 1.0).to(torch.float64)
        mean = (multiplier * count).sum() / math.prod(spatial)
        return mean.to(like.dtype).expand(like.shape[0])

    @property
    def params(self) -> dict[str, float]:
        return {"s": self.s, "p": self.p, "c": self.c, "spatial_dims": self.spatial_dims}

    @property
    def space(self) -> str:
        return f"W^{{{format_number(self.s)},{format_number(self.p)}}}"

    @property
    def dual_space(self) -> str:
        return f"W^{{{format_number(-self.s)},{self.q:g}}}"
