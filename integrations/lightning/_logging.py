"""Logging a penalty's statistics from inside a ``LightningModule`` step."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from torch import Tensor, nn


class _Logs(Protocol):
    def log_dict(self, dictionary: Any, *args: Any, **kwargs: Any) -> None: ...


def penalty_stats(penalty: nn.Module) -> dict[str, Tensor]:
    """The statistics of ``penalty``'s last call as 0-dim tensors (no host synchronisation),
    e.g. ``penalty``, ``dual_norm_mean``, ``lam``, ``gamma`` for :class:`lipreg.BanachGP`.

    Raises if the penalty has not been called yet.
    """
    stats = getattr(penalty, "stats", None)
    if stats is None or not dataclasses.is_dataclass(stats):
        raise RuntimeError(
            f"{type(penalty).__name__} has no statistics yet: call the penalty in this step "
            "before logging it"
        )
    return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}


def log_penalty(
    module: _Logs, penalty: nn.Module, prefix: str = "penalty/", **log_kwargs: Any
) -> None:
    """Log the statistics of ``penalty``'s last call through ``module.log_dict``.

    Keys are ``prefix + name`` (``penalty/dual_norm_mean``, ``penalty/gamma``, ...);
    ``log_kwargs`` go to ``log_dict`` (e.g. ``prog_bar=True``, ``sync_dist=True`` to average
    over processes when logging per epoch). The values stay tensors, so logging does not
    synchronise with the device.
    """
    stats = penalty_stats(penalty)
    module.log_dict({prefix + k: v for k, v in stats.items()}, **log_kwargs)
