"""Wiring a lipreg penalty into an ``accelerate.Accelerator``."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn

from lipreg import GradientPenalty


class _Accelerator(Protocol):
    """What is used of ``accelerate.Accelerator``."""

    device: torch.device
    scaler: torch.amp.GradScaler | None

    def register_for_checkpointing(self, *objects: Any) -> None: ...

    def gather(self, tensor: Any) -> Any: ...


P = TypeVar("P", bound=nn.Module)


def prepare_penalty(accelerator: _Accelerator, penalty: P) -> P:
    """Make ``penalty`` (a lipreg penalty module) ready for ``accelerator``'s loop; returns it.

    * moved to ``accelerator.device`` (it has no parameters, so it is not ``prepare``\\ d:
      DDP refuses modules without trainable parameters);
    * with float16 mixed precision, ``grad_scaler = accelerator.scaler`` for every
      :class:`lipreg.GradientPenalty` in it (``BanachGP``, ``BanachR1``, ...): the input
      gradient is then taken of the scaled scores and unscaled in float32, PyTorch's recipe
      for gradient penalties under a GradScaler (``accelerator.backward`` scales the loss);
    * registered with ``accelerator.register_for_checkpointing``, so ``save_state`` /
      ``load_state`` keep its ``"auto"`` estimates (validated as a whole on load).

    The ``"auto"`` estimates of lam and gamma are averaged across processes by the penalty
    itself (``torch.distributed`` is initialised by Accelerate in multi-process runs), so every
    rank uses the same lam and gamma. Raises ``TypeError`` before changing anything if
    ``penalty`` is not a module.
    """
    if not isinstance(penalty, nn.Module) or not callable(penalty):
        raise TypeError(
            "penalty must be a lipreg penalty module (BanachGP, BanachR1, Lazy(...), ...), got "
            f"{type(penalty).__name__}"
        )
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(
            "accelerator.scaler must be a torch.amp.GradScaler or None, "
            f"got {type(scaler).__name__}"
        )
    penalty.to(accelerator.device)
    if scaler is not None:
        # Every input-gradient penalty inside (also one wrapped in lipreg.Lazy).
        for module in penalty.modules():
            if isinstance(module, GradientPenalty):
                module.grad_scaler = scaler
    accelerator.register_for_checkpointing(penalty)
    return penalty


def reduced_stats(accelerator: _Accelerator, penalty: nn.Module) -> dict[str, float]:
    """The statistics of ``penalty``'s last call averaged over processes, as floats for
    ``accelerator.log`` (``dual_norm_max`` is the maximum over processes). Every process
    must call it (it is a collective operation)."""
    stats = getattr(penalty, "stats", None)
    if stats is None or not dataclasses.is_dataclass(stats):
        raise RuntimeError(
            f"{type(penalty).__name__} has no statistics yet: call the penalty before reducing them"
        )
    names = [field.name for field in dataclasses.fields(stats)]
    local = torch.stack([getattr(stats, name).detach().float() for name in names])
    gathered: Tensor = accelerator.gather(local.unsqueeze(0))  # [processes, statistics]
    return {
        name: float(column.max() if name.endswith("_max") else column.mean())
        for name, column in zip(names, gathered.unbind(1), strict=True)
    }
