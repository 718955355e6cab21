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
import os
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from lipreg import Stats
from lipreg.scaling import GammaScale, scale_by_gamma
from lipreg.train.batches import Batches
from lipreg.train.config import TrainConfig, _option
from lipreg.train.constraints import Constraint
from lipreg.train.ctransform import CTransformObjective
from lipreg.train.data import load_dataset
from lipreg.train.distributed import (
    Context,
    main_first,
    setup,
    teardown,
    wrap,
)
from lipreg.train.metrics.weights import check_run_weights
from lipreg.train.models import build_models
from lipreg.train.objectives import (
    check_method,
    estimates_wasserstein,
    objective,
    resolved,
    warn_pairing,
)
from lipreg.train.penalties import PENALTIES, build_penalty, check_norm
from lipreg.train.resume import Resumable, seed_everything
from lipreg.train.running import Running
from lipreg.train.schedules import Schedule, zero_centred

CALIBRATION_SAMPLES = 10_000
"""Real samples behind lam and gamma when they are estimated before training."""

_AMP_DTYPES = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


class Trainer(Running, Resumable):
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
        check_run_weights(c)  # before anything is downloaded, written or trained
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
        seed_everything(c.seed, self.ctx.rank)
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

    # ---- outputs ----------------------------------------------------------------------------

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

    def close(self) -> None:
        """Leave the process group if this trainer joined it (the trainer cannot train after)."""
        if self.ctx.distributed:
            # Gloo sometimes aborts the process (SIGABRT at exit) when DistributedDataParallel
            # wrappers outlive the process group, so they go first; DDP holds reference
            # cycles, hence the collection.
            self.generator, self.critic = self.g, self.d
            gc.collect()
        teardown(self.ctx)
