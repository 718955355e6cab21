"""How tightly spectral normalisation constrains the convolutions of the digits critic.

The preset bwgan-digits' DCGAN critic (width 32, 16x16 digits, seed 0) is spectrally
normalised with power iteration (SNGAN: sigma of the reshaped kernel) and with
``conv="fft"`` (a certified bound on the operator norm of the strided, zero-padded
convolution, lipreg.spectral), then runs one training-mode forward as in training. For each
normalised convolution, this prints the exact l2 operator norm on its input size, the largest
singular value of the explicit matrix of the layer (built by convolving the identity basis),
in float64. A value above 1 means the layer is not 1-Lipschitz; well below 1, that the
normalisation constrains it more than it must. docs/studies.md quotes the output.

    python benchmarks/sn_operator_norms.py
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lipreg import spectral_normalize
from lipreg.train.models import build_models

SHAPE = (1, 16, 16)
WIDTH = 32


def operator_norm(conv: nn.Conv2d, shape: tuple[int, ...]) -> float:
    """The l2 operator norm of ``conv`` (bias aside) on inputs of ``shape`` ``[C, H, W]``."""
    n = shape[0] * shape[1] * shape[2]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    weight = conv.weight.detach().double()
    images = nn.functional.conv2d(basis, weight, None, conv.stride, conv.padding)
    return float(torch.linalg.matrix_norm(images.reshape(n, -1), ord=2))


def measure(conv_mode: Literal["power", "fft"], seed: int = 0) -> list[float]:
    """Operator norms of the normalised convolutions of the critic, first to last."""
    torch.manual_seed(seed)
    _, critic, _ = build_models("dcgan", SHAPE, WIDTH, None)
    spectral_normalize(critic, conv=conv_mode, input_shape=SHAPE)
    critic.train()
    shapes: list[tuple[int, ...]] = []
    hooks = [
        m.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape[1:])))
        for m in critic.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        critic(torch.randn(8, *SHAPE))
    for hook in hooks:
        hook.remove()
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    return [operator_norm(c, s) for c, s in zip(convs, shapes, strict=True)]


def main() -> None:
    torch.set_num_threads(1)
    print("| spectral normalisation | operator norm of each convolution |")
    print("| --- | --- |")
    modes: tuple[Literal["power", "fft"], ...] = ("power", "fft")
    for mode in modes:
        print(f"| {mode} | {', '.join(f'{v:.2f}' for v in measure(mode))} |")


if __name__ == "__main__":
    main()
