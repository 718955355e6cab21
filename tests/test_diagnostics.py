"""estimate_lipschitz: a lower bound that recovers the known constants of constructed critics
(never above, within 2% after the default steps) and leaves the critic as it found it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from conftest import dense_filter
from lipreg import L2, Lp, Norm, Sobolev
from lipreg.diagnostics import estimate_lipschitz
from lipreg.norms import conjugate

SHAPE = (1, 4, 4)  # [C, H, W]: a layout every norm below accepts
NORMS = [L2(), Lp(1.0), Lp(3.0), Lp(math.inf), Sobolev(s=-1.5), Sobolev(s=1.0, p=3.0)]


def true_dual(a: Tensor, norm: Norm) -> float:
    """||a||_{B*} computed independently of lipreg: NumPy norms, dense Sobolev matrices."""
    flat = a.detach().double().flatten().numpy()
    flat = dense_filter(norm, SHAPE, dual=True) @ flat
    return float(np.linalg.norm(flat, ord=conjugate(norm.p)))


class Functionals(nn.Module):
    def __init__(self, *a: Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.stack(a))  # [K, C, H, W]

    def inner(self, x: Tensor) -> Tensor:
        return torch.einsum("bchw,kchw->bk", x, self.a)


class MaxLinear(Functionals):
    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x).amax(1)


class ReluPair(Functionals):
    """relu(<a, x>) - relu(<b, x>): gradients a - b, a, -b, 0 on four cones."""

    def forward(self, x: Tensor) -> Tensor:
        u = torch.relu(self.inner(x))
        return u[:, 0] - u[:, 1]


class Tanh(Functionals):
    def __init__(self, a: Tensor, gamma: float) -> None:
        super().__init__(a)
        self.gamma = gamma

    def forward(self, x: Tensor) -> Tensor:
        return self.gamma * torch.tanh(self.inner(x)[:, 0])


def samples(n: int = 32) -> Tensor:
    return torch.randn(n, *SHAPE, dtype=torch.float64)


def check(critic: nn.Module, norm: Norm, true: float) -> None:
    result = estimate_lipschitz(critic.double(), norm, samples())
    assert result.value <= true * (1 + 1e-9)
    assert result.value >= 0.98 * true, (result, true)


@pytest.mark.parametrize("norm", NORMS, ids=repr)
def test_linear_functional_constant_is_the_dual_norm(norm: Norm) -> None:
    a = torch.randn(SHAPE, dtype=torch.float64)
    result = estimate_lipschitz(MaxLinear(a), norm, samples())
    assert result.value == pytest.approx(true_dual(a, norm), rel=1e-12)
    assert result.method == "gradient"  # the quotient can only tie with it


@pytest.mark.parametrize("norm", NORMS, ids=repr)
def test_max_of_linear_functionals(norm: Norm) -> None:
    a = [torch.randn(SHAPE, dtype=torch.float64) for _ in range(3)]
    check(MaxLinear(*a), norm, max(true_dual(ak, norm) for ak in a))


@pytest.mark.parametrize("norm", NORMS, ids=repr)
def test_relu_network_with_known_constant(norm: Norm) -> None:
    a, b = torch.randn(SHAPE, dtype=torch.float64), torch.randn(SHAPE, dtype=torch.float64)
    # Continuous and piecewise linear: the constant is the largest dual norm of its pieces.
    true = max(true_dual(a, norm), true_dual(b, norm), true_dual(a - b, norm))
    check(ReluPair(a, b), norm, true)


@pytest.mark.parametrize("norm", NORMS, ids=repr)
def test_smooth_critic_needs_the_ascent(norm: Norm) -> None:
    a = torch.randn(SHAPE, dtype=torch.float64)
    gamma = 2.5
    critic = Tanh(a / true_dual(a, norm), gamma)  # Lip = gamma, attained where <a, x> = 0
    # Every sample at l2 distance 1.5 from the hyperplane <a, x> = 0, where the slope peaks.
    unit = critic.a[0] / critic.a[0].norm()
    z = samples()
    x = z - torch.einsum("bchw,chw->b", z, unit)[:, None, None, None] * unit + 1.5 * unit
    start = estimate_lipschitz(critic, norm, x, steps=0, pairwise=False).value
    result = estimate_lipschitz(critic, norm, x)
    assert start < 0.9 * gamma  # the samples alone are far off ...
    assert 0.98 * gamma <= result.value <= gamma * (1 + 1e-9)  # ... the ascent finds it
    (w,) = result.witness
    assert result.method == "gradient" and result.value == result.gradient
    grad = gamma * (1 - torch.tanh(critic.inner(w[None])).square()) * critic.a[0]
    assert true_dual(grad, norm) == pytest.approx(result.value, rel=1e-9)


def test_pairwise_value_is_the_brute_force_best_quotient() -> None:
    critic = ReluPair(*(torch.randn(SHAPE, dtype=torch.float64) for _ in range(2)))
    x = samples(6)
    result = estimate_lipschitz(critic, Lp(3.0), x, steps=0)
    scores = critic(x).detach().numpy()
    flat = x.flatten(1).numpy()
    best = max(
        abs(scores[i] - scores[j]) / np.linalg.norm(flat[i] - flat[j], ord=3.0)
        for i in range(6)
        for j in range(6)
        if i != j
    )
    assert result.pairwise == pytest.approx(best, rel=1e-12)
    assert result.value == max(result.gradient, best)


def test_pairwise_quotient_wins_for_a_step_like_critic() -> None:
    # A steep sigmoid between two samples: their quotient beats the gradients at the samples.
    x = torch.tensor([[[[-1.0]]], [[[1.0]]]], dtype=torch.float64)
    critic = lambda z: torch.sigmoid(20 * z.flatten(1).sum(1))  # noqa: E731
    result = estimate_lipschitz(critic, L2(), x, steps=0)
    assert result.method == "pairwise"
    expected = (1 / (1 + math.exp(-20)) - 1 / (1 + math.exp(20))) / 2
    assert result.value == pytest.approx(expected, rel=1e-12)
    p, q = result.witness
    assert {float(p), float(q)} == {-1.0, 1.0}


def test_critic_state_is_untouched() -> None:
    critic = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.3), nn.Tanh(),
        nn.Flatten(), nn.Linear(64, 1),
    )  # fmt: skip
    critic.train()
    critic[2].eval()  # a module with its own mode
    critic(torch.randn(8, *SHAPE))  # non-trivial running statistics
    for p in critic.parameters():
        p.grad = torch.full_like(p, 7.0)
    params = [p.detach().clone() for p in critic.parameters()]
    buffers = [b.clone() for b in critic.buffers()]
    modes = [m.training for m in critic.modules()]
    x = torch.randn(8, *SHAPE)
    x_before = x.clone()
    for eval_mode in (True, False):
        estimate_lipschitz(critic, L2(), x, steps=3, eval_mode=eval_mode)
    assert all(torch.equal(p, q) for p, q in zip(critic.parameters(), params, strict=True))
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in critic.parameters())
    assert all(torch.equal(b, c) for b, c in zip(critic.buffers(), buffers, strict=True))
    assert [m.training for m in critic.modules()] == modes
    assert torch.equal(x, x_before)


def test_eval_mode_measures_the_eval_function() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 1)).double()
    w = critic[2].weight.detach().flatten()
    result = estimate_lipschitz(critic, L2(), samples(8))
    assert result.value == pytest.approx(float(w.norm()), rel=1e-12)  # dropout off


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"steps": -1}, ValueError, "steps must be a non-negative integer"),
        ({"steps": 2.5}, ValueError, "steps must be a non-negative integer"),
        ({"lr": 0.0}, ValueError, "lr must be in (0, inf)"),
        ({"engine": "jax"}, ValueError, "engine must be 'func' or 'autograd'"),
        ({"norm": "lp:p=0.5"}, ValueError, "p must be in [1, inf]"),
        ({"samples": np.zeros((2, 1, 4, 4))}, TypeError, "samples must be a torch.Tensor"),
        ({"samples": torch.zeros(2, 16)}, ValueError, "samples must have layout"),
        ({"critic": 3}, TypeError, "critic must be callable"),
    ],
)
def test_bad_arguments(kwargs, error, words) -> None:  # type: ignore[no-untyped-def]
    args = {"critic": MaxLinear(torch.randn(SHAPE)), "norm": Sobolev(s=1.0), "samples": samples(2)}
    args.update(kwargs)
    critic, norm, x = args.pop("critic"), args.pop("norm"), args.pop("samples")
    with pytest.raises(error) as info:
        estimate_lipschitz(critic, norm, x, **args)  # type: ignore[arg-type]
    assert words in str(info.value)
