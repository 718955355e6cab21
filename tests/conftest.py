"""Shared test helpers: small critics and independent (NumPy) reference computations."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class ConvCritic(nn.Module):
    """A small smooth image critic [B, C, H, W] -> [B, 1] (softplus: twice differentiable)."""

    def __init__(self, channels: int = 3, width: int = 6, size: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, stride=2)
        self.head = nn.Linear(width * (size // 2) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.softplus(self.conv1(x))
        h = nn.functional.softplus(self.conv2(h))
        return self.head(h.flatten(1))


def mlp(n_in: int, width: int = 16, depth: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.Tanh()]
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def dft_matrix(n: int) -> np.ndarray:
    j = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(j, j) / n)


def dense_sobolev(spatial: tuple[int, ...], channels: int, s: float, c: float) -> np.ndarray:
    """The Sobolev filter as a dense real matrix on flattened [C, *spatial] samples, built from
    explicit DFT matrices and a multiplier written out index by index (no torch, no rfft)."""
    f = np.array([[1.0 + 0j]])
    for n in spatial:
        f = np.kron(f, dft_matrix(n))
    mult = np.empty(int(np.prod(spatial)))
    for flat, idx in enumerate(itertools.product(*(range(n) for n in spatial))):
        xi2 = sum((min(k, n - k) / (n // 2)) ** 2 for k, n in zip(idx, spatial, strict=True))
        mult[flat] = (1 + c * xi2) ** (s / 2)
    t = np.linalg.inv(f) @ np.diag(mult) @ f
    assert np.abs(t.imag).max() < 1e-10  # the multiplier is even, so the filter is real
    return np.kron(np.eye(channels), t.real)


class Calls(nn.Module):
    """Counts forward calls, to show that a rejected input never reaches the critic."""

    def __init__(self, inner: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def leaf_parameters(critic: nn.Module) -> tuple[torch.Tensor, ...]:
    """Detached copies of ``critic``'s parameters that require grad (inputs of gradcheck)."""
    return tuple(p.detach().clone().requires_grad_(True) for p in critic.parameters())


def functional(
    critic: nn.Module, params: tuple[torch.Tensor, ...]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``critic`` as a function of its input with ``params`` in place of its parameters."""
    names = [n for n, _ in critic.named_parameters()]
    mapping = dict(zip(names, params, strict=True))
    return lambda x: torch.func.functional_call(critic, mapping, (x,))
