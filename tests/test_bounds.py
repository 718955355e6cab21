"""lipschitz_upper_bound: exact on single layers (dense Jacobians), never below the constant
of random networks, and a clear error naming a layer it cannot bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import dense_norm
from lipreg import L2
from lipreg.bounds import layer_bounds, lipschitz_upper_bound
from lipreg.diagnostics import estimate_lipschitz

LINEAR_LAYERS = [
    (nn.Linear(7, 5), (7,)),
    (nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), (3, 2, 2)),
    (nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), (2, 5, 4)),
    (nn.Conv1d(2, 2, 3, padding=2, dilation=2, padding_mode="circular"), (2, 7)),
    (nn.AvgPool2d(2), (2, 4, 6)),
    (nn.AvgPool1d(3), (1, 9)),
    (nn.AdaptiveAvgPool2d(1), (3, 4, 5)),
    (nn.AdaptiveAvgPool2d((2, 3)), (1, 4, 6)),
]


@pytest.mark.parametrize(("layer", "shape"), LINEAR_LAYERS, ids=lambda v: str(v)[:40])
def test_exact_on_single_linear_layers(layer: nn.Module, shape: tuple[int, ...]) -> None:
    layer = layer.double()
    (bound,) = [b for b in layer_bounds(layer, shape) if b.layer != "Flatten"]
    assert bound.exact
    assert bound.bound == pytest.approx(dense_norm(layer, shape), rel=1e-10)


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (nn.AvgPool2d(3, stride=1, padding=1), (1, 5, 5)),
        (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 6, 7)),
        (nn.AvgPool2d(2, stride=1, ceil_mode=True), (1, 5, 4)),
        (nn.AdaptiveAvgPool1d(3), (2, 7)),
        (nn.Conv2d(2, 2, 3, padding=1), (2, 4, 4)),
        (nn.Conv2d(2, 3, 3, stride=2, padding=1, padding_mode="reflect"), (2, 6, 5)),
    ],
    ids=lambda v: str(v)[:50],
)
def test_bound_on_other_linear_layers(layer: nn.Module, shape: tuple[int, ...]) -> None:
    layer = layer.double()
    (bound,) = layer_bounds(layer, shape)
    true = dense_norm(layer, shape)
    assert true <= bound.bound * (1 + 1e-10)
    if bound.exact:
        assert bound.bound == pytest.approx(true, rel=1e-10)


@pytest.mark.parametrize(
    ("pool", "shape"),
    [
        (nn.MaxPool2d(2), (1, 4, 4)),
        (nn.MaxPool2d(3, stride=1, padding=1), (1, 5, 5)),
        (nn.MaxPool1d(3, stride=2, dilation=2), (1, 11)),
        (nn.AdaptiveMaxPool2d((2, 3)), (1, 5, 5)),
    ],
    ids=str,
)
def test_max_pool_bound_is_attained(pool: nn.Module, shape: tuple[int, ...]) -> None:
    # sqrt(m): raising the entry shared by m windows above everything raises m outputs alike.
    (bound,) = layer_bounds(pool, shape)
    assert bound.exact
    x = torch.zeros(1, *shape, dtype=torch.float64)
    best = 0.0
    for j in range(x.numel()):
        bump = torch.zeros_like(x).view(-1)
        bump[j] = 1.0
        gap = (pool(x + bump.view_as(x)) - pool(x)).norm()
        best = max(best, float(gap))
    assert best == pytest.approx(bound.bound, rel=1e-12)


ACTIVATIONS = [
    (nn.ReLU(), 1.0),
    (nn.LeakyReLU(0.2), 1.0),
    (nn.LeakyReLU(-1.5), 1.5),
    (nn.ELU(2.0), 2.0),
    (nn.Tanh(), 1.0),
    (nn.Sigmoid(), 0.25),
    (nn.Softplus(beta=3.0), 1.0),
    (nn.SELU(), 1.0507009873554805 * 1.6732632423543772),
    (nn.SiLU(), 1.09984),
    (nn.GELU(), 1.12890),
    (nn.GELU(approximate="tanh"), 1.12899),
    (nn.Hardsigmoid(), 1 / 6),
    (nn.CELU(0.5), 1.0),
]


@pytest.mark.parametrize(("act", "sup"), ACTIVATIONS, ids=str)
def test_activation_bounds_are_their_sup_derivative(act: nn.Module, sup: float) -> None:
    (bound,) = layer_bounds(act, (1,))
    # secant slopes |f(x') - f(x)| / |x' - x| on a fine grid: the Lipschitz quotient itself
    x = torch.linspace(-8, 8, 400_001, dtype=torch.float64)
    with torch.no_grad():
        measured = float((act(x).diff() / x.diff()).abs().max())
    assert measured <= bound.bound * (1 + 1e-9)
    # attained up to the grid spacing (exact constants) or to their rounding (SiLU, GELU)
    assert bound.bound - measured < 1e-4
    assert sup == pytest.approx(bound.bound, abs=1e-4)


def test_batch_norm_in_eval_mode_is_exact() -> None:
    bn = nn.BatchNorm2d(3).double()
    bn(
        torch.randn(8, 3, 4, 4, dtype=torch.float64)
        * torch.tensor([0.5, 2.0, 1.0]).view(1, 3, 1, 1).double()
    )
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -3.0, 0.2]))
    bn.eval()
    (bound,) = layer_bounds(bn, (3, 2, 2))
    assert bound.bound == pytest.approx(dense_norm(bn, (3, 2, 2)), rel=1e-10)


def test_dropout_bound_follows_the_mode() -> None:
    drop = nn.Dropout(0.25)
    assert layer_bounds(drop, (4,))[0].bound == pytest.approx(4 / 3)
    assert layer_bounds(drop.eval(), (4,))[0].bound == 1.0


def test_product_and_names() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.Sequential(nn.ReLU(), nn.AvgPool2d(2)),
        nn.Flatten(),
        nn.Linear(16, 1),
    )
    bounds = layer_bounds(net, (1, 4, 4))
    assert [b.name for b in bounds] == ["0", "1.0", "1.1", "2", "3"]
    assert lipschitz_upper_bound(net, (1, 4, 4)) == pytest.approx(
        math.prod(b.bound for b in bounds), rel=1e-15
    )


def random_net(seed: int, kind: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(seed)
    if kind == "mlp":
        net = nn.Sequential(
            nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.LeakyReLU(0.1), nn.Linear(8, 1)
        )
        return net.double(), (6,)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 3, 3, padding=1, padding_mode="circular"),
        nn.ELU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 1),
    )
    return net.double(), (1, 6, 6)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["mlp", "conv"]))
def test_bound_is_never_below_the_estimated_constant(seed: int, kind: str) -> None:
    net, shape = random_net(seed, kind)
    bound = lipschitz_upper_bound(net, shape)
    x = torch.randn(16, *shape, dtype=torch.float64)
    lower = estimate_lipschitz(net, L2(), x, steps=20).value
    assert 0 < lower <= bound


def test_single_linear_layer_estimate_meets_the_bound() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(9, 1)).double()
    bound = lipschitz_upper_bound(net, (1, 3, 3))
    lower = estimate_lipschitz(net, L2(), torch.randn(4, 1, 3, 3, dtype=torch.float64)).value
    assert lower == pytest.approx(bound, rel=1e-12)
    np.testing.assert_allclose(bound, float(net[1].weight.detach().norm()), rtol=1e-12)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.f(x)
        return out


class CustomSequential(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out: torch.Tensor = super().forward(x) * 2
        return out


@pytest.mark.parametrize(
    ("net", "shape", "error", "words"),
    [
        (
            nn.Sequential(nn.Linear(4, 4), Residual()),
            (4,),
            ValueError,
            "cannot bound layer '1' (Residual)",
        ),
        (
            nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Softmax(1))),
            (4,),
            ValueError,
            "'0.1' (Softmax)",
        ),
        (nn.Sequential(nn.BatchNorm1d(4)), (4,), ValueError, "call critic.eval()"),
        (nn.Sequential(nn.LayerNorm(4)), (4,), ValueError, "'0' (LayerNorm)"),
        (CustomSequential(nn.Linear(4, 4)), (4,), ValueError, "(CustomSequential)"),
        (
            nn.Sequential(nn.MaxPool2d(2, return_indices=True)),
            (1, 4, 4),
            ValueError,
            "'0' (MaxPool2d with return_indices=True)",
        ),
        (nn.Linear(4, 4), (0,), ValueError, "input_shape must be"),
        (  # a shape the critic cannot take: named, not torch's bare matmul error
            nn.Sequential(nn.Flatten(), nn.Linear(12, 1)),
            (3, 2, 3),
            ValueError,
            "layer '1' (Linear, input [1, 18]) failed in a forward of input_shape (3, 2, 3)",
        ),
        (nn.Linear(4, 4), 4, ValueError, "input_shape must be"),
        ("net", (4,), TypeError, "critic must be an nn.Module"),
    ],
)
def test_clear_errors(net, shape, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        lipschitz_upper_bound(net, shape)
    assert words in str(info.value)
