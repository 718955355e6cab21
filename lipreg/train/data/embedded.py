"""Images embedded in scikit-learn (nothing is downloaded): patches of its two photographs
and its 8x8 handwritten digits.

- ``patches``: ``side`` x ``side`` RGB patches cut at uniformly random positions from the two
  photographs of ``load_sample_images`` (china.jpg and flower.jpg, 427 x 640 each), at full
  size or downscaled by 2 or 4 (block means; the source, photograph and scale, is uniform
  among those large enough for the patch), so that patches hold structure at several scales.
- ``digits``: the 1,797 8x8 digits of ``load_digits``, grey levels 0..16 mapped to
  ``x / 8 - 1``, with labels 0..9, in a fixed split: every third sample (indices 0, 3, 6,
  ...: 599 digits, 51 to 69 per class) is held out for evaluation (``digits-test``), the
  other 1,198 are the training digits (``digits``). The digits quality metric
  (:mod:`lipreg.train.metrics.digits`) trains its classifier on the training digits and
  compares samples with the held-out ones.
"""

from __future__ import annotations

from typing import Literal

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


DigitsSplit = Literal["train", "test", "all"]

DIGITS_HELD_OUT_EVERY = 3
"""Every third of scikit-learn's digits (index % 3 == 0) is held out for evaluation."""


def digits(split: DigitsSplit = "all") -> tuple[Tensor, Tensor]:
    """scikit-learn's 8x8 digits ``[N, 1, 8, 8]`` in ``[-1, 1]`` (``x / 8 - 1``) and labels
    ``[N]``: all 1,797, the 1,198 training digits or the 599 held-out ones (index % 3 == 0),
    in scikit-learn's order."""
    from sklearn.datasets import load_digits

    loaded = load_digits()
    images = torch.from_numpy(loaded.images).float().div(8.0).sub(1.0).unsqueeze(1)
    labels = torch.from_numpy(loaded.target).long()
    if split == "all":
        return images, labels
    held_out = torch.arange(labels.shape[0]) % DIGITS_HELD_OUT_EVERY == 0
    keep = held_out if split == "test" else ~held_out
    return images[keep], labels[keep]
