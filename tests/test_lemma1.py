"""Lemma 1 (Adler & Lunz 2018) on random Lipschitz functions, as hypothesis properties:
f is gamma-Lipschitz in B iff ||df(x)||_{B*} <= gamma everywhere."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import mlp
from lipreg import L2, Lp, Norm, Sobolev

SHAPE = (2, 4, 5)  # per-sample [C, H, W]: odd and non-square

norms = st.one_of(
    st.just(L2()),
    st.builds(Lp, st.one_of(st.floats(1.0, 25.0), st.just(math.inf))),
    st.builds(
        Sobolev,
        s=st.floats(-2.0, 2.0),
        p=st.one_of(st.floats(1.0, 8.0), st.just(math.inf)),
        c=st.floats(0.5, 8.0),
    ),
)
seeds = st.integers(0, 2**31 - 1)


def gradient(f, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x).sum(), x)
    return g


@settings(max_examples=40, deadline=None)
@given(norm=norms, gamma=st.floats(0.1, 10.0), seed=seeds)
def test_scaled_distance_has_dual_derivative_gamma(norm: Norm, gamma: float, seed: int) -> None:
    """f(x) = gamma ||x - c||_B is gamma-Lipschitz with ||df(x)||_{B*} = gamma for x != c."""
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn((1, *SHAPE), generator=gen, dtype=torch.float64)
    x = torch.randn((6, *SHAPE), generator=gen, dtype=torch.float64)
    g = gradient(lambda z: gamma * norm.norm(z - c), x)
    torch.testing.assert_close(norm.dual(g), torch.full((6,), gamma, dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(norm=norms, pieces=st.integers(1, 6), seed=seeds)
def test_max_affine_function(norm: Norm, pieces: int, seed: int) -> None:
    """f(x) = max_k <a_k, x> + b_k: df(x) = a_k* and |f(x) - f(y)| <= max_k ||a_k||_* ||x - y||."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn((pieces, *SHAPE), generator=gen, dtype=torch.float64)
    b = torch.randn(pieces, generator=gen, dtype=torch.float64)

    def f(z: torch.Tensor) -> torch.Tensor:
        return (z.flatten(1) @ a.flatten(1).T + b).amax(dim=1)

    x = torch.randn((8, *SHAPE), generator=gen, dtype=torch.float64)
    y = torch.randn((8, *SHAPE), generator=gen, dtype=torch.float64)
    active = (x.flatten(1) @ a.flatten(1).T + b).argmax(dim=1)
    torch.testing.assert_close(norm.dual(gradient(f, x)), norm.dual(a)[active])
    lipschitz = norm.dual(a).max()
    assert ((f(x) - f(y)).abs() <= lipschitz * norm.norm(x - y) * (1 + 1e-12)).all()


@settings(max_examples=25, deadline=None)
@given(norm=norms, seed=seeds)
def test_random_network_obeys_the_mean_value_bound(norm: Norm, seed: int) -> None:
    """|f(x) - f(y)| <= sup_t ||df(x_t)||_{B*} ||x - y||_B along x_t = x + t (y - x)."""
    torch.manual_seed(seed)
    net = mlp(math.prod(SHAPE), width=12).double()
    x, y = torch.randn((2, 1, *SHAPE), dtype=torch.float64)
    t = torch.linspace(0, 1, 513, dtype=torch.float64).view(-1, 1, 1, 1)
    path = x + t * (y - x)
    sup_dual = norm.dual(gradient(lambda z: net(z).squeeze(1), path)).max()
    lhs = (net(x) - net(y)).abs().item()
    assert lhs <= (sup_dual * norm.norm(x - y)).item() * (1 + 1e-6)
