"""Evaluation of a run on rank 0: sample grids, metrics and the end-of-run figures.

Samples come from the generator's weight average (or the generator, without ``--ema``) in
eval mode, from fixed noise; the reference real samples are a fixed random subset of the
data. Everything random here uses its own generators and the global random state is
restored afterwards, so evaluating never changes the course of training (a resumed run
matches an uninterrupted one whatever the evaluation schedule).

- toy data: the exact Wasserstein-1 distance between ``eval_samples`` generated and real
  points (an assignment problem) and, at the end, the critic's value surface with both sets;
- images: a PNG grid of 64 samples, the sliced Wasserstein distance over a Laplacian pyramid
  and, with ``--inception-weights``, IS, FID and KID;
- at the end, PNG plots of every scalar in ``scalars.jsonl``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lipreg._modes import eval_mode
from lipreg.train import metrics, plots
from lipreg.train.checkpoint import rng_state, set_rng_state

if TYPE_CHECKING:
    from lipreg.train.loop import Trainer


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Python's and torch's random states are restored on exit (the metrics draw from their
    own NumPy generators)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


class Evaluator:
    """Evaluations of ``trainer``'s run, written under ``out``."""

    def __init__(self, trainer: Trainer, out: Path) -> None:
        self.trainer = trainer
        self.out = out
        c = trainer.config
        gen = torch.Generator().manual_seed(c.seed)
        n = min(c.eval_samples, len(trainer.data))
        self.noise = torch.randn(n, trainer.z_dim, generator=gen)
        index = torch.randperm(len(trainer.data), generator=gen)[:n]
        self.real = trainer.data.take(index)
        self.toy = trainer.data.is_toy
        reason = None if self.toy else metrics.inception_unavailable(c.inception_weights)
        self.inception = not self.toy and reason is None
        self.note = reason or ""
        self.last_grid: Path | None = None

    def generate(self) -> Tensor:
        """Samples ``[eval_samples, ...]`` on the CPU from the fixed noise."""
        t = self.trainer
        model = t.ema.module if t.ema is not None else t.g
        out = []
        with preserved_rng(), torch.no_grad(), eval_mode(model):
            for z in torch.split(self.noise, t.config.gen_batch_size):
                out.append(model(z.to(t.device)).float().cpu())
        return torch.cat(out)

    def evaluate(self, step: int) -> dict[str, float]:
        """Metrics at ``step`` (as ``metric/...`` scalars); writes the image sample grid."""
        with preserved_rng():
            fake = self.generate()
            if self.toy:
                return {"metric/w1": metrics.wasserstein1(fake, self.real)}
            self.last_grid = plots.save_image_grid(
                fake[:64], self.out / "samples" / f"step_{step:06d}.png"
            )
            c = self.trainer.config
            values = {"metric/swd": metrics.swd(self.real, fake, seed=c.seed).mean}
            if self.inception:
                assert c.inception_weights is not None  # else inception_unavailable says why
                values |= metrics.inception_metrics(
                    self.real, fake, c.inception_weights, seed=c.seed, device=self.trainer.device
                )
            return values

    def finish(self, step: int, scalars: Path) -> list[Path]:
        """End-of-run figures: the critic surface (toy data) and the scalar plots."""
        files = [] if self.last_grid is None else [self.last_grid]
        if self.toy:
            path = self.out / "critic_surface.png"
            with eval_mode(self.trainer.d):
                plots.plot_critic_surface(
                    self.trainer.d, self.real, self.generate(), path, title=f"step {step}"
                )
            files.append(path)
        files += plots.plot_scalars(scalars, self.out / "plots")
        return files
