"""The trainer's ``--loss``: the objective of both networks, its default for each penalty,
the errors and warnings for combinations of loss, penalty and ``--constraint``, and whether
the critic's gap estimates W1.

``--loss auto`` (the default) takes the Wasserstein loss with the Lipschitz penalties (gp,
lp, dragan, fd) and with ``--penalty none`` under a ``--constraint``, and the non-saturating
loss with the zero-centred penalties (r1, r2, r1r2) and with no regulariser at all.
"""

from __future__ import annotations

import dataclasses
import warnings

from lipreg.losses import LOSSES, GANLoss
from lipreg.norms import parse_norm
from lipreg.train.config import TrainConfig
from lipreg.train.constraints import parse_constraint
from lipreg.train.ctransform import CTransformObjective
from lipreg.train.penalties import PENALTIES


class PairingWarning(UserWarning):
    """A loss and a penalty that are known not to train together (see the message)."""


def default_loss(penalty: str, constraint: str = "none") -> str:
    """``wgan`` for penalties that bound the critic's Lipschitz constant and for a constraint
    without a penalty, else ``ns``."""
    if penalty == "none" and parse_constraint(constraint).kind != "none":
        return "wgan"
    return "wgan" if PENALTIES[penalty].lipschitz else "ns"


def resolved(config: TrainConfig) -> TrainConfig:
    """``config`` with ``loss="auto"`` replaced by the penalty's default (so the run's
    ``config.json`` and checkpoints name the loss that was trained)."""
    if config.loss != "auto":
        return config
    return dataclasses.replace(config, loss=default_loss(config.penalty, config.constraint))


def objective(config: TrainConfig) -> GANLoss | CTransformObjective:
    """The losses of a resolved ``config``: a loss of critic scores, or the c-transform's,
    which takes the critic itself."""
    loss = resolved(config).loss
    return CTransformObjective(config.norm) if loss == "ctransform" else LOSSES[loss]


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


def warn_pairing(config: TrainConfig) -> None:
    """Issue a :class:`PairingWarning` if the resolved ``config`` pairs a loss and a penalty
    known not to train together."""
    problem = pairing_problem(resolved(config).loss, config.penalty)
    if problem is not None:
        warnings.warn(problem, PairingWarning, stacklevel=3)


_DEFAULTS = TrainConfig()


def method_problems(config: TrainConfig) -> list[str]:
    """Why the resolved ``config`` combines loss, penalty and constraint into no method, or
    sets options that its method does not use (each would otherwise be ignored silently)."""
    c = resolved(config)
    constraint = parse_constraint(c.constraint).kind
    out = []
    if c.loss == "ctransform":
        if c.penalty != "none":
            out.append(
                f"--loss ctransform with --penalty {c.penalty}: the c-transform D^c is "
                "1-Lipschitz by construction and the critic needs no penalty; add --penalty none"
            )
        if constraint != "none":
            out.append(
                f"--loss ctransform with --constraint {c.constraint}: the c-transform needs no "
                "constraint on the critic; drop --constraint"
            )
        if parse_norm(c.norm).local:
            out.append(
                f"--loss ctransform with --norm {c.norm}: a local norm defines no cost "
                "||x - y||_B between samples; use l2, lp:p=P or sobolev:s=S"
            )
    if c.penalty != "none":
        return out
    if c.loss == "wgan" and constraint == "none":
        out.append(
            "--penalty none with --loss wgan and no --constraint: nothing bounds the critic, "
            "whose Wasserstein loss E D(fake) - E D(real) then falls without limit; add "
            "--constraint clip or sn, a penalty, or use --loss ns, hinge, rpgan or ctransform"
        )
    unused = [
        name
        for name in ("lam", "gamma", "gamma_final")
        if getattr(c, name) != getattr(_DEFAULTS, name)
    ]
    if c.loss != "ctransform" and c.norm != _DEFAULTS.norm:
        unused.append("norm")
    if c.lazy_every != 1:
        unused.append("lazy_every")
    for name in unused:
        flag = "--" + name.replace("_", "-")
        out.append(
            f"{flag} {getattr(c, name)!r} has no effect with --penalty none (nothing uses it); "
            f"leave it at its default {getattr(_DEFAULTS, name)!r}"
        )
    return out


def check_method(config: TrainConfig) -> None:
    """Raise ``ValueError`` with the first of :func:`method_problems`."""
    for problem in method_problems(config):
        raise ValueError(problem)


def estimates_wasserstein(config: TrainConfig) -> bool:
    """Whether the logged gap estimates the Wasserstein-1 distance: ``(E D(real) - E
    D(fake)) / gamma`` for the Wasserstein loss with a penalty that makes the critic
    gamma-Lipschitz or under spectral normalisation (1-Lipschitz in l2), and ``W_hat`` of
    the c-transform."""
    c = resolved(config)
    if c.loss == "ctransform":
        return True
    lipschitz = PENALTIES[c.penalty].lipschitz or parse_constraint(c.constraint).bounds_lipschitz
    return c.loss == "wgan" and lipschitz
