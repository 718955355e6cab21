"""R1 from an input gradient that an adapter took itself (the host computes the critic's
output, or the adapter needs the per-sample values the host reports)."""

from __future__ import annotations

import torch
from torch import Tensor

from lipreg import BanachR1


def r1_of_gradient(penalty: BanachR1, gradient: Tensor, at: Tensor) -> tuple[Tensor, Tensor]:
    """``(R1, squared)``: ``penalty``'s ``(gamma / 2) E ||g_b||_{B*}^2`` of the input gradient
    ``gradient`` ``[B, ...]`` taken at the points ``at`` (the base points of local norms),
    with its statistics recorded in ``penalty.stats`` and its finiteness checked as a call of
    the penalty would, and the per-sample ``||g_b||_{B*}^2`` ``[B]`` (float32 at least)."""
    with torch.autocast(at.device.type, enabled=False):
        squared = penalty.norm.dual_squared(gradient, at=at.detach())
    return penalty._from_squared_duals(squared), squared
