"""The trainer's networks: the WGAN-GP / BWGAN CIFAR-10 ResNet pair (Gulrajani et al. 2017;
Adler & Lunz 2018), a DCGAN pair for other image sizes (Radford et al. 2016) and the MLPs of
the WGAN-GP toy experiments.

Generators map noise ``[B, z_dim]`` to samples; critics map samples to scores ``[B]``. No
critic normalises over the batch, so its samples do not interact and the batched input
gradient of a penalty is exact.
"""

from __future__ import annotations

import torch
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


def _upsamplings(image_size: int, name: str) -> tuple[int, int]:
    """``(b, k)`` with ``image_size == b * 2**k``, ``b`` in ``4..7``, ``k >= 1``: generators
    grow from ``b x b`` by doubling (``b = 4`` for 8, 16, 32, 64, ...; ``b = 7`` for 28, the
    MNIST DCGAN's 7x7 base). The decomposition is unique: ``[4, 7] * 2**k`` are disjoint."""
    k = max(image_size, 1).bit_length() - 3  # 2**(k+2) <= image_size < 2**(k+3)
    base = image_size >> max(k, 0)
    if k < 1 or base << k != image_size:
        raise ValueError(
            f"{name} builds images of side b * 2**k with b in 4..7 and k >= 1 (8, 10, 12, 14, "
            f"16, 20, 24, 28, 32, ...), got image_size={image_size}; resize the data to such a "
            "side (--image-size)"
        )
    return base, k


class _UpBlock(nn.Module):
    """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 plus a shortcut upsample-conv1x1: WGAN-GP's
    generator block (its ``UpsampleConv`` is nearest-neighbour upsampling then a conv)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.shortcut = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        out: Tensor = self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest")) + h
        return out


class ResNetGenerator(nn.Module):
    """The paper's CIFAR-10 generator: ``[B, z_dim] -> [B, out_channels, size, size]`` in
    ``(-1, 1)``.

    Dense layer to ``b x b x channels``, upsampling residual blocks with batch norm (three for
    ``image_size=32``: 8x8, 16x16, 32x32), BN, ReLU, 3x3 conv to ``out_channels``, tanh;
    ``image_size = b * 2**k`` with ``b`` in ``4..7`` (``b = 4`` in the paper).

    Args:
        z_dim: noise dimension (128 in the paper).
        channels: width of every block (128 in the paper).
        out_channels: image channels.
        image_size: side ``b * 2**k`` (``b`` in ``4..7``, ``k >= 1``) of the generated images.
    """

    def __init__(
        self, z_dim: int = 128, channels: int = 128, out_channels: int = 3, image_size: int = 32
    ) -> None:
        super().__init__()
        self.base, blocks = _upsamplings(image_size, "ResNetGenerator")
        self.channels = channels
        self.linear = nn.Linear(z_dim, self.base * self.base * channels)
        self.blocks = nn.Sequential(*(_UpBlock(channels) for _ in range(blocks)))
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.linear(z).view(-1, self.channels, self.base, self.base)
        h = F.relu(self.bn(self.blocks(h)))
        return torch.tanh(self.conv(h))


class DCGANGenerator(nn.Module):
    """DCGAN generator: ``[B, z_dim] -> [B, out_channels, size, size]`` in ``(-1, 1)``.

    Dense layer to ``b x b x (channels * 2**(k-1))`` with BN-ReLU, then ``k - 1`` transposed
    4x4 stride-2 convolutions halving the width (BN-ReLU after each) and a last one to
    ``out_channels``, tanh; ``image_size = b * 2**k`` with ``b`` in ``4..7`` (``b = 4`` for
    32x32 as in DCGAN, ``b = 7`` for 28x28 as in MNIST DCGANs).

    Args:
        z_dim: noise dimension.
        channels: width of the last hidden layer (64 in DCGAN).
        out_channels: image channels.
        image_size: side ``b * 2**k`` (``b`` in ``4..7``, ``k >= 1``) of the generated images.
    """

    def __init__(
        self, z_dim: int = 128, channels: int = 64, out_channels: int = 3, image_size: int = 32
    ) -> None:
        super().__init__()
        self.base, k = _upsamplings(image_size, "DCGANGenerator")
        self.start = channels * 2 ** (k - 1)
        units = self.base * self.base * self.start
        self.linear = nn.Sequential(nn.Linear(z_dim, units), nn.BatchNorm1d(units), nn.ReLU())
        layers: list[nn.Module] = []
        width = self.start
        for _ in range(k - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, out_channels, 4, stride=2, padding=1), nn.Tanh()]
        self.convs = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.convs(self.linear(z).view(-1, self.start, self.base, self.base))
        return out


class DCGANCritic(nn.Module):
    """DCGAN critic without batch norm (a gradient penalty replaces it; Gulrajani et al.
    2017): ``[B, in_channels, size, size] -> [B]``.

    ``k`` 4x4 stride-2 convolutions doubling the width from ``channels``, each followed by
    LeakyReLU(0.2), down to ``b x b``, then a dense layer to one score;
    ``image_size = b * 2**k`` with ``b`` in ``4..7`` (28x28 goes down to 7x7).

    Args:
        in_channels: image channels.
        channels: width of the first convolution (64 in DCGAN).
        image_size: side ``b * 2**k`` (``b`` in ``4..7``, ``k >= 1``) of the images.
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, image_size: int = 32) -> None:
        super().__init__()
        base, k = _upsamplings(image_size, "DCGANCritic")
        layers: list[nn.Module] = []
        width_in, width = in_channels, channels
        for _ in range(k):
            layers += [nn.Conv2d(width_in, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            width_in, width = width, width * 2
        self.convs = nn.Sequential(*layers)
        self.linear = nn.Linear(base * base * width_in, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.linear(self.convs(x).flatten(1)).squeeze(1)
        return out


def _mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """The WGAN-GP toy generator: ``[B, z_dim] -> [B, dim]``, ``depth`` hidden ReLU layers of
    ``width`` units (3 x 512 in WGAN-GP), linear output.

    Args:
        z_dim: noise dimension (2 in WGAN-GP's toy experiments).
        width: hidden units per layer.
        depth: hidden layers.
        dim: dimension of the samples.
    """

    def __init__(self, z_dim: int = 2, width: int = 512, depth: int = 3, dim: int = 2) -> None:
        super().__init__()
        self.net = _mlp(z_dim, width, depth, dim)

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out


class MLPCritic(nn.Module):
    """The WGAN-GP toy critic: ``[B, dim] -> [B]``, ``depth`` hidden ReLU layers of ``width``
    units (3 x 512 in WGAN-GP), linear output.

    Args:
        dim: dimension of the samples.
        width: hidden units per layer.
        depth: hidden layers.
    """

    def __init__(self, dim: int = 2, width: int = 512, depth: int = 3) -> None:
        super().__init__()
        self.net = _mlp(dim, width, depth, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x).squeeze(1)
        return out


def build_models(
    model: str, sample_shape: tuple[int, ...], width: int | None, z_dim: int | None
) -> tuple[nn.Module, nn.Module, int]:
    """``(generator, critic, z_dim)`` for samples of ``sample_shape``.

    ``model="auto"`` picks the MLPs for points ``[d]``, the ResNet pair for 32x32 images and
    the DCGAN pair for other sizes. ``width`` defaults to the papers' (ResNet 128, DCGAN 64,
    MLP 512) and ``z_dim`` to 128 for images and 2 for points (WGAN-GP's toy noise).
    """
    if len(sample_shape) == 1:
        if model not in ("auto", "mlp"):
            raise ValueError(
                f"--model {model} builds image networks, but the data are {sample_shape[0]}-D "
                "points; use --model mlp (or auto)"
            )
        z = 2 if z_dim is None else z_dim
        w = 512 if width is None else width
        return MLPGenerator(z, w, 3, sample_shape[0]), MLPCritic(sample_shape[0], w, 3), z
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ValueError(
            f"the trainer's networks take points [d] or square images [C, H, H], "
            f"got samples of shape {list(sample_shape)}"
        )
    channels, side = sample_shape[0], sample_shape[1]
    if model == "mlp":
        raise ValueError("--model mlp is for 2-D toy data; use resnet, dcgan or auto for images")
    if model == "auto":
        model = "resnet" if side == 32 else "dcgan"
    z = 128 if z_dim is None else z_dim
    if model == "resnet":
        w = 128 if width is None else width
        return ResNetGenerator(z, w, channels, side), ResNetCritic(channels, w), z
    w = 64 if width is None else width
    return DCGANGenerator(z, w, channels, side), DCGANCritic(channels, w, side), z
