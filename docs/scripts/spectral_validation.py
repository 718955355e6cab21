"""docs/img/spectral_validation.png and the validation table of the spectral metric; with
``--runs``, docs/img/spectral_main_job.png and the table of trained runs.

Scores sets whose spectra are known against the 599 held-out digits at 16x16 (the main job's
resolution, bicubic upsampling as ``--image-size 16``): the 1,198 training digits and two
halves of them (real); the training digits with white Gaussian noise, Gaussian blur, an
additive checkerboard ``a (-1)^(i + j)`` (a transposed convolution's artefact) and
nearest-neighbour upsampling (``x + t (up(down(x)) - x)``, ``down`` 2x2 block means, ``up``
nearest-neighbour 2x) at increasing strengths; and two halves of the photo patches (32x32
RGB) as real data of another kind. Prints the Markdown table shown on docs/metrics.md and
draws each family's spectra and log ratios.

``--runs DIR ...`` scores the final weight average of trained runs (their ``checkpoint.pt``)
on the evaluator's 1,000 fixed noise vectors, prints their quick metrics and draws their
spectra against the held-out digits, e.g. for the main job on the papers' schedule (the
README's until December 2026) and WGAN-GP::

    lipreg train --preset bwgan-digits-paper --out runs/bwgan-digits
    lipreg train --preset bwgan-digits-paper --norm l2 --lam 10 --gamma 1 --out runs/wgan-gp
    python docs/scripts/spectral_validation.py --runs runs/bwgan-digits runs/wgan-gp

    python docs/scripts/spectral_validation.py [--out docs/img] [--runs DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import IMG, blur  # first: selects matplotlib's Agg backend
from matplotlib import pyplot as plt
from matplotlib.axes import Axes

from lipreg.train import checkpoint
from lipreg.train.config import TrainConfig
from lipreg.train.data import load_dataset
from lipreg.train.data.base import resize
from lipreg.train.data.embedded import digits
from lipreg.train.metrics.spectral import SpectralQuality, SpectralScores
from lipreg.train.plots import image_grid

SIDE = 16
NOISE = (0.01, 0.03, 0.1, 0.3)  # standard deviation; pixel values span [-1, 1]
BLUR = (0.5, 1.0, 1.5, 2.0)  # Gaussian sigma, pixels of the 16x16 image
BOARD = (0.01, 0.03, 0.1)  # checkerboard amplitude
UPSAMPLE = (0.25, 0.5, 1.0)  # share t of the nearest-neighbour upsampled image


def families(train: torch.Tensor) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """Corrupted training digits ``[N, 1, 16, 16]`` per family, by increasing strength."""
    gen = torch.Generator().manual_seed(0)
    board = (-1.0) ** (torch.arange(SIDE)[:, None] + torch.arange(SIDE)[None, :])
    blocky = F.interpolate(F.avg_pool2d(train, 2), scale_factor=2, mode="nearest")
    return {
        "white noise": [
            (f"sigma {s:g}", train + s * torch.randn(train.shape, generator=gen)) for s in NOISE
        ],
        "blur": [(f"sigma {s:g} px", blur(train, s)) for s in BLUR],
        "checkerboard": [(f"a = {a:g}", train + a * board) for a in BOARD],
        "nearest-neighbour 2x upsampling": [
            (f"t = {t:g}", train + t * (blocky - train)) for t in UPSAMPLE
        ],
    }


def print_row(name: str, strength: str, s: SpectralScores) -> None:
    """A table row; real sets (no strength) have no direction, only noise."""
    direction = "" if not strength else "excess" if s.hf_excess > 0 else "deficit"
    print(
        f"| {name} | {strength} | {s.distance:.2f} | {s.hf_distance:.2f} | "
        f"{s.hf_excess:+.2f} | {direction} |"
    )


def draw(
    axes: tuple[Axes, Axes], real: SpectralScores, rows: list[tuple[str, SpectralScores]]
) -> None:
    """The spectra (top) and the log ratios (bottom) of ``rows`` against ``real``'s reference."""
    top, bottom = axes
    r = real.radius.numpy()
    top.semilogy(r, real.real.numpy(), "k-", linewidth=2, label="held-out digits")
    colours = plt.get_cmap("viridis")
    for i, (label, s) in enumerate(rows):
        colour = colours(i / max(1, len(rows) - 1) * 0.85)
        top.semilogy(r, s.fake.numpy() + s.floor, "o-", color=colour, markersize=3, label=label)
        bottom.plot(r, s.log_ratio.numpy(), "o-", color=colour, markersize=3, label=label)
    top.axhline(real.floor, color="0.6", linestyle=":", linewidth=1, label="noise floor")
    bottom.axhline(0, color="k", linewidth=1)
    for ax in axes:
        ax.axvspan(0.25, float(r[-1]) + 0.02, color="0.92", zorder=0)
        ax.set_xlabel("frequency radius (cycles per pixel)")
        ax.grid(alpha=0.3)
    top.set_ylabel("power per DFT coefficient")
    bottom.set_ylabel("10 log10(S_g / S_r) (dB)")
    top.legend(fontsize="x-small")


def validation(out: Path) -> None:
    train = resize(digits("train")[0], SIDE)
    quality = SpectralQuality(resize(digits("test")[0], SIDE))
    print(
        "| set | strength | spectral distance (dB) | HF distance (dB) | HF excess (dB) "
        "| direction |"
    )
    print("|---|---|---:|---:|---:|---|")
    real = quality(train)
    print_row("training digits (real)", "", real)
    print_row("training digits, two halves (real)", "", SpectralQuality(train[::2])(train[1::2]))
    patches = load_dataset("patches", size=2000).take(torch.arange(2000))
    halves = SpectralQuality(patches[::2])(patches[1::2])
    print_row("photo patches 32x32 RGB, two halves (real)", "", halves)
    fams = families(train)
    fig, axes = plt.subplots(2, len(fams), figsize=(4.2 * len(fams), 7), constrained_layout=True)
    for column, (family, sets) in enumerate(fams.items()):
        rows = []
        for strength, x in sets:
            s = quality(x)
            print_row(family, strength, s)
            rows.append((f"{strength}: {s.hf_excess:+.1f} dB", s))
        draw((axes[0, column], axes[1, column]), real, rows)
        axes[0, column].set_title(family)
    fig.suptitle(
        "spectra of corrupted training digits against the held-out digits (16x16); "
        "grey band: high frequencies; legend: HF excess"
    )
    fig.savefig(out / "spectral_validation.png", dpi=100)


def runs(directories: list[Path], out: Path) -> None:
    """Scores and draws the final weight average of each run in ``directories``, with the
    first 32 samples of each beside 32 held-out digits."""
    from lipreg.train.loop import Trainer

    print("| run | digits FID | spectral distance (dB) | HF distance (dB) | HF excess (dB) "
          "| power ratio at radius 1/2 | in the top bin |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    grids = [("held-out digits", resize(digits("test")[0][:32], SIDE))]
    for run in directories:
        state = checkpoint.load(run / "checkpoint.pt")
        trainer = Trainer(TrainConfig.from_saved(state["config"]), state)
        evaluator = trainer.evaluator(run)
        fake = evaluator.generate(trainer.sampler)
        assert evaluator.spectral is not None
        s = evaluator.spectral(fake)
        fid = evaluator.scores(fake)["metric/digits_fid"]
        ratio = s.fake / s.real
        nyquist = int(torch.argmin((s.radius - 0.5).abs()))
        print(
            f"| {run.name} | {fid:.1f} | {s.distance:.2f} | {s.hf_distance:.2f} | "
            f"{s.hf_excess:+.2f} | {float(ratio[nyquist]):.1f}x | {float(ratio[-1]):.1f}x |"
        )
        rows.append((f"{run.name}: {s.hf_excess:+.1f} dB", s))
        grids.append(
            (f"{run.name}: digits FID {fid:.1f}, HF excess {s.hf_excess:+.1f} dB", fake[:32])
        )
        trainer.close()
    fig = plt.figure(figsize=(4 * len(grids), 6.8), constrained_layout=True)
    top, bottom = fig.subfigures(2, 1, height_ratios=(4, 2.6))
    axes = top.subplots(1, 2)
    draw((axes[0], axes[1]), rows[0][1], rows)
    axes[1].legend(fontsize="small")
    top.suptitle("1,000 samples of each run's weight average against the held-out digits")
    for ax, (title, images) in zip(bottom.subplots(1, len(grids)), grids, strict=True):
        ax.imshow(image_grid(images, nrow=8)[:, :, 0].numpy(), cmap="gray", interpolation="nearest")
        ax.set_title(title, fontsize="small")
        ax.axis("off")
    fig.savefig(out / "spectral_main_job.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=IMG, help="folder for the PNGs (docs/img)")
    parser.add_argument("--runs", type=Path, nargs="+", help="run directories to score")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.runs:
        runs(args.runs, args.out)
    else:
        validation(args.out)


if __name__ == "__main__":
    main()
