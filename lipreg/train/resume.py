"""The checkpoint state of a :class:`~lipreg.train.loop.Trainer`: what it saves, and how a
run continues from it exactly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from lipreg.train import checkpoint
from lipreg.train.batches import Batches
from lipreg.train.config import RUNTIME_FIELDS, TrainConfig, _option
from lipreg.train.constraints import Constraint
from lipreg.train.distributed import Context, gather
from lipreg.train.schedules import Schedule


def seed_everything(seed: int, rank: int) -> None:
    """Independent streams per (seed, rank) for Python and torch (noise and the penalty's
    interpolation weights)."""
    derived = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
    random.seed(derived)
    torch.manual_seed(derived)


class Resumable:
    """Checkpoints of a :class:`~lipreg.train.loop.Trainer` (a mixin: the trainer provides
    the attributes declared here)."""

    config: TrainConfig
    ctx: Context
    step: int
    schedule: Schedule
    g: nn.Module
    d: nn.Module
    ema: AveragedModel | None
    opt_g: Optimizer
    opt_d: Optimizer
    sched_g: LambdaLR
    sched_d: LambdaLR
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    penalty: nn.Module
    batches: Batches
    constraint: Constraint

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (this process's random state only)."""
        return {
            "step": self.step,
            "config": self.config.to_dict(),
            "generator": self.g.state_dict(),
            "critic": self.d.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "penalty": self.penalty.state_dict(),
            "batches": self.batches.state_dict(),
            "constraint": self.constraint.state_dict(),
        }

    def save(self, path: Path) -> None:
        """Write a checkpoint from rank 0 holding every process's random state (every
        process must call this)."""
        states = gather(checkpoint.rng_state(), self.ctx)
        if self.ctx.main:
            checkpoint.save(path, {**self.state(), "rng": states})

    def _load(self, state: dict[str, Any]) -> None:
        if state["step"] > self.config.steps:
            raise checkpoint.CheckpointError(
                f"--resume: the checkpoint is at step {state['step']}, beyond --steps "
                f"{self.config.steps}; resume with --steps {state['step']} or more"
            )
        saved = TrainConfig.from_saved(state["config"])
        differ = [
            f"{_option(k)} {getattr(saved, k)!r} (this run: {getattr(self.config, k)!r})"
            for k in saved.to_dict()
            if k not in RUNTIME_FIELDS and getattr(saved, k) != getattr(self.config, k)
        ]
        if differ:
            raise checkpoint.CheckpointError(
                "--resume: the checkpoint was written with other settings: "
                + "; ".join(differ)
                + ". Resume with the checkpoint's settings (drop those options) or start a new run"
            )
        if (state["ema"] is None) != (self.ema is None):
            raise checkpoint.CheckpointError("--resume: the checkpoint's --ema setting differs")
        try:
            self.g.load_state_dict(state["generator"])
            self.d.load_state_dict(state["critic"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_g.load_state_dict(state["sched_g"])
            self.sched_d.load_state_dict(state["sched_d"])
            self.scaler_g.load_state_dict(state["scaler_g"])
            self.scaler_d.load_state_dict(state["scaler_d"])
            self.penalty.load_state_dict(state["penalty"])
            self.batches.load_state_dict(state["batches"])
            # absent from checkpoints written before --constraint, which had none
            self.constraint.load_state_dict(state.get("constraint", {}))
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            raise checkpoint.CheckpointError(
                f"--resume: the checkpoint does not fit this run's models and optimisers: {e}"
            ) from e
        self.step = state["step"]
        # A new --steps moves the end of the linear decay: the rate continues on the new line
        # from this step (with --steps unchanged this is the saved rate, bit for bit).
        for opt, sched in ((self.opt_g, self.sched_g), (self.opt_d, self.sched_d)):
            for group, base in zip(opt.param_groups, sched.base_lrs, strict=True):
                group["lr"] = base * self.schedule.lr_factor(self.step)
        rng = state["rng"]
        if len(rng) == self.ctx.world:
            checkpoint.set_rng_state(rng[self.ctx.rank])
        else:
            seed_everything(self.config.seed + self.step, self.ctx.rank)
            if self.ctx.main:
                print(
                    f"lipreg train: the checkpoint was written by {len(rng)} processes, this run "
                    f"has {self.ctx.world}; random streams are reseeded (not a bitwise "
                    "continuation)"
                )
