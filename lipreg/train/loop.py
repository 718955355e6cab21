"""The training steps of ``lipreg train``: a GAN whose critic loss is the one line

    d_loss = loss.critic(d_real, d_fake) + penalty(critic, real, fake)

(``d_fake.mean() - d_real.mean()`` for the default Wasserstein loss; see
:mod:`lipreg.losses` and ``--loss``) plus the drift term ``drift * E[D(real)^2]`` (Progressive
GAN, Karras et al. 2018; 1e-5 in the paper's reference code). Per generator step:
``n_critic`` critic steps on fresh real batches and fresh fakes, then one generator step on
the loss's generator side (``-E D(G(z))`` for WGAN), a weight average (EMA) of the generator,
and the schedules of :mod:`lipreg.train.schedules` (by default linear decay of both learning
rates to zero over ``steps`` generator steps).

:class:`Trainer` builds everything from the typed parts of a
:class:`~lipreg.train.plan.Plan` (parsed from a :class:`~lipreg.train.config.TrainConfig`);
:meth:`Trainer.critic_step`, :meth:`Trainer.generator_step` and :meth:`Trainer.iteration`
are the steps of the loop. Its checkpoint state is a :class:`~lipreg.train.resume.RunState`
it holds; the loop itself, with logging, evaluation, checkpoints and a clean stop on
SIGINT/SIGTERM, is a :class:`~lipreg.train.runner.Runner` that holds the trainer.
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
from lipreg.train.config import TrainConfig, flag
from lipreg.train.constraints import Constraint
from lipreg.train.ctransform import CTransformObjective
from lipreg.train.data import load_dataset
from lipreg.train.distributed import Context, main_first, setup, teardown, wrap
from lipreg.train.evaluate import Evaluator
from lipreg.train.metrics.weights import check_run_weights
from lipreg.train.models import build_models
from lipreg.train.penalties import build_penalty, check_norm, layers
from lipreg.train.plan import Plan
from lipreg.train.resume import RunState, seed_everything

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


class Trainer:
    """The state and the steps of a training run, built from ``config`` (a configuration, or
    its :class:`~lipreg.train.plan.Plan`) and resumed from ``resume``, a checkpoint dict from
    :func:`lipreg.train.checkpoint.load`; ``ctx``: the process group and device (default:
    :func:`lipreg.train.distributed.setup` of ``--device``). Run it with
    :class:`~lipreg.train.runner.Runner`, or step it with :meth:`iteration`.

    Batch sizes are global: each of the ``world`` processes draws ``batch_size / world`` real
    samples per critic step and ``gen_batch_size / world`` noise vectors per generator step,
    and DDP averages the gradients. The critic's update equals a single process's on the whole
    batch; the generator's batch-norm layers normalise over each process's share of the
    generator batch (no SyncBatchNorm), as in most multi-GPU GAN code.
    """

    def __init__(
        self,
        config: TrainConfig | Plan,
        resume: dict[str, Any] | None = None,
        ctx: Context | None = None,
    ) -> None:
        self.plan = plan = config if isinstance(config, Plan) else Plan.parse(config)
        self.config = c = plan.config
        check_run_weights(c)  # before anything is downloaded, written or trained
        self.loss = plan.loss
        self.schedule = plan.schedule
        self.ctx = ctx if ctx is not None else setup(c.device)
        self.device = self.ctx.device
        world = self.ctx.world
        for name in ("batch_size", "gen_batch_size"):
            if getattr(c, name) % world:
                raise ValueError(
                    f"{flag(name)} {getattr(c, name)} is the global batch and must "
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
        check_norm(plan.norm, self.data.sample_shape)
        torch.manual_seed(c.seed)  # the same initial weights on every process
        g, d, self.z_dim = build_models(c.model, self.data.sample_shape, c.width, c.z_dim)
        # before the optimiser: spectral normalisation replaces the critic's weights
        self.constraint = Constraint(plan.constraint, d, self.data.sample_shape)
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
        self.penalty = build_penalty(c, plan.norm, self.scaler_d, "func").to(self.device)
        #: the penalty inside --lazy-every's and --penalty-fraction's wrappers: it holds the
        #: lam/gamma estimates, the weight gamma that a schedule sets and the statistics
        self.inner_penalty: Any = layers(self.penalty)[-1]
        self.batches = Batches(self.data, c.batch_size // world, c.seed, self.ctx.rank, world)
        self.step = 0
        seed_everything(c.seed, self.ctx.rank)
        self.state = RunState(
            c,
            self.ctx,
            {
                "generator": self.g,
                "critic": self.d,
                "ema": self.ema,
                "opt_g": self.opt_g,
                "opt_d": self.opt_d,
                "sched_g": self.sched_g,
                "sched_d": self.sched_d,
                "scaler_g": self.scaler_g,
                "scaler_d": self.scaler_d,
                "penalty": self.penalty,
                "batches": self.batches,
                "constraint": self.constraint,
            },
        )
        if resume is not None:
            self._resume(resume)
        self.gamma_scale = self._scale_critic(calibrate=resume is None)
        self.last: dict[str, Tensor] = {}

    def _resume(self, state: dict[str, Any]) -> None:
        self.step = self.state.restore(state)
        # A new --steps moves the end of the linear decay: the rate continues on the new line
        # from this step (with --steps unchanged this is the saved rate, bit for bit).
        for opt, sched in ((self.opt_g, self.sched_g), (self.opt_d, self.sched_d)):
            for group, base in zip(opt.param_groups, sched.base_lrs, strict=True):
                group["lr"] = base * self.schedule.lr_factor(self.step)

    def save(self, path: Path) -> None:
        """Write a checkpoint of this step to ``path`` (every process must call this)."""
        self.state.save(path, self.step)

    def _scale_critic(self, calibrate: bool) -> GammaScale | None:
        """``--critic-scale gamma``: the critic computes ``D = gamma * f``
        (:func:`lipreg.scale_by_gamma`). A factor estimated from the data (``--gamma auto``) is
        needed before the first forward, so a new run estimates lam and gamma once, from up to
        :data:`CALIBRATION_SAMPLES` real samples (a resumed run has them in its checkpoint)."""
        c = self.config
        if c.critic_scale != "gamma" or not self.plan.penalty.lipschitz:
            return None
        if calibrate and c.gamma == "auto":
            gen = torch.Generator().manual_seed(c.seed)
            index = torch.randperm(len(self.data), generator=gen)[:CALIBRATION_SAMPLES]
            batches = (
                self.data.take(part).to(self.device) for part in torch.split(index, c.batch_size)
            )
            self.inner_penalty.calibrate(batches)
        return scale_by_gamma(self.d, self.inner_penalty)

    def autocast(self) -> AbstractContextManager[Any]:
        """Mixed precision for forward passes (``--precision bf16|fp16``)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ---- the steps --------------------------------------------------------------------------

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
                penalty = self.penalty(self.critic, real, fake, **self._scores(d_real, d_fake))
                d_loss = self.loss.critic(d_real, d_fake) + penalty
                gap = d_real.detach().mean() - d_fake.detach().mean()
            d_loss = d_loss + self.config.drift * d_real.float().square().mean()
        torch.autograd.backward(self.scaler_d.scale(d_loss))
        self.last = {"loss/critic": d_loss.detach(), "critic_gap": gap}

    def _scores(self, d_real: Tensor, d_fake: Tensor) -> dict[str, Tensor]:
        """The loss's scores as keyword arguments of a penalty that takes them (fd,
        approx-*: no forward passes of their own at the samples), else none."""
        return {"d_real": d_real, "d_fake": d_fake} if self.plan.penalty.takes_scores else {}

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
        if gamma is not None:  # a zero-centred penalty's weight (checked by the plan)
            self.inner_penalty.gamma = gamma

    # ---- outputs ----------------------------------------------------------------------------

    def scalars(self) -> dict[str, float]:
        """The last iteration's scalars as floats: the critic's loss and gap, the penalty's
        statistics of its last evaluating call (``penalty.stats``), the generator's loss, the
        Wasserstein estimate and the learning rate."""
        # in the log's column order: the critic's scalars, the penalty's, the generator's
        values = {k: float(v) for k, v in self.last.items() if k != "loss/generator"}
        stats = getattr(self.inner_penalty, "stats", None)
        if isinstance(stats, Stats):
            values |= stats.as_dict()
        if "loss/generator" in self.last:
            values["loss/generator"] = float(self.last["loss/generator"])
        if self.plan.estimates_wasserstein and "critic_gap" in values:
            # (E D(real) - E D(fake)) / gamma: the Wasserstein-1 distance in B for a
            # gamma-Lipschitz critic (the raw gap for penalties without a gamma)
            gap = values["critic_gap"]
            values["wasserstein"] = gap / values["gamma"] if "gamma" in values else gap
        values["lr"] = float(self.sched_g.get_last_lr()[0])
        return values

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples and metrics come from: the weight average with
        ``--ema``, else the generator itself."""
        return self.ema.module if self.ema is not None else self.g

    def evaluator(self, out: Path) -> Evaluator:
        """An :class:`~lipreg.train.evaluate.Evaluator` of this run writing under ``out``."""
        return Evaluator(self.config, self.data, self.z_dim, self.device, out)

    def close(self) -> None:
        """Leave the process group if this trainer joined it (the trainer cannot train after)."""
        if self.ctx.distributed:
            # Gloo sometimes aborts the process (SIGABRT at exit) when DistributedDataParallel
            # wrappers outlive the process group, so they go first; DDP holds reference
            # cycles, hence the collection.
            self.generator, self.critic = self.g, self.d
            gc.collect()
        teardown(self.ctx)
