"""Evaluation of a run on rank 0: sample grids, metrics and the end-of-run figures.

Samples come from the generator's weight average (or the generator, without ``--ema``) in
eval mode, from fixed noise; the reference real samples are a fixed random subset of the
data. Everything random here uses its own generators and the global random state is
restored afterwards, so evaluating never changes the course of training (a resumed run
matches an uninterrupted one whatever the evaluation schedule).

- toy data: the exact Wasserstein-1 distance between ``eval_samples`` generated and real
  points (an assignment problem) and, at the end, the critic's value surface with both sets;
- images: a PNG grid of 64 samples, the sliced Wasserstein distance over a Laplacian pyramid
  and, where torch-fidelity is installed (unless ``--no-inception``), IS, FID and KID;
- digits (``--data digits``): instead of the sliced Wasserstein distance and the Inception
  metrics, the digits quality metric against the held-out digits
  (:mod:`lipreg.train.metrics.digits`: digits FID, classes reached, class KL, confidence);
- Fashion-MNIST (``--data fashion-mnist``): likewise, the Fashion-MNIST quality metric
  against the test images (:mod:`lipreg.train.metrics.fashion`, at full resolution);
- every image data set: the spectral metric (:mod:`lipreg.train.metrics.spectral`: the
  radially averaged power spectrum against the held-out split's, or against the real subset
  where the data set has none, at the training resolution);
- at the end, PNG plots of every scalar in ``scalars.jsonl``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from lipreg._modes import eval_mode
from lipreg.train import metrics, plots
from lipreg.train.checkpoint import rng_state, set_rng_state
from lipreg.train.config import TrainConfig
from lipreg.train.data import DATASETS, TrainingData, load_dataset
from lipreg.train.metrics.classifier import ClassifierQuality, ClassifierScores
from lipreg.train.metrics.digits import DigitsQuality
from lipreg.train.metrics.fashion import FashionQuality
from lipreg.train.metrics.spectral import SpectralQuality


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Python's and torch's random states are restored on exit (the metrics draw from their
    own NumPy generators)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


GRID_SIDE = 64
"""Pixels per sample in the sample grids at least (small images are enlarged)."""


class Evaluator:
    """Evaluations of a run of ``config`` on ``data`` whose generator takes noise
    ``[B, z_dim]`` on ``device``, written under ``out``."""

    def __init__(
        self,
        config: TrainConfig,
        data: TrainingData,
        z_dim: int,
        device: torch.device,
        out: Path,
    ) -> None:
        self.config = c = config
        self.device = device
        self.out = out
        gen = torch.Generator().manual_seed(c.seed)
        n = min(c.eval_samples, len(data))
        self.noise = torch.randn(n, z_dim, generator=gen)
        index = torch.randperm(len(data), generator=gen)[:n]
        self.real = data.take(index)
        self.toy = data.is_toy
        self.quality = classifier_quality(data.name, c.data_root, device)
        self.spectral = None if self.toy else SpectralQuality(self.reference_images(data))
        # Inception features describe natural colour images; digits and Fashion-MNIST have
        # their own metric.
        self.weights, self.note = (
            (None, "")
            if self.toy or self.quality is not None or not c.inception
            else metrics.prepare_inception(c.inception_weights, progress=c.progress)
        )
        self.last_grid: Path | None = None

    def reference_images(self, data: TrainingData) -> Tensor:
        """The real images the spectral metric compares with: ``data``'s held-out split
        (:attr:`~lipreg.train.data.DatasetSpec.held_out`) resized as the run resizes its data,
        else the real subset :attr:`real`."""
        name = DATASETS[data.name].held_out
        if name is None:
            return self.real
        c = self.config
        held = load_dataset(name, root=c.data_root, image_size=c.image_size, seed=c.seed)
        return held.take(torch.arange(len(held)))

    def generate(self, generator: nn.Module) -> Tensor:
        """Samples ``[eval_samples, ...]`` of ``generator`` (in eval mode) on the CPU from the
        fixed noise."""
        out = []
        with preserved_rng(), torch.no_grad(), eval_mode(generator):
            for z in torch.split(self.noise, self.config.gen_batch_size):
                out.append(generator(z.to(self.device)).float().cpu())
        return torch.cat(out)

    def scores(self, fake: Tensor) -> dict[str, float]:
        """The quick quality metrics of samples ``fake`` (``metric/...`` scalars): the exact
        W1 on toy data; the classifier metric (digits, Fashion-MNIST) and the spectral metric
        on images that have one; the spectral metric alone on other images (without the
        sliced Wasserstein distance and the Inception metrics, which :meth:`evaluate` adds)."""
        if self.toy:
            return {"metric/w1": metrics.wasserstein1(fake, self.real)}
        assert self.spectral is not None  # every image data set has one
        values = {} if self.quality is None else self.quality(fake).scalars()
        return values | self.spectral(fake).scalars()

    def evaluate(self, step: int, generator: nn.Module) -> dict[str, float]:
        """Metrics of ``generator`` at ``step`` (as ``metric/...`` scalars); writes the image
        sample grid."""
        with preserved_rng():
            fake = self.generate(generator)
            if self.toy:
                return self.scores(fake)
            self.last_grid = plots.save_image_grid(
                fake[:64],
                self.out / "samples" / f"step_{step:06d}.png",
                scale=max(1, GRID_SIDE // fake.shape[-1]),
            )
            c = self.config
            values = self.scores(fake)
            if self.quality is None:  # a classifier's metric reads more plainly than the SWD
                values = {"metric/swd": metrics.swd(self.real, fake, seed=c.seed).mean} | values
            if self.weights is not None:
                values |= metrics.inception_metrics(
                    self.real, fake, self.weights, seed=c.seed, device=self.device
                )
            return values

    def finish(
        self, step: int, scalars: Path, generator: nn.Module, critic: nn.Module
    ) -> list[Path]:
        """End-of-run figures: the critic's value surface with ``generator``'s samples (toy
        data) and the plots of the ``scalars`` file."""
        files = [] if self.last_grid is None else [self.last_grid]
        if self.toy:
            path = self.out / "critic_surface.png"
            with eval_mode(critic):
                plots.plot_critic_surface(
                    critic, self.real, self.generate(generator), path, title=f"step {step}"
                )
            files.append(path)
        files += plots.plot_scalars(scalars, self.out / "plots")
        return files


def classifier_quality(
    data: str, root: str | Path | None, device: torch.device
) -> ClassifierQuality[ClassifierScores] | None:
    """The classifier-based quality metric of the data set named ``data`` (its test files
    under ``root``, as the data's), or ``None`` when it has none."""
    if data.startswith("digits"):
        return DigitsQuality(device=device)
    if data.startswith("fashion-mnist"):
        return FashionQuality(root=root, device=device)
    return None


# How the end of a run states its metrics: (key, label, format), in this order.
_DESCRIBED = (
    ("metric/digits_fid", "digits FID", "{:.1f}"),
    ("metric/digits_classes", "classes reached", "{:.0f} of 10"),
    ("metric/digits_kl", "class KL", "{:.3f}"),
    ("metric/digits_confidence", "confidence", "{:.3f}"),
    ("metric/fashion_fid", "Fashion-MNIST FID", "{:.1f}"),
    ("metric/fashion_classes", "classes reached", "{:.0f} of 10"),
    ("metric/fashion_kl", "class KL", "{:.3f}"),
    ("metric/fashion_confidence", "confidence", "{:.3f}"),
    ("metric/spectral_distance", "spectral distance", "{:.1f} dB"),
    ("metric/spectral_hf_excess", "high frequencies", "{:+.1f} dB"),
    ("metric/w1", "W1", "{:.4g}"),
    ("metric/swd", "SWD x1e3", "{:.1f}"),
    ("metric/is", "IS", "{:.2f}"),
    ("metric/fid", "FID", "{:.2f}"),
    ("metric/kid", "KID", "{:.4f}"),
)


# What real images score, for the FIDs of the classifier metrics (docs/metrics.md).
_REAL = {
    "metric/digits_fid": "real digits score about 2",
    "metric/fashion_fid": "real images score about 6 at 500 samples, 3 at 1,000",
}


def describe_metrics(metrics: dict[str, float]) -> str:
    """One line stating an evaluation's ``metrics`` (``metric/...`` scalars), e.g.
    ``"digits FID 14.2 (held-out real digits: about 2), classes reached 10 of 10, ..."``."""
    parts = []
    for key, label, form in _DESCRIBED:
        if key in metrics:
            text = f"{label} {form.format(metrics[key])}"
            if key in _REAL:
                text += f" (lower is better; {_REAL[key]})"
            elif key == "metric/spectral_hf_excess" and round(metrics[key], 1) != 0:
                text += " (excess)" if metrics[key] > 0 else " (deficit)"
            parts.append(text)
    return ", ".join(parts) if parts else "no metrics"
