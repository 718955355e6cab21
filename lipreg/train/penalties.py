"""The penalties ``--penalty`` offers, built from the run's parsed ``--norm`` and its
``--lam``, ``--gamma`` (and ``--sigma`` for the derivative-free ``approx-*``).

Every one is called as ``penalty(critic, real, fake)`` in the critic loss (with the loss's
scores ``d_real=``, ``d_fake=`` for the kinds that take them, :attr:`PenaltyKind.takes_scores`)
and leaves detached statistics in ``penalty.stats``. ``--penalty-fraction F`` wraps any of them in
:class:`lipreg.Subsampled` (evaluated on a seeded random ``F`` of each batch) and
``--lazy-every K`` in :class:`lipreg.Lazy` (evaluated on every K-th critic step, times K;
StyleGAN2), outermost: ``Lazy(Subsampled(penalty, F), K)``; :func:`layers` sees through
them. ``none`` adds nothing: the critic is then bounded by a ``--constraint`` or by the
c-transform loss.

A new kind is a builder and one entry of :data:`PENALTIES`; an option of its own is a field
of :class:`~lipreg.train.config.TrainConfig` that its builder reads (and, when other choices
make the option meaningless, a rule in :mod:`lipreg.train.unused`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lipreg import (
    ApproxR1,
    ApproxR1R2,
    ApproxR2,
    BanachGP,
    BanachR1,
    BanachR1R2,
    BanachR2,
    FiniteDifferenceGP,
    Lazy,
    Subsampled,
)
from lipreg.derivative import Engine
from lipreg.norms import Norm
from lipreg.train.config import TrainConfig

Scaler = torch.amp.GradScaler | None
Builder = Callable[[TrainConfig, Norm, Scaler, Engine], nn.Module]
"""``build(config, norm, grad_scaler, engine)``: a penalty of the run ``config`` in ``norm``
(the parsed ``config.norm``)."""


@dataclass(frozen=True)
class PenaltyKind:
    """A ``--penalty`` choice."""

    description: str  #: one line for --help
    build: Builder
    #: whether it makes the critic gamma-Lipschitz, so that (E D(real) - E D(fake)) / gamma
    #: estimates the Wasserstein-1 distance (False for R1/R2, whose gamma is a weight)
    lipschitz: bool = True
    #: whether it is a zero-centred penalty weighted by --gamma alone (R1, R2, R1 + R2): its
    #: gamma is a fixed weight that --gamma-final may schedule, and --lam has no effect
    zero_centred: bool = False
    #: whether it takes the loss's own scores ``d_real=``, ``d_fake=`` (saving the forward
    #: passes at the real and generated points)
    takes_scores: bool = False
    #: whether it perturbs points along the norm's dual Gaussian (approx-*): it needs a
    #: Hilbert --norm, and --sigma sets the perturbation's size
    dual_gaussian: bool = False


def _gp(sampling: str, one_sided: bool) -> Builder:
    def build(c: TrainConfig, norm: Norm, scaler: Scaler, engine: Engine) -> nn.Module:
        return BanachGP(
            norm=norm,
            lam=c.lam,  # type: ignore[arg-type]  # "auto" or a float, checked by the config
            gamma=c.gamma,  # type: ignore[arg-type]
            sampling=sampling,
            one_sided=one_sided,
            engine=engine,
            grad_scaler=scaler,
        )

    return build


def _zero_centred(cls: type[BanachR1] | type[BanachR2] | type[BanachR1R2]) -> Builder:
    def build(c: TrainConfig, norm: Norm, scaler: Scaler, engine: Engine) -> nn.Module:
        assert isinstance(c.gamma, float)  # a fixed weight: checked by lipreg.train.objectives
        return cls(norm=norm, gamma=c.gamma, engine=engine, grad_scaler=scaler)

    return build


def _approx(
    description: str, cls: type[ApproxR1] | type[ApproxR2] | type[ApproxR1R2]
) -> PenaltyKind:
    """A derivative-free zero-centred kind: a weight --gamma, the loss's scores taken, points
    perturbed along the norm's dual Gaussian by --sigma."""

    def build(c: TrainConfig, norm: Norm, scaler: Scaler, engine: Engine) -> nn.Module:
        # First derivatives only: no double backward for a GradScaler or an engine to serve.
        assert isinstance(c.gamma, float)  # a fixed weight: checked by lipreg.train.objectives
        return cls(norm=norm, gamma=c.gamma, sigma=c.sigma)

    return PenaltyKind(
        description,
        build,
        lipschitz=False,
        zero_centred=True,
        takes_scores=True,
        dual_gaussian=True,
    )


class NoPenalty(nn.Module):
    """``--penalty none``: the zero penalty, ``penalty(critic, real, fake) = 0``."""

    def forward(self, critic: object, real: Tensor, fake: Tensor) -> Tensor:
        return real.new_zeros(())


def _finite_difference(c: TrainConfig, norm: Norm, scaler: Scaler, engine: Engine) -> nn.Module:
    return FiniteDifferenceGP(norm=norm, lam=c.lam, gamma=c.gamma)  # type: ignore[arg-type]


PENALTIES: dict[str, PenaltyKind] = {
    "gp": PenaltyKind(
        "BanachGP, lam*gamma*E[(||dD(x_hat)||_B* / gamma - 1)^2] on interpolates "
        "(WGAN-GP for --norm l2 --lam 10 --gamma 1; BWGAN with other norms)",
        _gp("interpolate", one_sided=False),
    ),
    "lp": PenaltyKind(
        "one-sided BanachGP: only ||dD||_B* > gamma is penalised (WGAN-LP, Petzka et al. 2018)",
        _gp("interpolate", one_sided=True),
    ),
    "dragan": PenaltyKind(
        "BanachGP at DRAGAN's points, between real samples and their perturbations "
        "(Kodali et al. 2017)",
        _gp("dragan_interpolate", one_sided=False),
    ),
    "fd": PenaltyKind(
        "FiniteDifferenceGP: one-sided penalty on |D(x) - D(y)| / ||x - y||_B over real-fake "
        "pairs, no double backward (CT-GAN / LP-GAN family)",
        _finite_difference,
        takes_scores=True,
    ),
    "r1": PenaltyKind(
        "BanachR1, (gamma/2) E||dD(real)||_B*^2 with --gamma its weight (Mescheder et al. 2018)",
        _zero_centred(BanachR1),
        lipschitz=False,
        zero_centred=True,
    ),
    "r2": PenaltyKind(
        "BanachR2, (gamma/2) E||dD(fake)||_B*^2 with --gamma its weight",
        _zero_centred(BanachR2),
        lipschitz=False,
        zero_centred=True,
    ),
    "r1r2": PenaltyKind(
        "BanachR1R2, R1 + R2 with one weight --gamma (R3GAN, Huang et al. 2024)",
        _zero_centred(BanachR1R2),
        lipschitz=False,
        zero_centred=True,
    ),
    "approx-r1": _approx(
        "ApproxR1, BanachR1 estimated from one extra forward pass at real + h, h from the "
        "norm's dual Gaussian with entries of size --sigma: no double backward (Hilbert norms: "
        "l2, sobolev with p=2, w2)",
        ApproxR1,
    ),
    "approx-r2": _approx(
        "ApproxR2, BanachR2 estimated as approx-r1 does, at generated samples", ApproxR2
    ),
    "approx-r1r2": _approx(
        "ApproxR1R2, approx-r1 + approx-r2 with one weight --gamma (R3GAN's without double "
        "backward)",
        ApproxR1R2,
    ),
    "none": PenaltyKind(
        "no penalty: the critic is bounded by --constraint (clip, sn) or by --loss ctransform, "
        "or not at all (a plain GAN with --loss ns, hinge or rpgan)",
        lambda c, norm, scaler, engine: NoPenalty(),
        lipschitz=False,
    ),
}


def build_penalty(
    config: TrainConfig, norm: Norm, grad_scaler: Scaler, engine: Engine
) -> nn.Module:
    """The penalty named ``config.penalty`` in ``norm`` (the parsed ``config.norm``), on a
    fraction of each batch with ``penalty_fraction < 1``, lazily applied with
    ``lazy_every > 1``: ``Lazy(Subsampled(penalty, F), K)``, the subset drawn on due calls
    only. Without them it is the penalty itself, whose checkpoint keys are then those of runs
    from before these options."""
    penalty = PENALTIES[config.penalty].build(config, norm, grad_scaler, engine)
    if config.penalty_fraction < 1:
        penalty = Subsampled(penalty, config.penalty_fraction)
    return penalty if config.lazy_every == 1 else Lazy(penalty, every=config.lazy_every)


def layers(penalty: nn.Module) -> list[nn.Module]:
    """``penalty`` and the penalties it wraps, outermost first: ``[Lazy, Subsampled,
    BanachGP]`` for ``Lazy(Subsampled(BanachGP(...), F), K)``. The last is the penalty
    itself, which holds the lam/gamma estimates, the weight gamma that a schedule sets and
    the statistics."""
    out = [penalty]
    while isinstance(out[-1], (Lazy, Subsampled)):
        out.append(out[-1].penalty)
    return out


def check_norm(norm: Norm, sample_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming ``--norm`` if ``norm`` cannot measure samples of
    ``sample_shape`` (a Sobolev norm needs images ``[C, H, W]``, not toy points ``[2]``), so
    that a run fails when it is built rather than at its first critic step."""
    try:
        # The layout check only: evaluating a local norm (w2) would need a base point.
        norm.check(torch.zeros(1, *sample_shape), "x")
    except ValueError as e:
        raise ValueError(
            f"--norm {norm.spec} does not apply to samples of shape {list(sample_shape)}: {e}"
        ) from None
