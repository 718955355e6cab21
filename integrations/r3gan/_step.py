"""A replacement for R3GAN's ``AdversarialTraining.AccumulateDiscriminatorGradients`` with
derivative-free R1 and R2."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from lipreg import ApproxR1R2, Norm
from lipreg.derivative_free import DEFAULT_SIGMA

from .._replay import RandomState


def _identity(x: Tensor) -> Tensor:
    return x


class AccumulateDiscriminatorGradients:
    """R3GAN's discriminator step with R1 and R2 estimated from forward passes, in any
    Hilbert norm (:class:`lipreg.ApproxR1R2` with R3GAN's arithmetic).

    R3GAN's step takes the input gradient of its discriminator twice over (R1 and R2 by
    double backward); this one runs, per batch, ``draws`` extra forward passes at perturbed
    points ``x + h`` (``h`` from the norm's dual Gaussian, entries of root mean square
    ``sigma``) and uses the estimates ``e_b ~ ||dD(x_b)||_{B*}^2`` of
    :func:`lipreg.estimate_dual_squared` in R3GAN's place:

        softplus(-(D(x_b) - D(x~_b))) + (Gamma / 2) (e_b(real) + e_b(fake)),

    ``Scale`` times its mean backpropagated, and R3GAN's four statistics returned (the
    per-pair loss, the relativistic scores, and the estimates as R1 and R2). The one-sided
    estimator (default) reuses R3GAN's own ``RealLogits`` and ``FakeLogits`` as ``D(x)``.

    R3GAN evaluates its discriminator on ``Preprocessor(x)``, its random augmentation. Each
    perturbed evaluation replays the random state taken just before R3GAN's evaluation of
    that batch (``torch.random.fork_rng``), so it sees the same augmentation as ``x`` did;
    drawing afresh would estimate the augmentation's effect instead of the gradient. The
    real and generated batches, the losses' scores and R3GAN's own stream of random numbers
    are those of R3GAN's step. ``Gamma`` comes from R3GAN's schedule at every call (a norm
    other than L2 changes the size of the penalty: re-tune the schedule's values).
    :attr:`penalty` holds the estimator and the statistics of the last call
    (:class:`lipreg.ApproxR1R2Stats`, with ``Gamma`` as ``gamma``).

    Assign an instance to the class attribute; it binds to the trainer as a method does::

        AdversarialTraining.AccumulateDiscriminatorGradients = AccumulateDiscriminatorGradients(
            "sobolev:s=-1.5", sigma=0.03)

    Args:
        norm: a Hilbert norm (``"l2"``, ``"sobolev:s=-1.5"``, ``"w2"``), as for ApproxR1R2.
        sigma: the root mean square of the perturbation's entries, in data units.
        draws: perturbations per sample and batch (one forward pass each).
        antithetic: ``(D(x + h) - D(x - h)) / 2`` (two forward passes per draw; R3GAN's
            scores then serve only the loss).
        check_finite: raise if an estimate is NaN or inf (one host synchronisation).

    Shapes:
        As R3GAN's method: ``Noise`` ``[B, ...]``, ``RealSamples`` ``[B, C, H, W]``,
        ``Conditions`` as the networks take them; returns four ``[B]`` tensors (the
        estimates float32 at least).
    """

    def __init__(
        self,
        norm: Norm | str = "l2",
        *,
        sigma: float = DEFAULT_SIGMA,
        draws: int = 1,
        antithetic: bool = False,
        check_finite: bool = True,
    ) -> None:
        self.penalty = ApproxR1R2(
            norm,
            gamma=0.0,  # R3GAN's Gamma, set at every call
            sigma=sigma,
            draws=draws,
            antithetic=antithetic,
            check_finite=check_finite,
        )

    def __get__(self, trainer: object, owner: type | None = None) -> Any:
        """Bound to an ``AdversarialTraining`` when looked up on one, as a function is."""
        return self if trainer is None else types.MethodType(self, trainer)

    def __call__(
        self,
        trainer: Any,
        Noise: Tensor,
        RealSamples: Tensor,
        Conditions: Any,
        Gamma: float,
        Scale: float = 1,
        Preprocessor: Callable[[Tensor], Tensor] = _identity,
    ) -> list[Tensor]:
        """One discriminator step: backpropagates ``Scale`` times the mean loss and returns
        ``[AdversarialLoss, RelativisticLogits, R1Penalty, R2Penalty]``, detached."""
        self.penalty.gamma = Gamma
        RealSamples = RealSamples.detach()
        FakeSamples = trainer.Generator(Noise, Conditions).detach()

        def evaluate(x: Tensor) -> Tensor:
            scores: Tensor = trainer.Discriminator(Preprocessor(x), Conditions)
            return scores

        real_state = RandomState.capture(RealSamples.device)
        RealLogits = evaluate(RealSamples)
        fake_state = RandomState.capture(FakeSamples.device)
        FakeLogits = evaluate(FakeSamples)

        estimate = self.penalty.estimate
        R1Penalty = estimate(real_state.replaying(evaluate), RealSamples, scores=RealLogits)
        R2Penalty = estimate(fake_state.replaying(evaluate), FakeSamples, scores=FakeLogits)
        self.penalty.from_estimates(R1Penalty, R2Penalty)  # statistics, finiteness

        RelativisticLogits = RealLogits - FakeLogits
        AdversarialLoss = F.softplus(-RelativisticLogits)
        DiscriminatorLoss: Tensor = AdversarialLoss + (Gamma / 2) * (R1Penalty + R2Penalty)
        torch.autograd.backward(DiscriminatorLoss.mean() * Scale)
        return [x.detach() for x in (AdversarialLoss, RelativisticLogits, R1Penalty, R2Penalty)]

    def __repr__(self) -> str:
        p = self.penalty
        return (
            f"AccumulateDiscriminatorGradients(norm={p.norm!r}, sigma={p.sigma:g}, "
            f"draws={p.draws}, antithetic={p.antithetic})"
        )
