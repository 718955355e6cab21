"""The checkpoint state of a run: what a checkpoint of a
:class:`~lipreg.train.loop.Trainer` holds, and how a run continues from it exactly.

:class:`RunState` holds the trainer's stateful parts (networks, weight average, optimisers,
learning-rate schedulers, gradient scalers, penalty, batch stream, constraint) under the
checkpoint's keys; it saves their state dicts with the step, the configuration and every
process's random state, and restores them after checking that the checkpoint belongs to
this run.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lipreg.train import checkpoint
from lipreg.train.config import RUNTIME_FIELDS, TrainConfig, flag
from lipreg.train.distributed import Context, gather


class Stateful(Protocol):
    """A part of a run with a state dict (modules, optimisers, schedulers, ...)."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any, /) -> Any: ...


# Parts added after checkpoints existed, with the state that older checkpoints imply.
# Before --constraint, no constraint was applied (and a constraint's state is {}).
_ADDED_PARTS: dict[str, Any] = {"constraint": {}}


def seed_everything(seed: int, rank: int) -> None:
    """Independent streams per (seed, rank) for Python and torch (noise and the penalty's
    interpolation weights)."""
    derived = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
    random.seed(derived)
    torch.manual_seed(derived)


class RunState:
    """The checkpoint state of the run of ``config`` on ``ctx``: ``parts`` by checkpoint key
    (``None`` for a part this run does not have, such as the weight average with
    ``--ema 0``), loaded in the order given."""

    def __init__(
        self, config: TrainConfig, ctx: Context, parts: Mapping[str, Stateful | None]
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.parts = dict(parts)

    def state_dict(self, step: int) -> dict[str, Any]:
        """Everything needed to continue exactly from ``step`` (this process's random state
        only)."""
        return {
            "step": step,
            "config": self.config.to_dict(),
            **{k: None if p is None else p.state_dict() for k, p in self.parts.items()},
        }

    def save(self, path: Path, step: int) -> None:
        """Write a checkpoint of ``step`` from rank 0 holding every process's random state
        (every process must call this)."""
        states = gather(checkpoint.rng_state(), self.ctx)
        if self.ctx.main:
            checkpoint.save(path, {**self.state_dict(step), "rng": states})

    def restore(self, state: Mapping[str, Any]) -> int:
        """Load ``state`` (from :func:`lipreg.train.checkpoint.load`) into the parts and the
        random generators; returns its step. :class:`~lipreg.train.checkpoint.CheckpointError`
        naming ``--resume`` if it belongs to another run (nothing is loaded then) or does not
        fit the parts."""
        step: int = state["step"]
        self._check(state)
        try:
            for key, part in self.parts.items():
                if part is not None:
                    part.load_state_dict(
                        state.get(key, _ADDED_PARTS[key]) if key in _ADDED_PARTS else state[key]
                    )
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            raise checkpoint.CheckpointError(
                f"--resume: the checkpoint does not fit this run's models and optimisers: {e}"
            ) from e
        rng = state["rng"]
        if len(rng) == self.ctx.world:
            checkpoint.set_rng_state(rng[self.ctx.rank])
        else:
            seed_everything(self.config.seed + step, self.ctx.rank)
            if self.ctx.main:
                print(
                    f"lipreg train: the checkpoint was written by {len(rng)} processes, this run "
                    f"has {self.ctx.world}; random streams are reseeded (not a bitwise "
                    "continuation)"
                )
        return step

    def _check(self, state: Mapping[str, Any]) -> None:
        """:class:`~lipreg.train.checkpoint.CheckpointError` unless ``state`` is a step of
        this run: within ``--steps``, written with the same settings (but those of
        :data:`~lipreg.train.config.RUNTIME_FIELDS`), with the same parts."""
        if state["step"] > self.config.steps:
            raise checkpoint.CheckpointError(
                f"--resume: the checkpoint is at step {state['step']}, beyond --steps "
                f"{self.config.steps}; resume with --steps {state['step']} or more"
            )
        saved = TrainConfig.from_saved(state["config"], check=False)
        differ = [
            f"{flag(k)} {getattr(saved, k)!r} (this run: {getattr(self.config, k)!r})"
            for k in saved.to_dict()
            if k not in RUNTIME_FIELDS and getattr(saved, k) != getattr(self.config, k)
        ]
        if differ:
            raise checkpoint.CheckpointError(
                "--resume: the checkpoint was written with other settings: "
                + "; ".join(differ)
                + ". Resume with the checkpoint's settings (drop those options) or start a new run"
            )
        if (state["ema"] is None) != (self.parts.get("ema") is None):
            raise checkpoint.CheckpointError("--resume: the checkpoint's --ema setting differs")
