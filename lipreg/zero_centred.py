"""Zero-centred gradient penalties R1 and R2 (Mescheder et al., ICML 2018) in any norm, and
both together with one weight (R3GAN, Huang et al., NeurIPS 2024)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lipreg._validation import check_real
from lipreg.derivative import Critic, Engine
from lipreg.norms import Norm
from lipreg.penalty import GradientPenalty, Stats
from lipreg.sampling import fake_samples, real_samples


@dataclass(frozen=True)
class ZeroCentredStats(Stats):
    """Statistics of a :class:`BanachR1` / :class:`BanachR2` call."""

    penalty: Tensor  #: the returned value
    dual_norm_mean: Tensor  #: mean of ||dD(x)||_{B*} over the evaluation points
    dual_norm_max: Tensor  #: its maximum
    gamma: Tensor


@dataclass(frozen=True)
class R1R2Stats(ZeroCentredStats):
    """Statistics of a :class:`BanachR1R2` call (dual norms over the real and the generated
    points together)."""

    r1: Tensor  #: its R1 term, (gamma / 2) E ||dD(real)||_{B*}^2
    r2: Tensor  #: its R2 term, (gamma / 2) E ||dD(fake)||_{B*}^2


def _weight(gamma: object) -> float:
    return check_real(gamma, "gamma", 0.0, math.inf, open_high=True)


class GammaWeight:
    """The weight ``gamma >= 0`` of a zero-centred penalty, checked whenever it is set (a
    mixin of the exact and the derivative-free zero-centred penalties)."""

    _gamma: float

    @property
    def gamma(self) -> float:
        """The weight ``gamma >= 0``; may be reassigned between calls (a schedule)."""
        return self._gamma

    @gamma.setter
    def gamma(self, value: float) -> None:
        self._gamma = _weight(value)


class _ZeroCentred(GammaWeight, GradientPenalty):
    """``(gamma / 2) E ||dD(x)||_{B*}^2`` over the points of the subclass's fixed sampler."""

    _sampler = staticmethod(real_samples)

    def __init__(
        self,
        norm: Norm | str = "l2",
        gamma: float = 10.0,
        *,
        per_sample: bool = False,
        engine: Engine = "func",
        chunk_size: int | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
        check_finite: bool = True,
    ) -> None:
        weight = _weight(gamma)
        super().__init__(
            norm, self._sampler, per_sample, engine, chunk_size, grad_scaler, check_finite
        )
        self._gamma = weight
        self.stats: ZeroCentredStats | None = None

    def forward(
        self, critic: Critic, real: Tensor, fake: Tensor | None = None, **critic_kwargs: Any
    ) -> Tensor:
        """The penalty ``(gamma / 2) E ||dD(x)||_{B*}^2``, a 0-dim tensor.

        Args:
            critic: ``critic(x, **critic_kwargs)`` giving scores ``[B]`` or ``[B, 1]``.
            real: real batch ``[B, ...]``.
            fake: generated batch ``[B, ...]`` (required by R2, optional for R1).
            critic_kwargs: passed to the critic unchanged (e.g. class labels).
        """
        self._check_inputs(critic, real, fake)
        if self._sampler is fake_samples and fake is None:
            raise TypeError(
                f"{type(self).__name__} penalises the gradient on generated samples: call "
                "penalty(critic, real, fake)"
            )
        x = self._evaluation_points(real, fake)
        squared = self._dual_norms(critic, x, critic_kwargs, squared=True)
        return self._from_squared_duals(squared, {"real": real, "fake": fake})

    def _from_squared_duals(
        self, squared: Tensor, inputs: Mapping[str, Tensor | None] | None = None
    ) -> Tensor:
        """``(gamma / 2) mean(squared)`` from the squared dual norms ``[B]``, checked finite
        with the call's ``inputs`` (by name) and recorded in :attr:`stats` (adapters that
        take the input gradient themselves call this)."""
        with torch.autocast(squared.device.type, enabled=False):
            penalty = (self.gamma / 2) * squared.mean()
        self._raise_if_not_finite(penalty, squared, "squared dual gradient norms", inputs or {})
        self.stats = ZeroCentredStats(**self._statistics(penalty, squared))
        return penalty

    def _statistics(self, penalty: Tensor, squared: Tensor) -> dict[str, Tensor]:
        """The fields of :class:`ZeroCentredStats` from the returned value and the squared
        dual norms ``[N]`` (detached)."""
        with torch.no_grad():
            dual = squared.detach().clamp_min(0).sqrt()
            return {
                "penalty": penalty.detach(),
                "dual_norm_mean": dual.mean(),
                "dual_norm_max": dual.max(),
                "gamma": torch.as_tensor(self.gamma, dtype=dual.dtype, device=dual.device),
            }

    def extra_repr(self) -> str:
        return (
            f"norm={self.norm!r}, gamma={self.gamma:g}, per_sample={self.per_sample}, "
            f"engine={self.engine!r}"
        )


class BanachR1(_ZeroCentred):
    """R1, the zero-centred gradient penalty on real data, in any norm.

    Mescheder, Geiger & Nowozin (ICML 2018) penalise the critic's gradient on real data,

        R1 = (gamma / 2) E_{x ~ P_real} ||dD(x)||_{B*}^2,

    here with the dual norm of any Banach space ``B`` (their ``||grad D(x)||_2^2`` for
    ``L2()``). With ``L2()`` a call equals StyleGAN2's
    ``r1_grads.square().sum([1, 2, 3]) * (r1_gamma / 2)`` averaged over the batch, in value
    and in parameter gradients. ``fake`` is not used and may be omitted. For StyleGAN2's
    lazy regularisation wrap it: ``Lazy(BanachR1(gamma=10), every=16)``.

    Args:
        norm: the norm of ``B`` (a :class:`lipreg.Norm` or a text spec such as ``"l2"``).
        gamma: the weight ``gamma >= 0`` (StyleGAN2's ``r1_gamma``; not a Lipschitz
            constant as in :class:`lipreg.BanachGP`).
        per_sample, engine, chunk_size, grad_scaler, check_finite: as in
            :class:`lipreg.BanachGP`.

    Shapes:
        ``critic(x, **critic_kwargs)``: ``[B, ...] -> [B]`` or ``[B, 1]``;
        ``real``, ``fake``: ``[B, ...]`` with the same per-sample shape, dtype and device;
        returns a 0-dim tensor. Statistics of the last call are in ``stats``
        (:class:`ZeroCentredStats`).
    """

    _sampler = staticmethod(real_samples)


class BanachR2(_ZeroCentred):
    """R2, the zero-centred gradient penalty on generated data, in any norm.

    Mescheder, Geiger & Nowozin (ICML 2018):

        R2 = (gamma / 2) E_{x ~ P_fake} ||dD(x)||_{B*}^2,

    the dual norm of ``B`` replacing their Euclidean norm. A call needs ``fake``; ``real`` is
    only checked against it.

    Args:
        norm: the norm of ``B`` (a :class:`lipreg.Norm` or a text spec such as ``"l2"``).
        gamma: the weight ``gamma >= 0`` (StyleGAN2's ``r1_gamma``; not a Lipschitz
            constant as in :class:`lipreg.BanachGP`).
        per_sample, engine, chunk_size, grad_scaler, check_finite: as in
            :class:`lipreg.BanachGP`.

    Shapes:
        ``critic(x, **critic_kwargs)``: ``[B, ...] -> [B]`` or ``[B, 1]``;
        ``real``, ``fake``: ``[B, ...]`` with the same per-sample shape, dtype and device;
        returns a 0-dim tensor. Statistics of the last call are in ``stats``
        (:class:`ZeroCentredStats`).
    """

    _sampler = staticmethod(fake_samples)


class BanachR1R2(_ZeroCentred):
    """R1 and R2 together with one weight, R3GAN's regulariser, in any norm.

    Huang, Gokaslan, Kuleshov & Tompkin ("The GAN is dead; long live the GAN!", NeurIPS 2024)
    pair the relativistic loss (:func:`lipreg.rpgan_critic_loss`) with both zero-centred
    penalties of Mescheder et al. (2018):

        R1 + R2 = (gamma / 2) E_{x ~ P_real} ||dD(x)||_{B*}^2
                + (gamma / 2) E_{x ~ P_fake} ||dD(x)||_{B*}^2,

    here with the dual norm of any Banach space ``B``. With ``L2()`` a call equals R3GAN's
    ``(Gamma / 2) * (R1Penalty + R2Penalty)`` averaged over the batch. The critic is evaluated
    on ``real`` and on ``fake`` separately (as R3GAN does), so critics with batch statistics
    see each batch alone. One module rather than ``BanachR1() + BanachR2()``: one weight to
    set or schedule (``penalty.gamma = ...``), one :attr:`stats` record with both terms, one
    state to wrap in :class:`lipreg.Lazy` or checkpoint.

    Args:
        norm: the norm of ``B`` (a :class:`lipreg.Norm` or a text spec such as ``"l2"``).
        gamma: the weight ``gamma >= 0`` of both terms (R3GAN's ``Gamma``, e.g. 0.05 at the
            start of its CIFAR-10 schedule; not a Lipschitz constant).
        per_sample, engine, chunk_size, grad_scaler, check_finite: as in
            :class:`lipreg.BanachGP`.

    Shapes:
        ``critic(x, **critic_kwargs)``: ``[B, ...] -> [B]`` or ``[B, 1]``;
        ``real`` ``[B, ...]`` and ``fake`` ``[B', ...]`` with the same per-sample shape,
        dtype and device; returns a 0-dim tensor. Statistics of the last call are in
        ``stats`` (:class:`R1R2Stats`).
    """

    def forward(
        self, critic: Critic, real: Tensor, fake: Tensor | None = None, **critic_kwargs: Any
    ) -> Tensor:
        """The penalty ``(gamma / 2) (E ||dD(real)||_{B*}^2 + E ||dD(fake)||_{B*}^2)``, a
        0-dim tensor.

        Args:
            critic: ``critic(x, **critic_kwargs)`` giving scores ``[B]`` or ``[B, 1]``.
            real: real batch ``[B, ...]``.
            fake: generated batch ``[B', ...]`` (required).
            critic_kwargs: passed to the critic unchanged (e.g. class labels).
        """
        self._check_inputs(critic, real, fake)
        if fake is None:
            raise TypeError(
                "BanachR1R2 penalises the gradient on real and on generated samples: call "
                "penalty(critic, real, fake)"
            )
        squared = [
            self._dual_norms(critic, x.detach(), critic_kwargs, squared=True) for x in (real, fake)
        ]
        with torch.autocast(real.device.type, enabled=False):
            r1, r2 = ((self.gamma / 2) * sq.mean() for sq in squared)
            penalty = r1 + r2
        both = torch.cat(squared)
        self._raise_if_not_finite(
            penalty, both, "squared dual gradient norms", {"real": real, "fake": fake}
        )
        self.stats = R1R2Stats(**self._statistics(penalty, both), r1=r1.detach(), r2=r2.detach())
        return penalty
