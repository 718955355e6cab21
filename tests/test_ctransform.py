"""Pairwise distances and the c-transform loss against brute-force double loops (NumPy, dense
Sobolev matrices, float64), their gradients, and the duality facts behind the signs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor
from torch.autograd import gradcheck

from conftest import dense_sobolev, mlp
from lipreg import L2, Lp, Norm, Sobolev
from lipreg.ctransform import CTransformLoss, c_transform
from lipreg.pairwise import pairwise_distances

SHAPE = (2, 4, 4)


class Weighted(Norm):
    """A norm without an l^p embedding (a weighted sum of l1 and l_inf): the fallback path."""

    name = "weighted"

    def _norm(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        return flat.abs().sum(1) + 2 * flat.abs().amax(1)

    def _dual(self, g: Tensor) -> Tensor:
        raise NotImplementedError  # not needed for distances

    params: dict[str, float] = {}  # noqa: RUF012
    space = "weighted"
    dual_space = "weighted*"


NORMS = [L2(), Lp(1.0), Lp(3.0), Lp(10.0), Lp(math.inf), Sobolev(s=-1.5), Sobolev(1.0, p=3.0)]


def brute_distance(u: np.ndarray, v: np.ndarray, norm: Norm) -> float:
    diff = (u - v).reshape(-1)
    if isinstance(norm, Weighted):
        return float(np.abs(diff).sum() + 2 * np.abs(diff).max())
    if isinstance(norm, Sobolev):
        diff = dense_sobolev(SHAPE[1:], SHAPE[0], norm.s, norm.c) @ diff
    return float(np.linalg.norm(diff, ord=norm.p))


def brute_matrix(x: Tensor, y: Tensor, norm: Norm) -> np.ndarray:
    xs, ys = x.detach().numpy(), y.detach().numpy()
    return np.array([[brute_distance(u, v, norm) for v in ys] for u in xs])


@pytest.mark.parametrize("norm", [*NORMS, Weighted()], ids=repr)
def test_pairwise_distances_match_a_double_loop(norm: Norm) -> None:
    x = torch.randn(5, *SHAPE, dtype=torch.float64)
    y = torch.randn(3, *SHAPE, dtype=torch.float64)
    d = pairwise_distances(x, y, norm)
    assert d.shape == (5, 3)
    np.testing.assert_allclose(d.numpy(), brute_matrix(x, y, norm), rtol=1e-10)


def test_lp_embeddings() -> None:
    x = torch.randn(3, *SHAPE, dtype=torch.float64)
    embedded = Lp(3.0).lp_embedding(x)
    assert embedded is not None and embedded[1] == 3.0
    assert torch.equal(embedded[0], x.flatten(1))
    sob = Sobolev(s=-1.5).lp_embedding(x)
    assert sob is not None and sob[1] == 2.0
    dense = dense_sobolev(SHAPE[1:], SHAPE[0], -1.5, 5.0)
    np.testing.assert_allclose(sob[0].numpy(), x.flatten(1).numpy() @ dense.T, atol=1e-12)
    assert Weighted().lp_embedding(x) is None
    half = Lp(2.0).lp_embedding(x.half())
    assert half is not None and half[0].dtype == torch.float32


def test_large_p_distances_are_stable_in_float32() -> None:
    x64 = torch.randn(4, 64, dtype=torch.float64) * 1e-6
    y64 = torch.randn(3, 64, dtype=torch.float64) * 1e-6
    d32 = pairwise_distances(x64.float(), y64.float(), Lp(30.0))
    ref = brute_matrix(x64, y64, Lp(30.0))
    np.testing.assert_allclose(d32.numpy(), ref, rtol=1e-5)


def brute_c_transform(d_real: Tensor, x: Tensor, y: Tensor, norm: Norm) -> np.ndarray:
    scores = d_real.detach().numpy()
    dist = brute_matrix(x, y, norm)
    return np.array(
        [min(dist[i, j] - scores[i] for i in range(x.shape[0])) for j in range(y.shape[0])]
    )


@pytest.mark.parametrize("norm", [*NORMS, Weighted()], ids=repr)
def test_c_transform_matches_a_double_loop(norm: Norm) -> None:
    x = torch.randn(6, *SHAPE, dtype=torch.float64)
    y = torch.randn(4, *SHAPE, dtype=torch.float64)
    d_real = torch.randn(6, 1, dtype=torch.float64) * 3
    np.testing.assert_allclose(
        c_transform(d_real, x, y, norm).numpy(),
        brute_c_transform(d_real[:, 0], x, y, norm),
        rtol=1e-10,
    )


@pytest.mark.parametrize("norm", [L2(), Lp(10.0), Sobolev(s=-1.5)], ids=repr)
def test_loss_value_and_gradients(norm: Norm) -> None:
    critic = mlp(32, width=8, depth=1).double()
    real = torch.randn(6, *SHAPE, dtype=torch.float64)
    fake = torch.randn(5, *SHAPE, dtype=torch.float64, requires_grad=True)
    loss = CTransformLoss(norm)(critic, real, fake)
    d_real = critic(real)[:, 0]
    w_hat = d_real.mean().item() + brute_c_transform(d_real, real, fake, norm).mean()
    assert loss.item() == pytest.approx(-w_hat, rel=1e-12)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_gradcheck() -> None:
    real = torch.randn(5, *SHAPE, dtype=torch.float64)
    d_real = torch.randn(5, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(3, *SHAPE, dtype=torch.float64, requires_grad=True)
    for norm in (L2(), Lp(3.0), Sobolev(s=-1.5)):
        assert gradcheck(lambda d, f, n=norm: c_transform(d, real, f, n), (d_real, fake))


def test_zero_gap_for_a_1_lipschitz_critic_on_equal_batches() -> None:
    # D 1-Lipschitz: D^c(y) = -D(y) with the minimum at x = y, so W_hat = 0 on equal batches.
    a = torch.randn(SHAPE, dtype=torch.float64)
    a = a / a.norm()
    x = torch.randn(7, *SHAPE, dtype=torch.float64)
    loss = CTransformLoss(L2())(lambda z: torch.einsum("bchw,chw->b", z, a), x, x.clone())
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(p=st.sampled_from([1.0, 1.5, 2.0, 4.0, math.inf]), seed=st.integers(0, 2**31 - 1))
def test_c_transform_estimate_dominates_the_wgan_estimate(p: float, seed: int) -> None:
    # For a 1-Lipschitz D, D(x_i) - D(y) <= ||x_i - y||, so D^c(y) >= -D(y):
    # the c-transform estimate W_hat is never below the WGAN estimate mean D(real) - mean D(fake).
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
    norm = Lp(p)
    a = a / norm.dual(a[None])[0]  # ||a||_q = 1: D(x) = <a, x> is 1-Lipschitz in L^p
    x = torch.randn(5, *SHAPE, generator=gen, dtype=torch.float64)
    y = torch.randn(4, *SHAPE, generator=gen, dtype=torch.float64)

    def critic(z: Tensor) -> Tensor:
        return torch.einsum("bchw,chw->b", z, a)

    w_c = -CTransformLoss(norm)(critic, x, y).item()
    assert w_c >= critic(x).mean().item() - critic(y).mean().item() - 1e-12


class Local(Weighted):
    local = True


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: CTransformLoss(Local()), ValueError, "local norm"),
        (
            lambda: pairwise_distances(torch.zeros(2, 3), torch.zeros(2, 3), Local()),
            ValueError,
            "local norm",
        ),
        (lambda: CTransformLoss("lp:p=0"), ValueError, "p must be in [1, inf]"),
        (
            lambda: CTransformLoss()(3, torch.zeros(2, 3), torch.zeros(2, 3)),
            TypeError,
            "critic must be callable",
        ),
        (
            lambda: CTransformLoss()(
                mlp(32, width=8, depth=1), torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4)
            ),
            ValueError,
            "shape differs",
        ),
        (
            lambda: CTransformLoss()(
                mlp(32, width=8, depth=1), torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4).double()
            ),
            ValueError,
            "dtype differs",
        ),
        (
            lambda: CTransformLoss()(lambda z: z.flatten(1), torch.zeros(2, 3), torch.zeros(2, 3)),
            ValueError,
            "must hold one score per sample, shape [B] or [B, 1] with B=2, got shape [2, 3]",
        ),
        (
            lambda: c_transform(torch.zeros(3), torch.zeros(2, 3), torch.zeros(2, 3)),
            ValueError,
            "B=2",
        ),
        (
            lambda: c_transform([0.0, 1.0], torch.zeros(2, 3), torch.zeros(2, 3)),
            TypeError,
            "d_real must be a tensor",
        ),
        (
            lambda: CTransformLoss("sobolev:s=1")(
                mlp(32, width=8, depth=1), torch.zeros(2, 32), torch.zeros(2, 32)
            ),
            ValueError,
            "layout",
        ),
    ],
)
def test_bad_arguments(call, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
