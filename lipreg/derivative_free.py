"""Derivative-free zero-centred penalties: R1, R2 and R1 + R2 in any Hilbert norm from
forward passes at perturbed points, for critics that cannot be differentiated twice.

For a Hilbert norm, ``||h||_B^2 = <h, M h>``, the dual norm is ``||g||_{B*}^2 = <g, M^{-1} g>``
and a perturbation ``h ~ N(0, sigma^2 M^{-1})`` (the norm's dual Gaussian) gives

    E[(D(x + h) - D(x))^2] = sigma^2 ||dD(x)||_{B*}^2 + O(sigma^4),

the odd moments of ``h`` vanishing. Adversarial post-training (Lin et al., ICML 2025) uses
the Euclidean case, ``M = I``, in place of R1; with the dual Gaussian it estimates the
Banach R1 of Mescheder et al. in any Hilbert norm, with first derivatives only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lipreg._validation import check_bool, check_int, check_real, check_scores, upcast
from lipreg.derivative import Critic, call_critic, running_stats_frozen
from lipreg.norms import Norm
from lipreg.norms.base import not_hilbert
from lipreg.penalty import NormPenalty, Stats, raise_if_not_finite
from lipreg.zero_centred import GammaWeight, _weight

#: The default ``sigma``: the root mean square of the perturbation's entries, in data units,
#: about 4 % of the per-entry standard deviation of images in [-1, 1] (0.72 for the digits).
#: Measured on a trained digits critic (benchmarks/derivative_free_diagnostics.py): the
#: parameter gradient's noise is smallest near it, in L^2 and in W^{-3/2,2}, with the
#: value's bias within -1 % and +17 %; see the "Without double backward" page.
DEFAULT_SIGMA = 0.03


def check_estimator(sigma: object, draws: object, antithetic: object) -> float:
    """``sigma`` as a float after checking the estimator's options: ``sigma > 0`` finite,
    ``draws`` a positive integer, ``antithetic`` a bool."""
    value = check_real(sigma, "sigma", 0.0, math.inf, open_low=True, open_high=True)
    check_int(draws, "draws", 1)
    check_bool(antithetic, "antithetic")
    return value


def estimate_dual_squared(
    critic: Critic,
    x: Tensor,
    norm: Norm,
    sigma: float = DEFAULT_SIGMA,
    *,
    draws: int = 1,
    antithetic: bool = False,
    scores: Tensor | None = None,
    critic_kwargs: Mapping[str, Any] | None = None,
) -> Tensor:
    """Unbiased-to-``O(sigma^2)`` estimates of ``||dD(x_b)||_{B*}^2`` from forward passes only.

    With ``z_b`` a draw of ``norm.dual_gaussian`` (covariance ``M^{-1}``), ``v_b`` its mean
    variance per entry (``norm.dual_gaussian_variance``) and ``h_b = sigma z_b / sqrt(v_b)``
    (entries of root mean square ``sigma`` in data units, whatever the norm), the estimate is

        one-sided:   v_b / (K sigma^2) sum_k (D(x + h_k)_b - D(x)_b)^2,
        antithetic:  v_b / (K sigma^2) sum_k ((D(x + h_k)_b - D(x - h_k)_b) / 2)^2,

    over ``K = draws`` independent draws. Both have expectation
    ``||dD(x_b)||_{B*}^2 + O(sigma^2)`` (exactly ``||w||_{B*}^2`` for a linear critic
    ``<w, x>``); the antithetic one is exact for quadratic critics too, at two forward
    passes per draw. The result is differentiable in the critic's parameters with first
    derivatives only. Each perturbed batch is one forward pass of ``B`` points, with the
    running statistics of batch-norm layers left alone (:func:`lipreg.running_stats_frozen`).
    For a critic that couples samples, ``D(x + h)_b`` also responds to the other samples'
    perturbations, which the estimate then includes.

    Args:
        critic: ``critic(x, **critic_kwargs)`` giving scores ``[B]`` or ``[B, 1]``.
        x: the points ``[B, ...]`` (detached); also the base point of local norms.
        norm: a Hilbert norm (``norm.hilbert``).
        sigma: the root mean square of the perturbation's entries, in data units.
        draws: perturbations per point, ``K >= 1``.
        antithetic: difference ``D(x + h) - D(x - h)`` instead of ``D(x + h) - D(x)``.
        scores: ``critic(x)`` already computed (e.g. by the loss; still attached to the
            parameters), to save the forward pass at ``x``; unused with ``antithetic``.
        critic_kwargs: passed to the critic unchanged (e.g. class labels).

    Returns:
        ``[B]`` estimates, float32 at least.
    """
    x = x.detach()
    variance = norm.dual_gaussian_variance(x, at=x)
    # A sample whose dual norm vanishes identically (a Wasserstein2 image at density 0)
    # has v_b = 0: it is not perturbed and its estimate is 0.
    safe = torch.where(variance > 0, variance, torch.ones_like(variance))
    step = torch.where(variance > 0, sigma / safe.sqrt(), torch.zeros_like(variance))
    step = step.view(-1, *(1,) * (x.ndim - 1)).to(x.dtype)

    def at(points: Tensor) -> Tensor:
        return upcast(call_critic(critic, points, critic_kwargs))

    total = torch.zeros((), dtype=variance.dtype, device=x.device)
    with running_stats_frozen(critic):
        base = None if antithetic else (at(x) if scores is None else upcast(scores))
        for _ in range(draws):
            h = step * norm.dual_gaussian(x, at=x)
            difference = (at(x + h) - at(x - h)) / 2 if base is None else at(x + h) - base
            total = total + difference.square()
    estimate: Tensor = total * variance / (draws * sigma**2)
    return estimate


@dataclass(frozen=True)
class ApproxStats(Stats):
    """Statistics of an :class:`ApproxR1` / :class:`ApproxR2` call."""

    penalty: Tensor  #: the returned value
    dual_squared_mean: Tensor  #: mean of the estimates of ||dD(x)||_{B*}^2
    #: standard error of the returned value: the spread of the per-point estimates over the
    #: batch (perturbations and data together) divided by sqrt(B); NaN for one point
    standard_error: Tensor
    gamma: Tensor
    sigma: Tensor


@dataclass(frozen=True)
class ApproxR1R2Stats(ApproxStats):
    """Statistics of an :class:`ApproxR1R2` call (estimates over the real and the generated
    points together; the standard error is that of the sum)."""

    r1: Tensor  #: its R1 term
    r2: Tensor  #: its R2 term


class _Approx(GammaWeight, NormPenalty):
    """``(gamma / 2) E[estimate of ||dD(x)||_{B*}^2]`` on the real (R1) and / or generated
    (R2) points; subclasses set :attr:`_on`."""

    #: which batches the penalty evaluates: ("real",), ("fake",) or both
    _on: tuple[str, ...] = ("real",)

    def __init__(
        self,
        norm: Norm | str = "l2",
        gamma: float = 10.0,
        *,
        sigma: float = DEFAULT_SIGMA,
        draws: int = 1,
        antithetic: bool = False,
        check_finite: bool = True,
    ) -> None:
        weight = _weight(gamma)
        sigma = check_estimator(sigma, draws, antithetic)
        super().__init__(norm)
        if not self.norm.hilbert:
            raise not_hilbert(self.norm, type(self).__name__)
        self._gamma = weight
        self.sigma = sigma
        self.draws = draws
        self.antithetic = antithetic
        self.check_finite = check_bool(check_finite, "check_finite")
        self.stats: ApproxStats | None = None

    def forward(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor | None = None,
        *,
        d_real: Tensor | None = None,
        d_fake: Tensor | None = None,
        **critic_kwargs: Any,
    ) -> Tensor:
        """The penalty, a 0-dim tensor (the class docstring gives its formula).

        Args:
            critic: ``critic(x, **critic_kwargs)`` giving scores ``[B]`` or ``[B, 1]``.
            real: real batch ``[B, ...]``.
            fake: generated batch ``[B', ...]`` (required when the penalty evaluates it).
            d_real: optional ``critic(real)`` already computed for the loss (still attached
                to the critic's parameters): the one-sided estimator then runs no forward pass
                at ``real``. Pass scores of ``real`` exactly, and add the penalty to that loss
                before its backward (their graphs are shared).
            d_fake: the same for ``fake``.
            critic_kwargs: passed to the critic unchanged (e.g. class labels).
        """
        self._check_inputs(critic, real, fake)
        if "fake" in self._on and fake is None:
            raise TypeError(
                f"{type(self).__name__} penalises the gradient on generated samples: call "
                "penalty(critic, real, fake)"
            )
        points = {"real": real, "fake": fake}
        given = {"real": d_real, "fake": d_fake}
        for name, scores in given.items():
            batch = points[name]
            if scores is not None:
                if batch is None:
                    raise TypeError(f"d_{name} was given without {name}: pass both or neither")
                given[name] = check_scores(
                    scores, batch.shape[0], f"d_{name}", f"pass critic({name}) of this batch"
                )
        estimates = [self._estimate(critic, points[n], given[n], critic_kwargs) for n in self._on]
        with torch.autocast(real.device.type, enabled=False):
            terms = [(self.gamma / 2) * e.mean() for e in estimates]
            penalty = sum(terms[1:], terms[0])
        both = torch.cat(estimates)
        if self.check_finite:
            inputs = {"real": real, "fake": fake, "d_real": d_real, "d_fake": d_fake}
            raise_if_not_finite(penalty, both, "estimated squared dual norms", inputs)
        self.stats = self._statistics(penalty, estimates, terms)
        return penalty

    def _estimate(
        self, critic: Critic, x: Tensor | None, scores: Tensor | None, kwargs: dict[str, Any]
    ) -> Tensor:
        assert x is not None  # forward checked that every evaluated batch is given
        return estimate_dual_squared(
            critic,
            x,
            self.norm,
            self.sigma,
            draws=self.draws,
            antithetic=self.antithetic,
            scores=scores,
            critic_kwargs=kwargs,
        )

    def _statistics(
        self, penalty: Tensor, estimates: list[Tensor], terms: list[Tensor]
    ) -> ApproxStats:
        with torch.no_grad():
            both = torch.cat(estimates).detach()
            # The spread of one point is undefined (NaN), not zero.
            variance = sum(
                (
                    (self.gamma / 2) ** 2 * e.detach().var() / e.numel()
                    if e.numel() > 1
                    else torch.full((), math.nan, dtype=both.dtype, device=both.device)
                    for e in estimates
                ),
                torch.zeros((), dtype=both.dtype, device=both.device),
            )

            def constant(v: float) -> Tensor:
                return torch.as_tensor(v, dtype=both.dtype, device=both.device)

            fields = {
                "penalty": penalty.detach(),
                "dual_squared_mean": both.mean(),
                "standard_error": variance.sqrt(),
                "gamma": constant(self.gamma),
                "sigma": constant(self.sigma),
            }
            if len(terms) == 2:
                return ApproxR1R2Stats(**fields, r1=terms[0].detach(), r2=terms[1].detach())
            return ApproxStats(**fields)

    def extra_repr(self) -> str:
        return (
            f"norm={self.norm!r}, gamma={self.gamma:g}, sigma={self.sigma:g}, "
            f"draws={self.draws}, antithetic={self.antithetic}"
        )


class ApproxR1(_Approx):
    """R1 without a second derivative: the derivative-free counterpart of
    :class:`lipreg.BanachR1`, ``ApproxR1(norm, gamma)`` in its place.

        ApproxR1 = (gamma / 2) E_{x ~ P_real} [estimate of ||dD(x)||_{B*}^2]
                 ~ (gamma / 2) E_{x ~ P_real} ||dD(x)||_{B*}^2 = BanachR1.

    The estimate at each point is :func:`estimate_dual_squared`'s: with ``h = sigma z /
    sqrt(v)``, ``z`` a draw of the norm's dual Gaussian ``N(0, M^{-1})`` and ``v`` its mean
    variance per entry,

        ||dD(x)||_{B*}^2  ~  (v / sigma^2) (D(x + h) - D(x))^2,

    exact in expectation for linear critics and ``||dD(x)||_{B*}^2 + O(sigma^2)`` for smooth
    ones (``draws`` independent perturbations averaged; ``antithetic`` uses
    ``(D(x + h) - D(x - h)) / 2``). Its backward needs first derivatives only: critics with
    fused kernels that have no double backward (FlashAttention), ``@once_differentiable``
    custom ops, compiled graphs and sharded models train with it. It is an estimate: its
    parameter gradient is noisy (the gradient is probed along ``draws`` random directions
    per point); ``stats.standard_error`` reports the spread of the value.

    ``sigma`` is the root mean square of the perturbation's entries in data units, so the
    same ``sigma`` is the same size of perturbation in every norm (the norm sets its shape:
    white for ``L2()``, blue for ``Sobolev(s < 0)``). It trades bias for noise: the
    one-sided estimate's bias grows like ``sigma^2`` (it adds the critic's squared curvature
    ``(tr(H M^{-1}))^2 / 4``, which antithetic pairs cancel), while for piecewise-linear
    critics (ReLU, LeakyReLU) the parameter gradient's variance grows like ``1 / sigma`` as
    ``sigma -> 0`` (a perturbation that crosses a kink changes the parameter gradient by a
    finite amount). It must also stay far above the critic's rounding error (no
    half-precision scores at small ``sigma``). Pass the loss's scores ``d_real`` to save
    the forward pass at ``real``.
    Only Hilbert norms (``L2()``, ``Sobolev(s, p=2)``, ``Wasserstein2()``) have a dual
    Gaussian; others are refused at construction.

    Args:
        norm: the Hilbert norm of ``B`` (a :class:`lipreg.Norm` or a text spec).
        gamma: the weight ``gamma >= 0``, as in :class:`lipreg.BanachR1`.
        sigma: root mean square of the perturbation's entries, ``> 0``, in data units (the
            default 0.03 suits data in [-1, 1]: about 4 % of the data's per-entry standard
            deviation; scale it with your data).
        draws: independent perturbations per point, ``>= 1`` (one extra forward pass each,
            two with ``antithetic``).
        antithetic: estimate from ``(D(x + h) - D(x - h)) / 2`` (no ``O(sigma)`` curvature
            term, no forward pass at ``x``).
        check_finite: raise if an input, an estimate or the returned penalty is NaN or inf
            (one host synchronisation per call).

    Shapes:
        ``critic(x, **critic_kwargs)``: ``[B, ...] -> [B]`` or ``[B, 1]``; ``real``, ``fake``:
        ``[B, ...]`` with the same per-sample shape, dtype and device; ``d_real``, ``d_fake``:
        the critic's scores on them, ``[B]`` or ``[B, 1]``; returns a 0-dim tensor.
        Statistics of the last call are in ``stats`` (:class:`ApproxStats`).
    """

    _on = ("real",)


class ApproxR2(_Approx):
    """R2 without a second derivative: the derivative-free counterpart of
    :class:`lipreg.BanachR2`, ``ApproxR2(norm, gamma)`` in its place; a call needs ``fake``.

        ApproxR2 = (gamma / 2) E_{x ~ P_fake} [estimate of ||dD(x)||_{B*}^2]
                 ~ (gamma / 2) E_{x ~ P_fake} ||dD(x)||_{B*}^2 = BanachR2.

    The estimate, ``sigma`` and the arguments are :class:`ApproxR1`'s; pass the loss's
    ``d_fake`` to save the forward pass at ``fake``.
    """

    _on = ("fake",)


class ApproxR1R2(_Approx):
    """R1 + R2 with one weight without a second derivative: the derivative-free counterpart
    of :class:`lipreg.BanachR1R2` (R3GAN's regulariser); a call needs ``fake``.

        ApproxR1R2 = (gamma / 2) (E_real [estimate] + E_fake [estimate])
                   ~ (gamma / 2) (E_real ||dD(x)||_{B*}^2 + E_fake ||dD(x)||_{B*}^2).

    The real and the generated batch are evaluated separately (as by BanachR1R2). The
    estimate, ``sigma`` and the arguments are :class:`ApproxR1`'s; pass the loss's
    ``d_real`` and ``d_fake`` to save both unperturbed forward passes. Statistics in
    :class:`ApproxR1R2Stats`.
    """

    _on = ("real", "fake")
