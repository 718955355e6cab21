"""Lebesgue norms ``L^p`` (discrete ``l^p``) and their duals ``L^q``."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from lipreg._validation import check_real, upcast
from lipreg.norms.base import Norm, format_number, sample_scale, standard_normal


def conjugate(p: float) -> float:
    """The Hoelder conjugate ``q`` of ``p``: ``1/p + 1/q = 1`` (``1 <-> inf``)."""
    if p == 1:
        return math.inf
    if math.isinf(p):
        return 1.0
    return p / (p - 1)


def lp_norm(x: Tensor, p: float) -> Tensor:
    """``(sum_i |x_bi|^p)^(1/p)`` over every non-batch entry: ``[B, ...] -> [B]``.

    For ``p = 2`` each sample is divided by a power of two near its largest ``|entry|``
    (:func:`lipreg.norms.base.sample_scale`; exact, so values in range are unchanged) and the
    norm multiplied back, so squares of entries above about 1e19 do not overflow float32. For
    ``p`` other than 1, 2 and inf each sample is divided by its largest ``|entry|`` ``m``
    before powering, ``||x||_p = m ||x / m||_p``, so large ``p`` neither underflows on small
    entries nor overflows on large ones. The scales are detached: for any fixed scale the
    expression equals ``||x||_p`` identically, so its derivatives of every order are those of
    the norm itself. The zero vector gets value 0 and gradient 0.
    """
    flat = x.flatten(1)
    if p == 2:
        scale = sample_scale(flat)
        norm: Tensor = torch.linalg.vector_norm(flat / scale, ord=2, dim=1) * scale.squeeze(1)
        return norm
    if p == 1 or math.isinf(p):
        norm = torch.linalg.vector_norm(flat, ord=p, dim=1)
        return norm
    a = flat.abs()
    m = a.amax(dim=1, keepdim=True).detach()
    scaled_sum = (a / torch.where(m > 0, m, torch.ones_like(m))).pow(p).sum(dim=1)
    # Where x = 0 the sum is 0 and s^(1/p) has an infinite derivative; 1 keeps it finite.
    safe_sum = torch.where(scaled_sum > 0, scaled_sum, torch.ones_like(scaled_sum))
    return m.squeeze(1) * safe_sum.pow(1.0 / p)


def check_exponent(p: object, name: str = "p") -> float:
    """``p`` as a float in ``[1, inf]``; the string ``"inf"`` is infinity, as in the text spec
    ``"lp:p=inf"`` (Python has no literal for it)."""
    if isinstance(p, str) and p.strip().lower() in ("inf", "infinity"):
        return math.inf
    try:
        return check_real(p, name, 1.0, math.inf)
    except TypeError as e:
        raise TypeError(f"{e} (or the string 'inf')") from None


class Lp(Norm):
    """``||x||_{L^p} = (sum_i |x_i|^p)^(1/p)`` over all entries of a sample, ``1 <= p <= inf``.

    The dual is ``L^q`` with ``1/p + 1/q = 1``: ``dual(g) = ||g||_q`` (Hoelder), so ``p = 1``
    pairs with ``q = inf``. Any layout ``[B, ...]`` is accepted. ``Lp(10)`` is the norm of the
    paper's L^10-BWGAN (CIFAR-10 Inception Score 8.31).

    Args:
        p: exponent in ``[1, inf]``; infinity as ``math.inf`` or ``"inf"``.
    """

    name = "lp"

    def __init__(self, p: float | Literal["inf"]) -> None:
        self.p = check_exponent(p)
        self.q = conjugate(self.p)

    def _norm(self, x: Tensor) -> Tensor:
        return lp_norm(x, self.p)

    def _dual(self, g: Tensor) -> Tensor:
        return lp_norm(g, self.q)

    def _dual_squared(self, g: Tensor) -> Tensor:
        # For q = 2 the sum of squares itself: smooth at g = 0, and the very arithmetic of
        # hand-written R1 penalties (g.square().sum(...)), so L2() reproduces them bit for bit.
        return g.flatten(1).square().sum(1) if self.q == 2 else super()._dual_squared(g)

    def lp_embedding(self, x: Tensor) -> tuple[Tensor, float] | None:
        self.check(x, "x")
        return upcast(x).flatten(1), self.p

    @property
    def hilbert(self) -> bool:
        return self.p == 2

    def _dual_gaussian(
        self, like: Tensor, generator: torch.Generator | None, at: Tensor | None
    ) -> Tensor:
        return standard_normal(like.shape, like, generator)

    def _dual_gaussian_variance(self, like: Tensor, at: Tensor | None) -> Tensor:
        return torch.ones(like.shape[0], dtype=like.dtype, device=like.device)

    @property
    def params(self) -> dict[str, float]:
        return {"p": self.p}

    @property
    def space(self) -> str:
        return f"L^{format_number(self.p)}"

    @property
    def dual_space(self) -> str:
        return f"L^{self.q:g}"


class L2(Lp):
    """The Euclidean norm ``||x||_2`` over all entries of a sample; self-dual.

    With ``BanachGP(L2(), lam=10, gamma=1)`` the penalty is exactly WGAN-GP's
    ``10 * E[(||grad D(x_hat)||_2 - 1)^2]``.
    """

    name = "l2"

    def __init__(self) -> None:
        super().__init__(2.0)

    @property
    def params(self) -> dict[str, float]:
        return {}
