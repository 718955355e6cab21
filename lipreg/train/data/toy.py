"""WGAN-GP's toy 2-D data sets (Gulrajani et al. 2017, ``gan_toy.py``): same scales, noise
and divisors, drawn once from a seed instead of fresh per batch.

- ``8gaussians``: centres ``2 (cos(k pi/4), sin(k pi/4))``, ``k`` uniform in ``0..7``, plus
  ``N(0, 0.02^2)`` noise per coordinate, all divided by 1.414.
- ``25gaussians``: centres ``(2i, 2j)``, ``i, j in -2..2``, equally many samples per centre
  (then shuffled), plus ``N(0, 0.05^2)`` noise, all divided by 2.828.
- ``swissroll``: ``sklearn.datasets.make_swiss_roll(noise=0.25)``, coordinates 0 and 2,
  divided by 7.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def _eight_gaussians(n: int, seed: int, gen: torch.Generator) -> Tensor:
    angles = torch.randint(0, 8, (n,), generator=gen, dtype=torch.float64) * (math.pi / 4)
    centres = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    noise = 0.02 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return ((centres + noise) / 1.414).float()


def _twenty_five_gaussians(n: int, seed: int, gen: torch.Generator) -> Tensor:
    # Balanced centres as in the reference's fixed data set, shuffled.
    k = torch.randperm(n, generator=gen) % 25
    centres = 2.0 * torch.stack([k // 5 - 2, k % 5 - 2], dim=1).double()
    noise = 0.05 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return ((centres + noise) / 2.828).float()


def _swiss_roll(n: int, seed: int, gen: torch.Generator) -> Tensor:
    from sklearn.datasets import make_swiss_roll

    points, _ = make_swiss_roll(n_samples=n, noise=0.25, random_state=seed)
    return (torch.from_numpy(points[:, [0, 2]]) / 7.5).float()


TOY: dict[str, Callable[[int, int, torch.Generator], Tensor]] = {
    "8gaussians": _eight_gaussians,
    "25gaussians": _twenty_five_gaussians,
    "swissroll": _swiss_roll,
}
