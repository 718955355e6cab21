"""Images embedded in scikit-learn (nothing is downloaded): patches of its two photographs
and its 8x8 handwritten digits.

- ``patches``: ``side`` x ``side`` RGB patches cut at uniformly random positions from the two
  photographs of ``load_sample_images`` (china.jpg and flower.jpg, 427 x 640 each), at full
  size or downscaled by 2 or 4 (block means; the source, photograph and scale, is uniform
  among those large enough for the patch), so that patches hold structure at several scales.
- ``digits``: the 1,797 8x8 digits of ``load_digits``, grey levels 0..16 mapped to
  ``x / 8 - 1``, with labels 0..9.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PHOTO_SIDE = 427  # both of scikit-learn's photographs are 427 x 640


PATCH_SCALES = (1, 2, 4)
"""Downscaling factors of the photographs that ``patches`` are cut from."""


def _photo_sources(side: int) -> list[Tensor]:
    """The photographs at each of :data:`PATCH_SCALES` (``k x k`` block means, rounded),
    uint8 ``[H, W, 3]``, those at least ``side`` pixels high and wide."""
    import numpy as np
    from sklearn.datasets import load_sample_images

    sources = []
    for photo in load_sample_images().images:
        full = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float()
        for k in PATCH_SCALES:
            small = F.avg_pool2d(full, k).round().to(torch.uint8)[0].permute(1, 2, 0)
            if min(small.shape[:2]) >= side:
                sources.append(small)
    return sources


def photo_patches(n: int, side: int, gen: torch.Generator) -> Tensor:
    """``[n, 3, side, side]`` uint8 patches: a source of :func:`_photo_sources` uniformly
    (photograph and scale), then top and left uniformly within it."""
    sources = _photo_sources(side)
    which = torch.randint(0, len(sources), (n,), generator=gen)
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    patches = torch.empty(n, side, side, 3, dtype=torch.uint8)
    offsets = torch.arange(side)
    for k, src in enumerate(sources):
        mask = which == k
        positions = u[mask] * torch.tensor([src.shape[0] - side + 1, src.shape[1] - side + 1])
        top, left = positions.long().unbind(1)
        rows = (top[:, None] + offsets)[:, :, None]
        cols = (left[:, None] + offsets)[:, None, :]
        patches[mask] = src[rows, cols]
    return patches.permute(0, 3, 1, 2).contiguous()


def digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float().div(8.0).sub(1.0).unsqueeze(1)
    return images, torch.from_numpy(digits.target).long()
