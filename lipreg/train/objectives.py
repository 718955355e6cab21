"""The trainer's ``--loss``: the objective of both networks, its default for each penalty,
the errors and warnings for combinations of loss, penalty and ``--constraint``, and whether
the critic's gap estimates W1.

``--loss auto`` (the default) takes the Wasserstein loss with the Lipschitz penalties (gp,
lp, dragan, fd) and with ``--penalty none`` under a ``--constraint``, and the non-saturating
loss with the zero-centred penalties (r1, r2, r1r2 and their derivative-free approx-r1,
approx-r2, approx-r1r2) and with no regulariser at all.

:func:`method` checks a configuration's loss, penalty and constraint together, once, for
:meth:`lipreg.train.plan.Plan.parse`; :func:`method_problems` lists the same problems for a
configuration that is not parsed yet.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

from lipreg.losses import LOSSES, GANLoss
from lipreg.norms import Norm
from lipreg.norms.base import not_hilbert
from lipreg.train.config import TrainConfig
from lipreg.train.constraints import ConstraintSpec
from lipreg.train.ctransform import CTransformObjective
from lipreg.train.penalties import PENALTIES
from lipreg.train.unused import settle

Objective = GANLoss | CTransformObjective
"""The losses of both networks: of the critic's scores, or the c-transform's, which takes the
critic itself."""


class PairingWarning(UserWarning):
    """A loss and a penalty that are known not to train together (see the message)."""


@dataclass(frozen=True)
class Method:
    """A configuration's loss, penalty and constraint, checked together."""

    #: the configuration with its loss resolved (``"auto"`` replaced by the penalty's
    #: default, so that the run's ``config.json`` and checkpoints name the loss trained)
    config: TrainConfig
    objective: Objective  #: the losses of both networks
    #: whether the logged critic gap estimates the Wasserstein-1 distance
    #: (:func:`estimates_wasserstein`)
    estimates_wasserstein: bool


def default_loss(penalty: str, constraint: ConstraintSpec) -> str:
    """``wgan`` for penalties that bound the critic's Lipschitz constant and for a constraint
    without a penalty, else ``ns``."""
    if penalty == "none" and constraint.kind != "none":
        return "wgan"
    return "wgan" if PENALTIES[penalty].lipschitz else "ns"


def method(config: TrainConfig, norm: Norm, constraint: ConstraintSpec) -> Method:
    """The :class:`Method` of a checked ``config`` whose norm and constraint are ``norm`` and
    ``constraint``; ``ValueError`` with the first problem of the combination, a
    :class:`PairingWarning` for a loss and a penalty known not to train together. (Options
    that the method leaves unused are :func:`lipreg.train.unused.settle`'s.)"""
    if config.penalty not in PENALTIES:
        raise ValueError(f"--penalty must be one of {sorted(PENALTIES)}, got {config.penalty!r}")
    c = _resolved(config, constraint)
    for problem in _combination_problems(c, norm, constraint):
        raise ValueError(problem)
    pairing = pairing_problem(c.loss, c.penalty)
    if pairing is not None:
        warnings.warn(pairing, PairingWarning, stacklevel=4)
    objective = CTransformObjective(norm) if c.loss == "ctransform" else LOSSES[c.loss]
    return Method(c, objective, estimates_wasserstein(c.loss, c.penalty, constraint))


def pairing_problem(loss: str, penalty: str) -> str | None:
    """Why ``--loss loss`` with ``--penalty penalty`` is known not to train, or None."""
    if loss == "wgan" and penalty != "none" and not PENALTIES[penalty].lipschitz:
        return (
            f"--loss wgan with --penalty {penalty}: the Wasserstein critic loss "
            "E D(fake) - E D(real) is linear in D, and a zero-centred penalty only measures "
            "the critic's gradient at the samples, so nothing bounds the critic: one that is "
            "flat at every real and generated sample with a step between them has no penalty "
            "and any gap, and the scores drift instead of converging. Use --loss ns, hinge or "
            "rpgan with zero-centred penalties, or a Lipschitz penalty (gp, lp, dragan, fd) "
            "with the Wasserstein loss"
        )
    return None


def method_problems(config: TrainConfig) -> list[str]:
    """Why the checked ``config`` combines loss, penalty and constraint into no method, or
    sets options that its method does not use (each would otherwise be ignored silently);
    ``[]`` for a method that trains."""
    c, norm, constraint = config.parsed()
    return settle(c)[1] + _combination_problems(_resolved(c, constraint), norm, constraint)


def _resolved(config: TrainConfig, constraint: ConstraintSpec) -> TrainConfig:
    """``config`` with ``loss="auto"`` replaced by :func:`default_loss`."""
    if config.loss != "auto":
        return config
    return dataclasses.replace(config, loss=default_loss(config.penalty, constraint))


def _combination_problems(c: TrainConfig, norm: Norm, constraint: ConstraintSpec) -> list[str]:
    """Why the loss (resolved), penalty, constraint and norm of ``c`` make no method."""
    out = []
    if c.loss == "ctransform":
        if c.penalty != "none":
            out.append(
                f"--loss ctransform with --penalty {c.penalty}: the c-transform D^c is "
                "1-Lipschitz by construction and the critic needs no penalty; add --penalty none"
            )
        if constraint.kind != "none":
            out.append(
                f"--loss ctransform with --constraint {c.constraint}: the c-transform needs no "
                "constraint on the critic; drop --constraint"
            )
        if norm.local:
            out.append(
                f"--loss ctransform with --norm {c.norm}: a local norm defines no cost "
                "||x - y||_B between samples; use l2, lp:p=P or sobolev:s=S"
            )
    if c.penalty == "none" and c.loss == "wgan" and constraint.kind == "none":
        out.append(
            "--penalty none with --loss wgan and no --constraint: nothing bounds the critic, "
            "whose Wasserstein loss E D(fake) - E D(real) then falls without limit; add "
            "--constraint clip or sn, a penalty, or use --loss ns, hinge, rpgan or ctransform"
        )
    kind = PENALTIES[c.penalty]
    if kind.zero_centred and not isinstance(c.gamma, float):
        out.append(
            f"--penalty {c.penalty} takes a fixed --gamma, its weight (10 in StyleGAN2), "
            f"not {c.gamma!r}"
        )
    if kind.dual_gaussian and not norm.hilbert:
        out.append(
            f"--norm {c.norm}: {not_hilbert(norm, f'--penalty {c.penalty}')} (here: --norm l2, "
            "sobolev:s=S or w2, or the exact --penalty r1, r2 or r1r2)"
        )
    return out


def estimates_wasserstein(loss: str, penalty: str, constraint: ConstraintSpec) -> bool:
    """Whether the logged gap estimates the Wasserstein-1 distance: ``(E D(real) - E
    D(fake)) / gamma`` for the Wasserstein loss with a penalty that makes the critic
    gamma-Lipschitz or under spectral normalisation (1-Lipschitz in l2), and ``W_hat`` of
    the c-transform."""
    if loss == "ctransform":
        return True
    return loss == "wgan" and (PENALTIES[penalty].lipschitz or constraint.bounds_lipschitz)
