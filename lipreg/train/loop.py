"""The training loop of ``lipreg train``: a GAN whose critic loss is the one line

    d_loss = loss.critic(d_real, d_fake) + penalty(critic, real, fake)

(``d_fake.mean() - d_real.mean()`` for the default Wasserstein loss; see
:mod:`lipreg.losses` and ``--loss``) plus the drift term ``drift * E[D(real)^2]`` (Progressive
GAN, Karras et al. 2018; 1e-5 in the paper's reference code). Per generator step:
``n_critic`` critic steps on fresh real batches and fresh fakes, then one generator step on
the loss's generator side (``-E D(G(z))`` for WGAN), a weight average (EMA) of the generator,
and the schedules of :mod:`lipreg.train.schedules` (by default linear decay of both learning
rates to zero over ``steps`` generator steps).

:class:`Trainer` builds everything from a :class:`~lipreg.train.config.TrainConfig`;
:meth:`Trainer.critic_step`, :meth:`Trainer.generator_step` and :meth:`Trainer.iteration`
are the steps of the loop, :meth:`Trainer.run` the loop itself with logging, evaluation,
checkpoints and a clean stop on SIGINT/SIGTERM.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from lipreg import Stats
from lipreg.scaling import GammaScale, scale_by_gamma
from lipreg.train import checkpoint
from lipreg.train.batches import Batches
from lipreg.train.config import RUNTIME_FIELDS, TrainConfig, _option
from lipreg.train.constraints import Constraint
from lipreg.train.ctransform import CTransformObjective
from lipreg.train.data import load_dataset
from lipreg.train.distributed import (
    Context,
    any_rank,
    gather,
    main_first,
    setup,
    teardown,
    wrap,
)
from lipreg.train.evaluate import Evaluator
from lipreg.train.models import build_models
from lipreg.train.objectives import (
    check_method,
    estimates_wasserstein,
    objective,
    resolved,
    warn_pairing,
)
from lipreg.train.penalties import PENALTIES, build_penalty, check_norm
from lipreg.train.scalars import ScalarLog
from lipreg.train.schedules import Schedule, zero_centred
from lipreg.train.signals import Interrupted, StopRequest

CALIBRATION_SAMPLES = 10_000
"""Real samples behind lam and gamma when they are estimated before training."""

_AMP_DTYPES = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Summary:
    """The outcome of :meth:`Trainer.run`."""

    step: int  #: generator steps done
    out: Path  #: the run directory
    interrupted: bool  #: stopped by SIGINT/SIGTERM (a checkpoint was saved)
    files: list[Path] = field(default_factory=list)  #: files written at the end
    #: the metrics (``metric/...``) of this run's evaluation at ``step``; empty on ranks other
    #: than 0, when interrupted, or when the run made no evaluation at ``step``
    metrics: dict[str, float] = field(default_factory=dict)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """``module``'s parameters do not require gradients inside the block (the generator step
    needs gradients through the critic, not of it)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


AvgFn = Callable[[Sequence[Tensor], Sequence[Tensor], "Tensor | int"], None]


def ema_update(decay: Callable[[int], float]) -> AvgFn:
    """The ``multi_avg_fn`` of the generator's weight average (``AveragedModel``):

        w_ema <- d_t w_ema + (1 - d_t) w,   d_t = decay(t),

    ``t`` the number of averages so far (``AveragedModel`` copies the weights at ``t = 0``).
    By default ``d_t = min(--ema, (1 + t) / (10 + t))``: the warm-up ``(1 + t) / (10 + t)`` is
    TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``, so early samples are not
    dominated by the initial weights (toy runs of a few hundred steps), and after
    ``10 / (1 - decay)`` steps the decay is constant; ``--ema-half-life`` gives R3GAN's
    growing half-life instead (:meth:`lipreg.train.schedules.Schedule.ema_decay`). Integer
    buffers (batch norm's ``num_batches_tracked``) are copied.
    """

    @torch.no_grad()
    def update(averaged: Sequence[Tensor], current: Sequence[Tensor], t: Tensor | int) -> None:
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(list(averaged), list(current))
            return
        torch._foreach_lerp_(list(averaged), list(current), 1.0 - decay(int(t)))

    return update


def _describe(penalty: nn.Module) -> str:
    """``Name(options)`` on one line (with lam and gamma for calibrated penalties)."""
    calibration = getattr(penalty, "calibration", None)
    settings = "" if calibration is None else ", " + calibration.extra_repr()
    inner = f"{type(penalty).__name__}({penalty.extra_repr()}{settings})"
    wrapped = getattr(penalty, "penalty", None)
    return f"{inner} of {_describe(wrapped)}" if isinstance(wrapped, nn.Module) else inner


def _calibrated(penalty: nn.Module) -> Any:
    """The penalty holding the lam/gamma estimates (inside :class:`lipreg.Lazy`)."""
    inner = getattr(penalty, "penalty", None)
    return inner if isinstance(inner, nn.Module) else penalty


def _advance(sched: LambdaLR) -> None:
    """``sched.step()``. A GradScaler skips the optimiser steps that overflow (fp16) while
    the schedule still advances with the iteration, which torch warns about on a scheduler's
    first step only (``_step_count == 1``; the count is part of the scheduler's state, so a
    resumed run is past it). The warning is silenced on that step alone: entering
    ``catch_warnings`` on every step would reset the registries of once-only warnings."""
    if sched._step_count != 1:
        sched.step()
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`")
        sched.step()


def check_out(out: str) -> None:
    """Raise ``ValueError`` naming ``--out`` unless ``out`` is, or can be created as, a
    writable directory (checked without creating anything)."""
    path = Path(out).expanduser()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise ValueError(f"--out {out} {where}; give a directory for the run's outputs")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {existing} is not writable; give another directory")


def _seed_everything(seed: int, rank: int) -> None:
    """Independent streams per (seed, rank) for Python and torch (noise and the penalty's
    interpolation weights)."""
    derived = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
    random.seed(derived)
    torch.manual_seed(derived)


class Trainer:
    """A training run, built from ``config`` (and resumed from ``resume``, a checkpoint dict
    from :func:`lipreg.train.checkpoint.load`).

    Batch sizes are global: each of the ``world`` processes draws ``batch_size / world`` real
    samples per critic step and ``gen_batch_size / world`` noise vectors per generator step,
    and DDP averages the gradients. The critic's update equals a single process's on the whole
    batch; the generator's batch-norm layers normalise over each process's share of the
    generator batch (no SyncBatchNorm), as in most multi-GPU GAN code.
    """

    def __init__(
        self,
        config: TrainConfig,
        resume: dict[str, Any] | None = None,
        ctx: Context | None = None,
    ) -> None:
        self.config = c = resolved(config.checked())
        check_method(c)
        warn_pairing(c)
        self.loss = objective(c)
        self.schedule = Schedule(c)
        self.ctx = ctx if ctx is not None else setup(c.device)
        self.device = self.ctx.device
        world = self.ctx.world
        for name in ("batch_size", "gen_batch_size"):
            if getattr(c, name) % world:
                raise ValueError(
                    f"{_option(name)} {getattr(c, name)} is the global batch and must "
                    f"be divisible by the number of processes ({world})"
                )
        try:
            with main_first(self.ctx):  # a download happens once, on rank 0
                self.data = load_dataset(
                    c.data,
                    root=c.data_root,
                    image_size=c.image_size,
                    seed=c.seed,
                    size=c.data_size,
                    download=c.download,
                )
        except (TypeError, ValueError, OSError, pickle.UnpicklingError) as e:
            raise ValueError(f"--data {c.data}: {e}") from e
        check_out(c.out)
        check_norm(c.norm, self.data.sample_shape)
        torch.manual_seed(c.seed)  # the same initial weights on every process
        g, d, self.z_dim = build_models(c.model, self.data.sample_shape, c.width, c.z_dim)
        # before the optimiser: spectral normalisation replaces the critic's weights
        self.constraint = Constraint(c.constraint, d, self.data.sample_shape)
        self.g, self.d = g.to(self.device), d.to(self.device)
        self.generator, self.critic = wrap(self.g, self.ctx), wrap(self.d, self.ctx)
        self.ema = (
            AveragedModel(
                self.g, multi_avg_fn=ema_update(self.schedule.ema_decay()), use_buffers=True
            )
            if c.ema > 0
            else None
        )
        betas = (float(c.betas[0]), float(c.betas[1]))
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=c.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=c.lr, betas=betas)
        self.constraint.attach(self.opt_d)
        self.sched_g = LambdaLR(self.opt_g, self.schedule.lr_factor)
        self.sched_d = LambdaLR(self.opt_d, self.schedule.lr_factor)
        self.amp_dtype = _AMP_DTYPES[c.precision]
        fp16 = c.precision == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.penalty = build_penalty(c, self.scaler_d, "func").to(self.device)
        if c.gamma_final is not None:
            zero_centred(self.penalty, c)
        self.batches = Batches(self.data, c.batch_size // world, c.seed, self.ctx.rank, world)
        self.step = 0
        _seed_everything(c.seed, self.ctx.rank)
        if resume is not None:
            self._load(resume)
        self.gamma_scale = self._scale_critic(calibrate=resume is None)
        self.last: dict[str, Tensor] = {}
        self._saved_at = -1  #: the step of the checkpoint this run wrote last (or resumed)
        self._busy = ""  #: "iteration" or "checkpoint" while the state is not a whole step

    def _scale_critic(self, calibrate: bool) -> GammaScale | None:
        """``--critic-scale gamma``: the critic computes ``D = gamma * f``
        (:func:`lipreg.scale_by_gamma`). A factor estimated from the data (``--gamma auto``) is
        needed before the first forward, so a new run estimates lam and gamma once, from up to
        :data:`CALIBRATION_SAMPLES` real samples (a resumed run has them in its checkpoint)."""
        c = self.config
        if c.critic_scale != "gamma" or not PENALTIES[c.penalty].lipschitz:
            return None
        if calibrate and c.gamma == "auto":
            gen = torch.Generator().manual_seed(c.seed)
            index = torch.randperm(len(self.data), generator=gen)[:CALIBRATION_SAMPLES]
            batches = (
                self.data.take(part).to(self.device) for part in torch.split(index, c.batch_size)
            )
            _calibrated(self.penalty).calibrate(batches)
        return scale_by_gamma(self.d, self.penalty)

    def autocast(self) -> AbstractContextManager[Any]:
        """Mixed precision for forward passes (``--precision bf16|fp16``)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ---- the loop ---------------------------------------------------------------------------

    def critic_step(self) -> None:
        """One critic update on a fresh real batch and fresh fakes."""
        real = next(self.batches).to(self.device, non_blocking=True)
        z = torch.randn(real.shape[0], self.z_dim, device=self.device)
        # The unwrapped generator: no gradients flow here, so DDP has nothing to do (the
        # generator step's forward broadcasts rank 0's batch-norm buffers; in training mode
        # batch norm normalises with the batch's statistics, so the fakes are the same).
        with torch.no_grad(), self.autocast():
            fake = self.g(z).to(real.dtype)
        self.opt_d.zero_grad(set_to_none=True)
        self.critic_backward(real, fake)
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

    def critic_backward(self, real: Tensor, fake: Tensor) -> None:
        """The critic loss on ``real`` and ``fake`` ``[B, ...]``, backpropagated into the
        critic's gradients (scaled under fp16)."""
        with self.autocast(), self.constraint.normalised_once():
            if isinstance(self.loss, CTransformObjective):
                d_loss, d_real = self.loss.critic(self.critic, real, fake)
                gap = -d_loss.detach()  # W_hat = mean D(real) + mean D^c(fake)
            else:
                d_real, d_fake = self.critic(real), self.critic(fake)
                d_loss = self.loss.critic(d_real, d_fake) + self.penalty(self.critic, real, fake)
                gap = d_real.detach().mean() - d_fake.detach().mean()
            d_loss = d_loss + self.config.drift * d_real.float().square().mean()
        torch.autograd.backward(self.scaler_d.scale(d_loss))
        self.last = {"loss/critic": d_loss.detach(), "critic_gap": gap}

    def generator_step(self) -> None:
        """One generator update on the loss's generator side (``-E D(G(z))`` for WGAN), then
        the weight average. The relativistic loss scores as many fresh real samples, drawn
        as whole real batches; the c-transform measures the fakes against one fresh real
        batch."""
        n = self.config.gen_batch_size // self.ctx.world
        loss, real = self.loss, None
        if isinstance(loss, CTransformObjective) or loss.relativistic:
            count = 1 if isinstance(loss, CTransformObjective) else n // self.batches.batch_size
            batches = [next(self.batches) for _ in range(count)]
            real = torch.cat(batches).to(self.device, non_blocking=True)
        z = torch.randn(n, self.z_dim, device=self.device)
        with self.autocast(), frozen(self.d):
            fake = self.generator(z)
            if isinstance(loss, CTransformObjective):
                assert real is not None
                g_loss = loss.generator(self.d, real, fake)
            else:
                d_fake = self.d(fake)
                d_real = None
                if real is not None:
                    with torch.no_grad():
                        d_real = self.d(real)
                g_loss = loss.generator(d_real, d_fake)
        self.opt_g.zero_grad(set_to_none=True)
        torch.autograd.backward(self.scaler_g.scale(g_loss))
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        if self.ema is not None:
            self.ema.update_parameters(self.g)
        self.last["loss/generator"] = g_loss.detach()

    def iteration(self) -> None:
        """``n_critic`` critic steps, one generator step, learning-rate decay (beta2 and
        gamma schedules are set for the iteration first)."""
        self._scheduled_values()
        for _ in range(self.config.n_critic):
            self.critic_step()
        self.generator_step()
        for sched in (self.sched_d, self.sched_g):
            _advance(sched)
        self.step += 1

    def _scheduled_values(self) -> None:
        """Adam's beta2 and the zero-centred penalty's gamma at this step, when scheduled
        (recomputed from the step, so a resumed run sets the same values)."""
        beta2 = self.schedule.beta2(self.step)
        if beta2 is not None:
            for opt in (self.opt_g, self.opt_d):
                for group in opt.param_groups:
                    group["betas"] = (group["betas"][0], beta2)
        gamma = self.schedule.gamma(self.step)
        if gamma is not None:
            zero_centred(self.penalty, self.config).gamma = gamma

    def run(self) -> Summary:
        """Train until ``steps`` (or a signal), logging, evaluating and checkpointing.

        The first SIGINT or SIGTERM stops the run after the current iteration (or
        evaluation) with a checkpoint. A second SIGINT stops it at once: a checkpoint is then
        saved if the networks are between two iterations (in a single process), otherwise
        the last one is kept.
        """
        c, main = self.config, self.ctx.main
        out = Path(c.out)
        resumed = self.step if self.step > 0 else None
        evaluator = self.evaluator(out) if main else None  # reads data: fails before writing
        log = ScalarLog(out, c.tensorboard, resume_step=resumed) if main else None
        if main:
            (out / "config.json").write_text(json.dumps(c.to_dict(), indent=2) + "\n")
            self._announce(log, evaluator)
        bar = self._progress_bar()
        stop = StopRequest(announce=main)
        self._saved_at = self.step if resumed is not None else -1
        metrics: dict[str, float] = {}
        files: list[Path] = []
        stopped = at_once = False
        with stop.installed():
            try:
                metrics, stopped = self._train(out, log, evaluator, bar, stop, resumed is None)
                if main and not stopped:
                    assert log is not None
                    assert evaluator is not None
                    if not c.eval_every or self.step % c.eval_every:
                        metrics = evaluator.evaluate(self.step, self.sampler)
                        self._write_metrics(log, metrics)
                    files = evaluator.finish(self.step, log.path, self.sampler, self.d)
            except Interrupted:
                stopped = at_once = True
                self._save_what_can_be_saved(out)
            finally:
                if bar is not None:
                    bar.close()
                if log is not None:
                    log.close()
        if main and stopped:
            print(self._stopped_message(stop.signal_name or "a signal", at_once, out))
        return Summary(
            step=self.step,
            out=out,
            interrupted=stopped,
            files=files,
            metrics={} if stopped else metrics,
        )

    def _train(
        self,
        out: Path,
        log: ScalarLog | None,
        evaluator: Evaluator | None,
        bar: Any,
        stop: StopRequest,
        fresh: bool,
    ) -> tuple[dict[str, float], bool]:
        """The loop of :meth:`run`: the last evaluation's metrics and whether a signal
        stopped it (a checkpoint of the last step is on disk either way)."""
        c = self.config
        metrics: dict[str, float] = {}
        if evaluator is not None and c.eval_every and fresh:
            # the starting point of the curves
            self._write_metrics(log, evaluator.evaluate(0, self.sampler))
        tick, ticked_at = time.perf_counter(), self.step
        stopped = False
        while self.step < c.steps:
            self._busy = "iteration"
            self.iteration()
            self._busy = ""
            if self.step % c.log_every == 0 or self.step == c.steps:
                now = time.perf_counter()
                images = (self.step - ticked_at) * c.n_critic * c.batch_size
                rate = images / max(now - tick, 1e-9)
                tick, ticked_at = now, self.step
                self._log(log, bar, rate)
            if evaluator is not None and c.eval_every and self.step % c.eval_every == 0:
                started = time.perf_counter()
                metrics = evaluator.evaluate(self.step, self.sampler)
                self._write_metrics(log, metrics)
                tick += time.perf_counter() - started  # images/s counts training only
            if any_rank(stop.requested, self.ctx):
                stopped = True
                break
            if c.checkpoint_every and self.step % c.checkpoint_every == 0:
                self._checkpoint(out)
        if self._saved_at != self.step:
            self._checkpoint(out)
        return metrics, stopped

    def _checkpoint(self, out: Path) -> None:
        self._busy = "checkpoint"
        self.save(out / "checkpoint.pt")
        self._saved_at = self.step
        self._busy = ""

    def _save_what_can_be_saved(self, out: Path) -> None:
        """After a second SIGINT: save the step if the state is whole and unsaved (saving is
        collective, so a single process only)."""
        if self._busy or self.ctx.distributed or self._saved_at == self.step:
            return
        # yet another SIGINT aborts the save, which is atomic: the last checkpoint stays
        with suppress(Interrupted):
            self._checkpoint(out)

    def _stopped_message(self, name: str, at_once: bool, out: Path) -> str:
        resume = f"Continue with: lipreg train --resume {out}"
        if self._saved_at == self.step and not self._busy:
            how = "at once by a second SIGINT" if at_once else f"by {name}"
            return f"lipreg train: stopped {how} after step {self.step}; checkpoint saved. {resume}"
        where = (
            f"while saving step {self.step}"
            if self._busy == "checkpoint"
            else f"during step {self.step + 1}"
        )
        if self._saved_at < 0:
            return (
                f"lipreg train: stopped at once by a second SIGINT {where}, before a "
                "checkpoint was saved; start the run again"
            )
        return (
            f"lipreg train: stopped at once by a second SIGINT {where}; the checkpoint of step "
            f"{self._saved_at} is kept (later steps are lost). {resume}"
        )

    # ---- outputs ----------------------------------------------------------------------------

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples and metrics come from: the weight average with
        ``--ema``, else the generator itself."""
        return self.ema.module if self.ema is not None else self.g

    def evaluator(self, out: Path) -> Evaluator:
        """An :class:`~lipreg.train.evaluate.Evaluator` of this run writing under ``out``."""
        return Evaluator(self.config, self.data, self.z_dim, self.device, out)

    def scalars(self) -> dict[str, float]:
        """The last iteration's scalars as floats: the critic's loss and gap, the penalty's
        statistics of its last evaluating call (``penalty.stats``), the generator's loss, the
        Wasserstein estimate and the learning rate."""
        # in the log's column order: the critic's scalars, the penalty's, the generator's
        values = {k: float(v) for k, v in self.last.items() if k != "loss/generator"}
        stats = getattr(self.penalty, "stats", None)
        if isinstance(stats, Stats):
            values |= stats.as_dict()
        if "loss/generator" in self.last:
            values["loss/generator"] = float(self.last["loss/generator"])
        if estimates_wasserstein(self.config) and "critic_gap" in values:
            # (E D(real) - E D(fake)) / gamma: the Wasserstein-1 distance in B for a
            # gamma-Lipschitz critic (the raw gap for penalties without a gamma)
            gap = values["critic_gap"]
            values["wasserstein"] = gap / values["gamma"] if "gamma" in values else gap
        values["lr"] = float(self.sched_g.get_last_lr()[0])
        return values

    def _log(self, log: ScalarLog | None, bar: Any, rate: float) -> None:
        if log is None:
            return
        values = {**self.scalars(), "images_per_s": rate}
        log.write(self.step, values)
        if bar is not None:
            shown = {"W": "wasserstein", "pen": "penalty", "lam": "lam", "gamma": "gamma"}
            if "wasserstein" not in values:  # other losses: the gap of the critic's scores
                shown = {"gap": "critic_gap", **shown}
            post = {k: f"{values[v]:.4g}" for k, v in shown.items() if v in values}
            bar.set_postfix(**post, img_s=f"{rate:.0f}", refresh=False)
            bar.update(self.step - bar.n)

    def _write_metrics(self, log: ScalarLog | None, metrics: dict[str, float]) -> None:
        if log is not None and metrics:
            log.write(self.step, metrics)

    def _progress_bar(self) -> Any:
        if not (self.config.progress and self.ctx.main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.steps, initial=self.step, unit="step", dynamic_ncols=True)

    def _announce(self, log: ScalarLog | None, evaluator: Evaluator | None) -> None:
        c = self.config
        sizes = [sum(p.numel() for p in m.parameters()) for m in (self.g, self.d)]
        print(
            f"lipreg train: {self.data!r}; generator {type(self.g).__name__} "
            f"({sizes[0]:,} parameters), critic {type(self.d).__name__} ({sizes[1]:,}); "
            f"loss {c.loss}; penalty {_describe(self.penalty)}"
            + ("" if c.constraint == "none" else f"; constraint {self.constraint!r}")
            + f"; {c.steps} steps on "
            f"{self.ctx.world} x {self.device}, precision {c.precision}; writing to {c.out}"
        )
        for note in [*(log.notes if log else []), evaluator.note if evaluator else ""]:
            if note:
                print(f"lipreg train: {note}")

    # ---- checkpoints ------------------------------------------------------------------------

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
            _seed_everything(self.config.seed + self.step, self.ctx.rank)
            if self.ctx.main:
                print(
                    f"lipreg train: the checkpoint was written by {len(rng)} processes, this run "
                    f"has {self.ctx.world}; random streams are reseeded (not a bitwise "
                    "continuation)"
                )

    def close(self) -> None:
        """Leave the process group if this trainer joined it (the trainer cannot train after)."""
        if self.ctx.distributed:
            # Gloo sometimes aborts the process (SIGABRT at exit) when DistributedDataParallel
            # wrappers outlive the process group, so they go first; DDP holds reference
            # cycles, hence the collection.
            self.generator, self.critic = self.g, self.d
            gc.collect()
        teardown(self.ctx)
