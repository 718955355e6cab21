"""FiniteDifferenceGP: the quotient formula against a brute-force float64 loop, reuse of the
loss's scores, no double backward, pairs, the distance-0 guard, errors."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.autograd import gradcheck

from conftest import (
    Calls,
    ConvCritic,
    FirstOrderCritic,
    assert_same_grads,
    dense_filter,
    functional,
    images,
    leaf_parameters,
)
from lipreg import BanachGP, FiniteDifferenceGP, Lp, Sobolev


def quotients(
    critic: nn.Module, xs: torch.Tensor, ys: torch.Tensor, norm: Lp | Sobolev
) -> np.ndarray:
    """|D(x_i) - D(y_i)| / ||x_i - y_i||, one pair at a time, the norm from a dense NumPy
    matrix."""
    t = dense_filter(norm, (3, 8, 8))
    out = []
    with torch.no_grad():
        for x, y in zip(xs, ys, strict=True):
            dist = np.linalg.norm(t @ (x - y).numpy().ravel(), ord=norm.p)
            out.append(abs(critic(x[None]).item() - critic(y[None]).item()) / dist)
    return np.array(out)


def brute_force(
    critic: nn.Module,
    xs: torch.Tensor,
    ys: torch.Tensor,
    norm: Lp | Sobolev,
    lam: float,
    gamma: float,
    one_sided: bool,
) -> float:
    """lam * gamma * mean_i max(0, q_i / gamma - 1)^2 (without the max if two-sided)."""
    e = quotients(critic, xs, ys, norm) / gamma - 1
    return lam * gamma * float(np.mean(np.maximum(e, 0) ** 2 if one_sided else e**2))


@pytest.mark.parametrize("norm", [Lp(2), Lp(1.5), Sobolev(s=-1.5)], ids=str)
@pytest.mark.parametrize("one_sided", [True, False])
def test_value_against_a_brute_force_loop(norm, one_sided: bool) -> None:  # type: ignore[no-untyped-def]
    critic = ConvCritic().double()
    real, fake = images(6, torch.float64)
    q = quotients(critic, real, fake, norm)
    gamma = float(np.median(q))  # half of the pairs above gamma, half below
    penalty = FiniteDifferenceGP(norm, lam=3.0, gamma=gamma, one_sided=one_sided)
    got = penalty(critic, real, fake)
    expected = brute_force(critic, real, fake, norm, 3.0, gamma, one_sided)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    stats = penalty.stats
    assert stats is not None
    assert stats.frac_above_gamma.item() == pytest.approx(0.5)
    assert stats.quotient_max.item() == pytest.approx(q.max(), rel=1e-10)
    assert stats.quotient_mean.item() == pytest.approx(q.mean(), rel=1e-10)


def test_auto_lam_gamma_are_the_real_data_means() -> None:
    critic = ConvCritic().double()
    real, fake = images(6, torch.float64)
    norm = Lp(3)
    penalty = FiniteDifferenceGP(norm, lam="auto", gamma="auto", one_sided=False)
    got = penalty(critic, real, fake)
    flat = real.numpy().reshape(6, -1)
    lam = np.linalg.norm(flat, ord=3, axis=1).mean()
    gamma = np.linalg.norm(flat, ord=1.5, axis=1).mean()
    assert penalty.lam == pytest.approx(lam, rel=1e-6)
    assert penalty.gamma == pytest.approx(gamma, rel=1e-6)
    expected = brute_force(critic, real, fake, norm, lam, gamma, one_sided=False)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_scores_of_the_loss_are_reused_without_a_forward_pass() -> None:
    critic = ConvCritic()
    twin = copy.deepcopy(critic)
    real, fake = images(6)
    penalty = FiniteDifferenceGP(lam=10.0, gamma=0.1)
    expected = penalty(critic, real, fake)
    expected.backward()
    probe = Calls(twin)
    d_real, d_fake = probe(real), probe(fake)
    got = penalty(probe, real, fake, d_real=d_real, d_fake=d_fake)
    got.backward()
    assert probe.calls == 2
    torch.testing.assert_close(got, expected)
    assert_same_grads(twin, critic, rtol=1.3e-6, atol=1e-5)  # assert_close's float32 defaults


def test_needs_no_double_backward() -> None:
    real, fake = images(6)
    critic = FirstOrderCritic()
    FiniteDifferenceGP(gamma=1e-3)(critic, real, fake).backward()
    assert critic.lin.weight.grad is not None and critic.lin.weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="once_differentiable"):
        BanachGP(engine="autograd")(critic, real, fake).backward()


@pytest.mark.parametrize("pairs", ["real-interpolate", "interpolates"])
def test_interpolated_pairs(pairs: str) -> None:
    critic = ConvCritic().double()
    real, fake = images(6, torch.float64)
    torch.manual_seed(4)
    got = FiniteDifferenceGP(Lp(2), lam=2.0, gamma=0.01, pairs=pairs)(critic, real, fake)
    torch.manual_seed(4)
    eps = torch.rand(6, 1, 1, 1, dtype=torch.float64)
    y = eps * real + (1 - eps) * fake
    if pairs == "real-interpolate":
        x = real
    else:
        x = y
        eps = torch.rand(6, 1, 1, 1, dtype=torch.float64)
        y = eps * real + (1 - eps) * fake
    expected = brute_force(critic, x, y, Lp(2), 2.0, 0.01, one_sided=True)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_callable_pairs_and_the_distance_zero_guard() -> None:
    critic = ConvCritic().double()
    real, fake = images(6, torch.float64)
    # pairs 0..2 coincide (distance 0): they are left out of the mean
    ys = torch.cat([real[:3], fake[3:]])
    penalty = FiniteDifferenceGP(lam=1.0, gamma=0.01, pairs=lambda r, f: (r, ys))
    got = penalty(critic, real, fake)
    expected = brute_force(critic, real[3:], fake[3:], Lp(2), 1.0, 0.01, one_sided=True)
    assert torch.isfinite(got) and got.item() == pytest.approx(expected, rel=1e-10)
    same = FiniteDifferenceGP(pairs=lambda r, f: (r, r))(critic, real, fake)
    assert same.item() == 0.0


def test_gradcheck_in_the_critic_parameters() -> None:
    critic = ConvCritic(width=2).double()
    real, fake = images(3, torch.float64)
    penalty = FiniteDifferenceGP(Lp(3), lam=2.0, gamma=1e-3, one_sided=False)

    def value(*params: torch.Tensor) -> torch.Tensor:
        return penalty(functional(critic, params), real, fake)

    params = leaf_parameters(critic)
    assert gradcheck(value, params)


R, F = images(4, torch.float32)


@pytest.mark.parametrize(
    ("kwargs", "call", "error", "words"),
    [
        ({}, {"fake": None}, TypeError, "needs fake samples"),
        ({"pairs": "interpolates"}, {"fake": None}, TypeError, "pairs='interpolates' needs fake"),
        ({}, {"fake": F[:3]}, ValueError, "real has 4 samples and fake 3"),
        ({}, {"fake": F.double()}, ValueError, "dtype differs"),
        ({}, {"d_real": [1.0] * 4}, TypeError, "d_real must be a tensor of scores"),
        ({}, {"d_fake": torch.zeros(3)}, ValueError, "d_fake must hold one score per sample"),
        ({}, {"real": R.clone().fill_(float("nan"))}, ValueError, "NaN or inf"),
        ({"pairs": lambda r, f: r}, {}, TypeError, "must return a tuple (x, y)"),
        ({"pairs": lambda r, f: (r, f[:, :1])}, {}, ValueError, "like real's samples"),
    ],
)
def test_bad_calls_raise_and_change_nothing(kwargs, call, error, words: str) -> None:  # type: ignore[no-untyped-def]
    penalty = FiniteDifferenceGP(lam="auto", gamma="auto")
    penalty(ConvCritic(), R, F)
    for name, value in kwargs.items():  # a broken pairs callable, after a good call
        setattr(penalty, name, value)
    before = penalty.calibration.means.clone(), int(penalty.calibration.count), penalty.stats
    args = {"real": R, "fake": F} | call
    with pytest.raises(error) as info:
        penalty(ConvCritic(), **args)
    assert words in str(info.value)
    after = penalty.calibration.means, int(penalty.calibration.count), penalty.stats
    assert torch.equal(after[0], before[0]) and after[1:] == before[1:]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"pairs": "real-real"}, ValueError, "pairs must be one of"),
        ({"pairs": 3}, TypeError, "pairs must be a name or a callable"),
        ({"lam": -1.0}, ValueError, "lam must be in [0, inf)"),
        ({"gamma": 0.0}, ValueError, "gamma must be in (0, inf)"),
        ({"norm": "lp:q=3"}, ValueError, "Accepted forms"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        FiniteDifferenceGP(**kwargs)
    assert words in str(info.value)


def test_checkpoint_and_repr() -> None:
    penalty = FiniteDifferenceGP("lp:p=10", lam="auto", gamma="auto")
    penalty(ConvCritic(), R, F)
    restored = FiniteDifferenceGP("lp:p=10", lam="auto", gamma="auto")
    restored.load_state_dict(penalty.state_dict())
    assert restored.lam == penalty.lam
    with pytest.raises(RuntimeError, match="nothing was loaded"):
        FiniteDifferenceGP("l2", lam="auto", gamma="auto").load_state_dict(penalty.state_dict())
    assert "pairs='real-fake'" in repr(penalty) and "one_sided=True" in repr(penalty)


@settings(max_examples=30, deadline=None)
@given(p=st.sampled_from([1.0, 1.5, 2.0, 4.0, math.inf]), seed=st.integers(0, 2**16))
def test_quotients_of_a_linear_critic_never_exceed_its_lipschitz_constant(
    p: float, seed: int
) -> None:
    """D(x) = <w, x> is ||w||_q-Lipschitz in L^p (Hoelder): no quotient exceeds it, so the
    one-sided penalty vanishes at gamma = ||w||_q and not below the largest quotient."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(3 * 4 * 4, generator=gen, dtype=torch.float64)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ w

    real = torch.randn(5, 3, 4, 4, generator=gen, dtype=torch.float64)
    fake = torch.randn(5, 3, 4, 4, generator=gen, dtype=torch.float64)
    lipschitz = torch.linalg.vector_norm(w, ord=Lp(p).q).item()
    penalty = FiniteDifferenceGP(Lp(p), lam=1.0, gamma=lipschitz)
    assert penalty(critic, real, fake).item() == 0.0
    assert penalty.stats is not None
    largest = penalty.stats.quotient_max.item()
    assert largest <= lipschitz * (1 + 1e-12)
    below = FiniteDifferenceGP(Lp(p), lam=1.0, gamma=0.5 * largest)(critic, real, fake)
    assert below.item() > 0
