"""Input checks and conversions shared by the metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lipreg._validation import check_batch


def check_points(x: object, name: str) -> Tensor:
    """``x`` as a finite float tensor ``[N, D]``."""
    x = check_batch(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a matrix [N, D] of N samples (features, points), got shape "
            f"{list(x.shape)}; flatten samples with {name}.flatten(1)"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_pair(x: object, y: object, names: tuple[str, str], same_n: bool) -> tuple[Tensor, Tensor]:
    a, b = check_points(x, names[0]), check_points(y, names[1])
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension, got {a.shape[1]} and "
            f"{b.shape[1]}"
        )
    if same_n and a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must hold equally many samples (equal-size empirical "
            f"measures), got {a.shape[0]} and {b.shape[0]}; draw as many of each"
        )
    return a, b


def float64(x: Tensor) -> np.ndarray[Any, np.dtype[np.float64]]:
    return x.detach().to("cpu", torch.float64).numpy()


def check_images(x: object, name: str, min_side: int = 1) -> Tensor:
    """``x`` as finite floating-point images ``[N, C, H, W]`` with ``H, W >= min_side``."""
    x = check_batch(x, name)
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be images [N, C, H, W], got shape {list(x.shape)}"
            + (f"; add the channel axis with {name}.unsqueeze(1)" if x.ndim == 3 else "")
        )
    if min(x.shape[-2:]) < min_side:
        raise ValueError(
            f"{name} must be at least {min_side}x{min_side} pixels, got {list(x.shape[-2:])}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x
