"""Shared set-up of the figure scripts: Agg backend, output folder, one photograph, a
Gaussian blur."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch

IMG = Path(__file__).resolve().parents[1] / "img"


def parse_out(description: str) -> Path:
    """The ``--out`` folder of a figure script (default ``docs/img``), created if needed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=IMG, help="folder for the PNG (docs/img)")
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    return out


def photograph(size: int = 64) -> torch.Tensor:
    """scikit-learn's bundled photograph ``china.jpg`` as ``[1, 1, size, size]`` in [-1, 1]:
    grey levels of a centred square crop, area-downsampled."""
    from sklearn.datasets import load_sample_image

    rgb = torch.tensor(load_sample_image("china.jpg"), dtype=torch.float64) / 255
    grey = rgb.mean(dim=2)
    h, w = grey.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = grey[top : top + side, left : left + side][None, None]
    small = torch.nn.functional.adaptive_avg_pool2d(crop, size)
    return 2 * small - 1


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``x`` ``[N, 1, H, W]`` with standard deviation ``sigma`` pixels."""
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :])[None, None]
    padded = torch.nn.functional.pad(x, (radius,) * 4, mode="replicate")
    return torch.nn.functional.conv2d(padded, kernel)
