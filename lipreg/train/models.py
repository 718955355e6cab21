"""The WGAN-GP / BWGAN CIFAR-10 residual critic (Gulrajani et al. 2017; Adler & Lunz 2018)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class _ResBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3 (then mean-pool when downsampling) plus a shortcut: identity,
    or conv1x1 then mean-pool when downsampling. No normalisation, as in the paper's critic."""

    def __init__(self, channels: int, downsample: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.shortcut = nn.Conv2d(channels, channels, 1) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        h: Tensor = self.conv2(F.relu(self.conv1(F.relu(x))))
        if self.shortcut is None:
            return x + h
        return F.avg_pool2d(self.shortcut(x), 2) + F.avg_pool2d(h, 2)


class _OptimizedBlock(nn.Module):
    """First block: conv3x3-ReLU-conv3x3-mean-pool, shortcut mean-pool then conv1x1."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        out: Tensor = h + self.shortcut(F.avg_pool2d(x, 2))
        return out


class ResNetCritic(nn.Module):
    """The paper's CIFAR-10 critic: ``[B, C, H, W] -> [B]``.

    Optimised first block, one downsampling block, two plain blocks (``channels`` wide, no
    normalisation), ReLU, global mean pool, linear. For 32x32 inputs the blocks run at
    16x16, 8x8, 8x8, 8x8. Samples do not interact, so the batched input gradient is exact.

    Args:
        in_channels: image channels (3 for CIFAR-10).
        channels: width of every block (128 in the paper).
    """

    def __init__(self, in_channels: int = 3, channels: int = 128) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            _OptimizedBlock(in_channels, channels),
            _ResBlock(channels, downsample=True),
            _ResBlock(channels, downsample=False),
            _ResBlock(channels, downsample=False),
        )
        self.linear = nn.Linear(channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.blocks(x)).mean(dim=(2, 3))
        out: Tensor = self.linear(h).squeeze(1)
        return out
