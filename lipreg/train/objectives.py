"""The trainer's ``--loss``: the objective of both networks, its default for each penalty,
the warning for pairings known to fail, and whether the critic's gap estimates W1.

``--loss auto`` (the default) takes the Wasserstein loss with the Lipschitz penalties (gp,
lp, dragan, fd) and the non-saturating loss with the zero-centred ones (r1, r2, r1r2).
"""

from __future__ import annotations

import dataclasses
import warnings

from lipreg.losses import LOSSES, GANLoss
from lipreg.train.config import TrainConfig
from lipreg.train.penalties import PENALTIES


class PairingWarning(UserWarning):
    """A loss and a penalty that are known not to train together (see the message)."""


def default_loss(penalty: str) -> str:
    """``wgan`` for penalties that bound the critic's Lipschitz constant, else ``ns``."""
    return "wgan" if PENALTIES[penalty].lipschitz else "ns"


def resolved(config: TrainConfig) -> TrainConfig:
    """``config`` with ``loss="auto"`` replaced by the penalty's default (so the run's
    ``config.json`` and checkpoints name the loss that was trained)."""
    if config.loss != "auto":
        return config
    return dataclasses.replace(config, loss=default_loss(config.penalty))


def objective(config: TrainConfig) -> GANLoss:
    """The losses of a resolved ``config``."""
    return LOSSES[resolved(config).loss]


def pairing_problem(loss: str, penalty: str) -> str | None:
    """Why ``--loss loss`` with ``--penalty penalty`` is known not to train, or None."""
    if loss == "wgan" and not PENALTIES[penalty].lipschitz:
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


def estimates_wasserstein(config: TrainConfig) -> bool:
    """Whether ``(E D(real) - E D(fake)) / gamma`` estimates the Wasserstein-1 distance in
    ``B``: the Wasserstein loss with a penalty that makes the critic gamma-Lipschitz."""
    return resolved(config).loss == "wgan" and PENALTIES[config.penalty].lipschitz
