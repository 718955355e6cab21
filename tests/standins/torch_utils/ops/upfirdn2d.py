"""``filter2d(x, f)``: a separable FIR filter, zero padding, output shaped like ``x``."""

from __future__ import annotations

import torch
from torch import Tensor


def filter2d(x: Tensor, f: Tensor) -> Tensor:
    k = f.to(x.dtype)
    taps = k.numel()
    kernel = torch.outer(k, k).expand(x.shape[1], 1, taps, taps)
    return torch.nn.functional.conv2d(x, kernel, padding=taps // 2, groups=x.shape[1])
