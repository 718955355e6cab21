"""The Wasserstein-2 ground metric on images: a local norm on the pixel graph.

Dukler, Li, Lin & Montufar, "Wasserstein of Wasserstein Loss for Learning Generative Models",
ICML 2019: an image ``x`` is a density ``rho`` on the graph of its pixels, and the
Wasserstein-2 metric tensor at ``rho`` measures a tangent vector ``h`` by
``<h, (L_rho + gamma_l2 I)^{-1} h>``, with the weighted graph Laplacian ``L_rho``. A
critic's gradient ``g`` then has squared dual norm ``<g, (L_rho + gamma_l2 I) g>``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lipreg._validation import check_real, upcast
from lipreg.norms.base import LocalNorm, sqrt_zero_safe, standard_normal

#: Neighbour offsets ``(d_row, d_col)`` of the stencil: each pixel ``p`` is joined to
#: ``p + o`` when that pixel exists, so every edge appears once. As in the authors' code:
#: distance-1 and distance-2 neighbours along both axes and both diagonals.
STENCIL: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (0, 2), (2, 0), (1, 1), (1, -1))

# All offsets fit a window of rows 0..2 and columns -1..2 around the pixel: kernels of size
# (3, 4) whose entry (a, b) reads the pixel at offset (a, b - 1), on inputs padded by 0 rows
# above, 2 below, 1 column left and 2 right (F.pad order: left, right, top, bottom).
_PAD = (1, 2, 0, 2)
_KERNEL = (3, 4)


@functools.lru_cache(maxsize=32)
def _kernels(channels: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Depthwise kernels ``[6 C, 1, 3, 4]``: differences ``v_p - v_{p+o}`` and the
    far endpoints ``v_{p+o}`` of every stencil edge, per channel. Built once per
    ``(C, device, dtype)``; they are constants, never parameters."""
    with torch.inference_mode(False):
        difference = torch.zeros(len(STENCIL), 1, *_KERNEL, dtype=torch.float64)
        endpoint = torch.zeros_like(difference)
        for e, (dr, dc) in enumerate(STENCIL):
            difference[e, 0, 0, 1] = 1.0
            difference[e, 0, dr, dc + 1] = -1.0
            endpoint[e, 0, dr, dc + 1] = 1.0
        return (
            difference.repeat(channels, 1, 1, 1).to(device=device, dtype=dtype),
            endpoint.repeat(channels, 1, 1, 1).to(device=device, dtype=dtype),
        )


def _edge_maps(v: Tensor, kernel: Tensor) -> Tensor:
    """``[B, C, H, W] -> [B, 6 C, H, W]``: the depthwise stencil ``kernel`` at every pixel."""
    out: Tensor = F.conv2d(F.pad(v, _PAD), kernel, groups=v.shape[1])
    return out


@functools.lru_cache(maxsize=32)
def _edge_mask(
    channels: int, height: int, width: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """``[1, 6 C, H, W]``: 1 where the edge from pixel ``p`` to ``p + o`` exists (both ends in
    the image), else 0 (the zero padding would otherwise create edges to the border)."""
    with torch.inference_mode(False):
        _, endpoint = _kernels(channels, device, dtype)
        ones = torch.ones(1, channels, height, width, device=device, dtype=dtype)
        return _edge_maps(ones, endpoint)


def _differences_adjoint(flows: Tensor) -> Tensor:
    """``A^T f``: the adjoint of the edge differences ``h -> _edge_maps(h, difference)``,
    ``[B, 6 C, H, W] -> [B, C, H, W]`` (a transposed convolution, the padding cropped)."""
    channels = flows.shape[1] // len(STENCIL)
    difference, _ = _kernels(channels, flows.device, flows.dtype)
    back = F.conv_transpose2d(flows, difference, groups=channels)
    left, right, top, bottom = _PAD
    return back[..., top : back.shape[2] - bottom, left : back.shape[3] - right]


class Wasserstein2(LocalNorm):
    """The Wasserstein-2 ground metric of Wasserstein-of-Wasserstein GANs (Dukler et al.,
    ICML 2019), a local norm at the image ``x`` (``at``).

    The image ``x`` ``[B, C, H, W]`` is read as a density on the pixel graph of each channel,
    ``rho = max(0, (x - low) / (high - low))`` (``(x + 1) / 2`` for images in ``[-1, 1]``,
    the default; not normalised to unit mass, as in the authors' code). Edges join each
    pixel ``p`` to ``p + o`` for the offsets ``o`` in :data:`STENCIL` (distance-1 and
    distance-2 neighbours along rows and columns, and both diagonals, as the authors' code;
    no edges across channels), with weights ``w_pq = rho_p + rho_q``. With the weighted graph
    Laplacian ``L_rho = sum_edges w_pq (e_p - e_q)(e_p - e_q)^T`` and
    ``M = L_rho + gamma_l2 I``:

        ||g||_{x*}^2 = <g, M g> = sum_c sum_edges (g_p - g_q)^2 (rho_p + rho_q)
                                  + gamma_l2 ||g||_2^2,
        ||h||_x     = sqrt(<h, M^{-1} h>),

    dual to each other (``sup_h <g, h> / ||h||_x = ||g||_{x*}``, attained at ``h = M g``).
    ``dual`` is computed with two fixed depthwise convolutions (built once per channel count,
    device and dtype; nothing receives gradients), so it is cheap and twice differentiable
    in ``g``; the base point ``at`` is a constant (no gradient flows to it). ``norm`` solves
    ``M u = h`` by conjugate gradients in the input's dtype (float32 at least; pass float64
    for precise values) and needs ``gamma_l2 > 0``: without it ``M`` is singular (images
    constant on a channel have dual norm 0). Its gradient is exact (``2u`` in ``h``);
    second derivatives taken through it are not the norm's (``u`` is held constant).

    Use it in :class:`lipreg.BanachGP` (``BanachGP(Wasserstein2(), lam=10, gamma=1)`` is the
    paper's penalty ``lam E[(||dD(x_hat)||_{x_hat*} - 1)^2]``), which passes ``at=x_hat``;
    ``lam``/``gamma="auto"`` and :class:`lipreg.FiniteDifferenceGP` need a norm of the whole
    space and refuse it. Note that the authors' released code computes this dual norm but
    trains with the Euclidean penalty (its Wasserstein line is commented out).

    Args:
        gamma_l2: weight ``>= 0`` of the added ``||g||_2^2`` (0 in the authors' code).
        low, high: the pixel values of density 0 and 1 (``low < high``).
    """

    name = "w2"

    def __init__(self, gamma_l2: float = 0.0, low: float = -1.0, high: float = 1.0) -> None:
        self.gamma_l2 = check_real(gamma_l2, "gamma_l2", 0.0, math.inf, open_high=True)
        self.low = check_real(low, "low", -math.inf, math.inf, open_low=True, open_high=True)
        self.high = check_real(high, "high", -math.inf, math.inf, open_low=True, open_high=True)
        if not self.low < self.high:
            raise ValueError(
                f"low must be below high (the pixel values of density 0 and 1), got "
                f"low={low!r}, high={high!r}; use low=-1, high=1 for images in [-1, 1] and "
                "low=0, high=1 for images in [0, 1]"
            )

    def check(self, x: Tensor, name: str) -> None:
        super().check(x, name)
        if x.ndim != 4:
            raise ValueError(
                f"{name} must have layout [B, C, H, W] for Wasserstein2 (images), got shape "
                f"{list(x.shape)} (add a channel axis of size 1 for single-channel images)"
            )

    def density(self, x: Tensor) -> Tensor:
        """``rho = max(0, (x - low) / (high - low))``, same shape as ``x``."""
        return ((x - self.low) / (self.high - self.low)).clamp_min(0)

    def edge_weights(self, at: Tensor) -> Tensor:
        """``[B, 6 C, H, W]``: ``rho_p + rho_{p+o}`` for the edge from ``p`` along the ``e``-th
        offset at channel ``c`` in channel ``6 c + e``, 0 where the edge does not exist."""
        c, h, w = at.shape[1:]
        with torch.no_grad():
            rho = self.density(at)
            _, endpoint = _kernels(c, at.device, at.dtype)
            mask = _edge_mask(c, h, w, at.device, at.dtype)
            return (rho.repeat_interleave(len(STENCIL), dim=1) + _edge_maps(rho, endpoint)) * mask

    def _dual_squared_at(self, g: Tensor, at: Tensor) -> Tensor:
        difference, _ = _kernels(g.shape[1], g.device, g.dtype)
        weighted = self.edge_weights(at) * _edge_maps(g, difference).square()
        squared = weighted.flatten(1).sum(1)
        if self.gamma_l2:
            squared = squared + self.gamma_l2 * g.flatten(1).square().sum(1)
        return squared

    def metric(self, h: Tensor, at: Tensor) -> Tensor:
        """``M h = L_rho h + gamma_l2 h`` at base points ``at``, shape of ``h``."""
        return self._metric(h, self.edge_weights(at))

    def _metric(self, h: Tensor, weights: Tensor) -> Tensor:
        """:meth:`metric` with the base points' :meth:`edge_weights` given."""
        difference, _ = _kernels(h.shape[1], h.device, h.dtype)
        return _differences_adjoint(weights * _edge_maps(h, difference)) + self.gamma_l2 * h

    @property
    def hilbert(self) -> bool:
        return True

    def _dual_gaussian(
        self, like: Tensor, generator: torch.Generator | None, at: Tensor | None
    ) -> Tensor:
        # M = A^T W A + gamma_l2 I, so A^T W^{1/2} z_e + gamma_l2^{1/2} z (independent
        # standard normal z_e per edge and z per pixel) has covariance M.
        assert at is not None  # local: _check_base_point requires it
        weights = self.edge_weights(upcast(at).to(like.dtype))
        h = _differences_adjoint(weights.sqrt() * standard_normal(weights.shape, like, generator))
        if self.gamma_l2:
            h = h + math.sqrt(self.gamma_l2) * standard_normal(like.shape, like, generator)
        return h

    def _dual_gaussian_variance(self, like: Tensor, at: Tensor | None) -> Tensor:
        # Every edge adds w_e (e_p - e_q)(e_p - e_q)^T, of trace 2 w_e, to M.
        assert at is not None
        weights = self.edge_weights(upcast(at).to(like.dtype))
        return 2 * weights.flatten(1).sum(1) / like[0].numel() + self.gamma_l2

    def _norm_at(self, x: Tensor, at: Tensor) -> Tensor:
        if self.gamma_l2 == 0:
            raise ValueError(
                "the primal Wasserstein2 norm sqrt(<h, (L_rho + gamma_l2 I)^-1 h>) needs "
                "gamma_l2 > 0: L_rho alone is singular. Build Wasserstein2(gamma_l2=...) with "
                "a positive weight (the dual norm works with gamma_l2=0)"
            )
        weights = self.edge_weights(at)
        with torch.no_grad():
            u = self._solve(x.detach(), weights)
        # 2<h, u> - <u, M u> equals <h, M^-1 h> at the solution and, being stationary in u
        # there, has the exact gradient 2 M^-1 h in h with u held constant.
        squared = 2 * (x * u).flatten(1).sum(1) - (u * self._metric(u, weights)).flatten(1).sum(1)
        return sqrt_zero_safe(squared)

    def _solve(self, h: Tensor, weights: Tensor) -> Tensor:
        """``M^{-1} h`` per sample by conjugate gradients (M is symmetric positive definite
        for gamma_l2 > 0), to a relative residual of ``sqrt(eps)`` of the dtype times 1e-2."""
        tol = (torch.finfo(h.dtype).eps ** 0.5) * 1e-2

        def dot(a: Tensor, b: Tensor) -> Tensor:
            return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1)

        u = torch.zeros_like(h)
        r = h.clone()
        d = r.clone()
        rr = dot(r, r)
        target = rr * tol**2
        for _ in range(h[0].numel()):
            if bool((rr <= target).all()):
                break
            md = self._metric(d, weights)
            dmd = dot(d, md)
            step = rr / torch.where(dmd > 0, dmd, torch.ones_like(rr))
            u = u + step * d
            r = r - step * md
            rr_new = dot(r, r)
            d = r + (rr_new / torch.where(rr > 0, rr, torch.ones_like(rr))) * d
            rr = rr_new
        return u

    @property
    def params(self) -> dict[str, float]:
        return {"gamma_l2": self.gamma_l2, "low": self.low, "high": self.high}

    @property
    def space(self) -> str:
        return "T_rho W_2"

    @property
    def dual_space(self) -> str:
        return "T*_rho W_2"
