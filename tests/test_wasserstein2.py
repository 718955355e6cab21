"""Wasserstein2: the dual norm against an explicit edge-incidence matrix, the primal norm
against a dense solve, duality, the stencil, gradients, and its use in BanachGP."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

from conftest import ConvCritic, assert_same_grads
from lipreg import BanachGP, BanachR1, FiniteDifferenceGP, Lp, parse_norm
from lipreg.norms import Wasserstein2
from lipreg.norms.wasserstein2 import _kernels

OFFSETS = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 1), (1, -1)]  # the authors' stencil


def edges(h: int, w: int) -> list[tuple[int, int]]:
    """Every edge (p, q) of the pixel graph once, pixels numbered row-major."""
    out = []
    for r in range(h):
        for c in range(w):
            for dr, dc in OFFSETS:
                if 0 <= r + dr < h and 0 <= c + dc < w:
                    out.append((r * w + c, (r + dr) * w + c + dc))
    return out


def dense_metric(
    at: np.ndarray, gamma_l2: float, low: float = -1.0, high: float = 1.0
) -> np.ndarray:
    """M = A^T diag(w) A + gamma_l2 I on one flattened sample [C, H, W], A the edge incidence
    matrix (+1 at p, -1 at q per edge and channel), w_e = rho_p + rho_q."""
    c, h, w = at.shape
    rho = np.maximum((at - low) / (high - low), 0).reshape(c, h * w)
    pairs = edges(h, w)
    a = np.zeros((c * len(pairs), c * h * w))
    weights = np.zeros(c * len(pairs))
    for ch in range(c):
        for e, (p, q) in enumerate(pairs):
            row = ch * len(pairs) + e
            a[row, ch * h * w + p], a[row, ch * h * w + q] = 1.0, -1.0
            weights[row] = rho[ch, p] + rho[ch, q]
    return a.T @ np.diag(weights) @ a + gamma_l2 * np.eye(c * h * w)


def test_edge_count_of_the_stencil() -> None:
    # rows of length w: w-1 + w-2 horizontal edges; 2 (h-1)(w-1) diagonals
    h, w = 4, 5
    expected = h * (w - 1) + w * (h - 1) + h * (w - 2) + w * (h - 2) + 2 * (h - 1) * (w - 1)
    assert len(edges(h, w)) == expected
    g = torch.zeros(1, 1, h, w, dtype=torch.float64)
    at = torch.ones_like(g)  # rho = 1: every existing edge has weight 2
    count = 0.0
    for p in range(h * w):  # sum over edges of (g_p - g_q)^2 w_e for g = e_p counts degrees
        g.view(-1).zero_()
        g.view(-1)[p] = 1.0
        count += Wasserstein2().dual_squared(g, at=at).item() / 2
    assert count == 2 * expected  # each edge is counted from both ends


@pytest.mark.parametrize(
    ("shape", "gamma_l2"), [((2, 5, 6), 0.0), ((3, 4, 4), 0.3), ((1, 2, 7), 1.0)]
)
def test_dual_against_the_dense_incidence_matrix(shape: tuple[int, ...], gamma_l2: float) -> None:
    g = torch.randn(3, *shape, dtype=torch.float64)
    at = torch.rand(3, *shape, dtype=torch.float64) * 2.4 - 1.2  # some pixels outside [-1, 1]
    norm = Wasserstein2(gamma_l2=gamma_l2)
    got = norm.dual(g, at=at)
    for b in range(3):
        m = dense_metric(at[b].numpy(), gamma_l2)
        flat = g[b].numpy().ravel()
        assert got[b].item() == pytest.approx(np.sqrt(flat @ m @ flat), rel=1e-12)
    torch.testing.assert_close(norm.dual_squared(g, at=at), got.square())


def test_density_range_is_configurable() -> None:
    g = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    at01 = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    got = Wasserstein2(gamma_l2=0.1, low=0.0, high=1.0).dual(g, at=at01)
    same = Wasserstein2(gamma_l2=0.1).dual(g, at=at01 * 2 - 1)
    torch.testing.assert_close(got, same)
    m = dense_metric(at01[0].numpy(), 0.1, low=0.0, high=1.0)
    flat = g[0].numpy().ravel()
    assert got[0].item() == pytest.approx(np.sqrt(flat @ m @ flat), rel=1e-12)


def test_primal_norm_against_a_dense_solve_and_duality() -> None:
    torch.manual_seed(1)
    norm = Wasserstein2(gamma_l2=0.05)
    h = torch.randn(2, 2, 5, 4, dtype=torch.float64)
    at = torch.rand(2, 2, 5, 4, dtype=torch.float64) * 2 - 1
    got = norm.norm(h, at=at)
    for b in range(2):
        m = dense_metric(at[b].numpy(), 0.05)
        flat = h[b].numpy().ravel()
        assert got[b].item() == pytest.approx(np.sqrt(flat @ np.linalg.solve(m, flat)), rel=1e-8)
    # sup_h <g, h> / ||h|| = ||g||_*: attained at h = M g, never exceeded by random h
    g = torch.randn(2, 2, 5, 4, dtype=torch.float64)
    dual = norm.dual(g, at=at)
    best = norm.metric(g, at)
    attained = (g * best).flatten(1).sum(1) / norm.norm(best, at=at)
    torch.testing.assert_close(attained, dual, rtol=1e-8, atol=0)
    for _ in range(20):
        trial = torch.randn_like(g)
        assert ((g * trial).flatten(1).sum(1) / norm.norm(trial, at=at) <= dual * (1 + 1e-9)).all()


def test_metric_is_the_dense_matrix() -> None:
    at = torch.rand(2, 3, 4, 5, dtype=torch.float64) * 2 - 1
    h = torch.randn_like(at)
    got = Wasserstein2(gamma_l2=0.2).metric(h, at)
    for b in range(2):
        expected = dense_metric(at[b].numpy(), 0.2) @ h[b].numpy().ravel()
        np.testing.assert_allclose(got[b].numpy().ravel(), expected, rtol=1e-12, atol=1e-12)


def test_gradients() -> None:
    norm = Wasserstein2(gamma_l2=0.1)
    at = torch.rand(2, 2, 4, 4, dtype=torch.float64) * 2 - 1
    g = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda v: norm.dual(v, at=at), (g,))
    assert gradgradcheck(lambda v: norm.dual(v, at=at), (g,))
    assert gradcheck(lambda v: norm.dual_squared(v, at=at), (g,))
    assert gradcheck(lambda v: norm.norm(v, at=at), (g,))
    zero = torch.zeros(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    norm.dual(zero, at=torch.zeros_like(zero)).sum().backward()
    assert zero.grad is not None and torch.equal(zero.grad, torch.zeros_like(zero))


def test_banach_gp_with_the_w2_norm_matches_a_hand_written_penalty() -> None:
    """The penalty of Dukler et al. with the authors' shifted-difference formula written out
    with slicing, (1 + (x_p + x_q) / 2) weights, on interpolates."""
    critic = ConvCritic()
    twin = copy.deepcopy(critic)
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    fake = torch.tanh(torch.randn(4, 3, 8, 8))
    torch.manual_seed(3)
    alpha = torch.rand(4, 1, 1, 1)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(x)
    (g,) = torch.autograd.grad(out, x, torch.ones_like(out), create_graph=True)
    xd = x.detach()
    sq = torch.zeros(4)
    h, w = 8, 8
    for dr, dc in OFFSETS:
        rows, cols = slice(0, h - dr), slice(max(0, -dc), w - max(0, dc))
        rows2, cols2 = slice(dr, h), slice(max(0, dc), w - max(0, -dc))
        diff = g[:, :, rows, cols] - g[:, :, rows2, cols2]
        weight = 1 + (xd[:, :, rows, cols] + xd[:, :, rows2, cols2]) / 2
        sq = sq + (diff.square() * weight).sum((1, 2, 3))
    expected = 10 * ((sq.sqrt() - 1) ** 2).mean()
    expected.backward()
    torch.manual_seed(3)
    got = BanachGP(Wasserstein2(), lam=10.0, gamma=1.0)(twin, real, fake)
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    assert_same_grads(twin, critic, rtol=1e-4, atol=1e-7)


def test_zero_centred_and_one_sided_use_it() -> None:
    critic = ConvCritic()
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    r1 = BanachR1("w2:gamma_l2=0.5", gamma=2.0)(critic, real)
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    expected = Wasserstein2(gamma_l2=0.5).dual_squared(g, at=real).mean()
    torch.testing.assert_close(r1, expected)
    one = BanachGP("w2", gamma=1e3, one_sided=True)(critic, real, torch.randn_like(real))
    assert one.item() == 0.0


def test_spec_round_trip_and_repr() -> None:
    norm = parse_norm("w2:gamma_l2=0.1,low=0,high=1")
    assert norm == Wasserstein2(gamma_l2=0.1, low=0.0, high=1.0)
    assert parse_norm(norm.spec) == norm and parse_norm("w2") == Wasserstein2()
    assert norm.local and not Lp(2).local
    assert repr(norm).startswith("Wasserstein2(gamma_l2=0.1, low=0, high=1)")


def test_base_point_is_required_and_checked() -> None:
    g = torch.randn(2, 3, 4, 4)
    with pytest.raises(TypeError, match=r"local norm.*pass at=x_hat"):
        Wasserstein2().dual(g)
    with pytest.raises(ValueError, match="base point at must have the shape"):
        Wasserstein2().dual(g, at=g[:1])
    with pytest.raises(ValueError, match="base point at must have the shape"):
        Lp(2).dual(g, at=g[:, :1])
    torch.testing.assert_close(Lp(2).dual(g, at=g), Lp(2).dual(g))  # ordinary norms ignore it
    with pytest.raises(ValueError, match=r"layout \[B, C, H, W\]"):
        Wasserstein2().dual(g.flatten(2), at=g.flatten(2))
    with pytest.raises(ValueError, match="needs gamma_l2 > 0"):
        Wasserstein2().norm(g, at=g)


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: Wasserstein2(gamma_l2=-1.0), ValueError, "gamma_l2 must be in [0, inf)"),
        (lambda: Wasserstein2(low=1.0, high=0.0), ValueError, "low must be below high"),
        (lambda: Wasserstein2(high=float("inf")), ValueError, "high must be in"),
        (lambda: parse_norm("w2:s=1"), ValueError, "Accepted forms"),
        (lambda: BanachGP("w2", lam="auto"), ValueError, "local norm"),
        (lambda: FiniteDifferenceGP("w2"), ValueError, "local norm"),
    ],
)
def test_bad_arguments(make, error, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_dual_kernels_receive_no_gradients() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(48, 1))
    real = torch.rand(2, 3, 4, 4) * 2 - 1
    BanachR1("w2")(critic, real).backward()
    difference, endpoint = _kernels(3, real.device, torch.float32)
    assert not difference.requires_grad and not endpoint.requires_grad


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(1, 3),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    gamma_l2=st.floats(0.01, 2.0),
    seed=st.integers(0, 2**16),
)
def test_dual_matches_the_dense_form_and_bounds_every_pairing(  # type: ignore[no-untyped-def]
    channels, height, width, gamma_l2, seed
) -> None:
    """On any image size: the dense quadratic form, and Hoelder's inequality
    <g, h> <= ||g||_x* ||h||_x for the pair of norms."""
    gen = torch.Generator().manual_seed(seed)
    shape = (2, channels, height, width)
    g = torch.randn(shape, generator=gen, dtype=torch.float64)
    h = torch.randn(shape, generator=gen, dtype=torch.float64)
    at = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
    norm = Wasserstein2(gamma_l2=gamma_l2)
    dual = norm.dual(g, at=at)
    m = dense_metric(at[0].numpy(), gamma_l2)
    flat = g[0].numpy().ravel()
    assert dual[0].item() == pytest.approx(np.sqrt(flat @ m @ flat), rel=1e-10)
    pairing = (g * h).flatten(1).sum(1)
    assert (pairing <= dual * norm.norm(h, at=at) * (1 + 1e-7) + 1e-12).all()


def test_lemma1_for_a_critic_at_a_base_point() -> None:
    """The directional derivative of a smooth critic at x along h, over ||h||_x, is at most
    ||grad D(x)||_x* and reaches it along h = M_x grad D(x)."""
    torch.manual_seed(2)
    critic = ConvCritic().double()
    x = (torch.rand(1, 3, 8, 8, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    norm = Wasserstein2(gamma_l2=0.2)
    x = x.detach()
    dual = norm.dual(g, at=x).item()

    def slope(h: torch.Tensor) -> float:
        t = 1e-6
        with torch.no_grad():
            diff = (critic(x + t * h) - critic(x - t * h)).item() / (2 * t)
        return diff / norm.norm(h, at=x).item()

    assert slope(norm.metric(g, x)) == pytest.approx(dual, rel=1e-6)
    for _ in range(10):
        assert slope(torch.randn_like(x)) <= dual * (1 + 1e-6)
