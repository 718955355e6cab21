"""A random differentiable augmentation for the stand-ins (written for lipreg): per sample,
with probability ``p`` each, an x-flip, a gain in [0.5, 1.5) and a Gaussian shift of
standard deviation 0.2, drawn from the global generators like ADA's ``AugmentPipe``; the
draws depend on the batch's shape only. As in the hosts, the gradient in the
un-augmented samples depends on the draw (flips and gains change it)."""

from __future__ import annotations

import torch
from torch import Tensor


def draw(x: Tensor, p: float = 0.5) -> Tensor:
    """Parameters ``[B, 3]``: flip (0 or 1), gain, shift per sample (one RNG draw each)."""
    n, device, dtype = x.shape[0], x.device, x.dtype
    on = torch.rand(n, 3, device=device) < p
    flip = on[:, 0].to(dtype)
    gain = torch.where(on[:, 1], torch.rand(n, device=device, dtype=dtype) + 0.5, 1.0)
    shift = torch.where(on[:, 2], torch.randn(n, device=device, dtype=dtype) * 0.2, 0.0)
    return torch.stack([flip, gain, shift], 1)


def apply(x: Tensor, params: Tensor) -> Tensor:
    """``x`` augmented with the parameters of :func:`draw`."""
    flip, gain, shift = (params[:, i].view(-1, *(1,) * (x.ndim - 1)) for i in range(3))
    flipped = torch.where(flip > 0, x.flip(-1), x)
    return flipped * gain + shift


def augment_pipe(x: Tensor) -> Tensor:
    """A newly drawn augmentation of ``x`` at every call (``p = 0.5``)."""
    return apply(x, draw(x))
