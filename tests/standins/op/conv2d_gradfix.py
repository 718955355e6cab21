"""Stand-in for rosinality's ``op.conv2d_gradfix.no_weight_gradients()``: the host's context
manager is StudioGAN's (both come from NVlabs' StyleGAN2-ADA), so the stand-in is shared and
counts its entries in ``utils.style_ops.conv2d_gradfix.entered``."""

from __future__ import annotations

from utils.style_ops.conv2d_gradfix import no_weight_gradients

__all__ = ["no_weight_gradients"]
