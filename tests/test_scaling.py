"""scale_by_gamma: D = gamma * f is the paper's objective in another parametrisation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import ConvCritic, assert_same_grads, images
from lipreg import BanachGP, BanachR1, FiniteDifferenceGP, Lazy, Sobolev, scale_by_gamma


def calibrated(real: torch.Tensor, **kwargs: object) -> BanachGP:
    penalty = BanachGP(norm=Sobolev(s=-1.5), lam="auto", gamma="auto", **kwargs).double()
    return penalty.calibrate([real])


def critic_loss(
    critic: nn.Module, penalty: nn.Module, real: torch.Tensor, fake: torch.Tensor, seed: int
) -> torch.Tensor:
    torch.manual_seed(seed)  # the same interpolation weights for both parametrisations
    return critic(fake).mean() - critic(real).mean() + penalty(critic, real, fake)


def test_scaled_critic_loss_is_gamma_times_the_unit_loss_of_f() -> None:
    real, fake = images(6, torch.float64)
    penalty = calibrated(real)
    gamma, lam = penalty.gamma, penalty.lam
    assert gamma > 5  # far from 1, so the test can tell the parametrisations apart
    f = ConvCritic().double()
    scaled = copy.deepcopy(f)
    handle = scale_by_gamma(scaled, penalty)
    assert float(handle.gamma) == pytest.approx(gamma)
    torch.testing.assert_close(scaled(real), gamma * f(real))

    loss = critic_loss(scaled, penalty, real, fake, seed=1)
    unit = BanachGP(norm=Sobolev(s=-1.5), lam=lam, gamma=1.0).double()
    unit_loss = critic_loss(f, unit, real, fake, seed=1)
    torch.testing.assert_close(loss, gamma * unit_loss, rtol=1e-12, atol=1e-12)
    loss.backward()
    (gamma * unit_loss).backward()
    assert_same_grads(scaled, f, rtol=1e-10, atol=1e-12)

    # the penalty by hand: lam gamma E[(||d(gamma f)||_* / gamma - 1)^2] at the same points
    torch.manual_seed(1)
    eps = torch.rand(6, 1, 1, 1, dtype=torch.float64)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(gamma * f(x_hat).sum(), x_hat)
    expected = lam * gamma * (Sobolev(s=-1.5).dual(g) / gamma - 1).square().mean()
    torch.manual_seed(1)
    torch.testing.assert_close(penalty(scaled, real, fake), expected, rtol=1e-10, atol=1e-12)


def test_adam_on_the_scaled_critic_follows_the_unit_run() -> None:
    """Gradients gamma times larger change Adam's step only through eps, so the scaled run is
    the gamma = 1 run of f with eps / gamma, step for step."""
    real, fake = images(6, torch.float64)
    penalty = calibrated(real)
    gamma = penalty.gamma
    f = ConvCritic().double()
    scaled, plain = copy.deepcopy(f), copy.deepcopy(f)
    scale_by_gamma(scaled, penalty)
    unit = BanachGP(norm=Sobolev(s=-1.5), lam=penalty.lam, gamma=1.0).double()
    runs = (
        (scaled, penalty, torch.optim.Adam(scaled.parameters(), lr=1e-2, eps=1e-8)),
        (f, unit, torch.optim.Adam(f.parameters(), lr=1e-2, eps=1e-8 / gamma)),
        # the network itself as D under the same gamma = auto loss: another trajectory
        (plain, penalty, torch.optim.Adam(plain.parameters(), lr=1e-2, eps=1e-8)),
    )
    for step in range(8):
        for critic, pen, opt in runs:
            opt.zero_grad()
            critic_loss(critic, pen, real, fake, seed=step).backward()
            opt.step()
    for p, q in zip(scaled.parameters(), f.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)
    moved = [(p - q).abs().max() for p, q in zip(plain.parameters(), f.parameters(), strict=True)]
    assert max(moved) > 1e-3


def test_running_estimates_may_move_between_forward_and_backward() -> None:
    real, fake = images(6)
    penalty = BanachGP(norm=Sobolev(s=-1.5), lam="auto", gamma="auto")
    penalty.calibrate([real], freeze=False)
    critic = ConvCritic()
    handle = scale_by_gamma(critic, penalty)
    before = float(handle.gamma)
    loss = critic_loss(critic, penalty, real * 2, fake, seed=0)  # commits a new estimate
    loss.backward()  # the factor used in the forward was a copy
    assert float(handle.gamma) != before
    assert all(p.grad is not None for p in critic.parameters())


def test_engines_and_per_sample_see_the_scaled_critic() -> None:
    real, fake = images(4)
    base = ConvCritic()
    results = []
    for kwargs in ({}, {"engine": "autograd"}, {"per_sample": True}):
        critic = copy.deepcopy(base)
        penalty = calibrated(real.double(), **kwargs).float()
        scale_by_gamma(critic, penalty)
        torch.manual_seed(0)
        results.append(penalty(critic, real, fake))
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[2], results[0], rtol=1e-5, atol=1e-6)


def test_sources_of_gamma() -> None:
    real, _ = images(4)
    x = torch.randn(3, 3, 8, 8)
    critic = ConvCritic()
    plain = critic(x)
    handle = scale_by_gamma(critic, 2.5)
    torch.testing.assert_close(critic(x), 2.5 * plain)
    assert critic(x).shape == plain.shape == (3, 1)
    handle.remove()
    torch.testing.assert_close(critic(x), plain)
    for source, gamma in (
        (BanachGP(gamma=3.0), 3.0),
        (Lazy(BanachGP(gamma=4.0), every=2), 4.0),
        (FiniteDifferenceGP(norm="l2", lam=1.0, gamma=5.0), 5.0),
        (Lazy(calibrated(real.double()).float(), every=4), calibrated(real.double()).gamma),
    ):
        handle = scale_by_gamma(critic, source)
        torch.testing.assert_close(critic(x), gamma * plain, rtol=1e-6, atol=1e-6)
        handle.remove()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        handle = scale_by_gamma(critic, 3.0)
        assert critic(x).dtype == torch.bfloat16
        handle.remove()


def test_bad_sources_are_refused_and_leave_the_critic_alone() -> None:
    critic = ConvCritic()
    x = torch.randn(2, 3, 8, 8)
    plain = critic(x)
    cases = [
        (BanachR1(), TypeError, "weight, not a Lipschitz constant"),
        (0.0, ValueError, "finite number > 0"),
        (float("inf"), ValueError, "finite number > 0"),
        (True, TypeError, "number > 0 or a penalty"),
        ("auto", TypeError, "number > 0 or a penalty"),
    ]
    for source, error, message in cases:
        with pytest.raises(error, match=message):
            scale_by_gamma(critic, source)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"must be an nn\.Module"):
        scale_by_gamma(lambda t: t.sum(1), 2.0)  # type: ignore[arg-type]
    torch.testing.assert_close(critic(x), plain)
    # gamma="auto" needs an estimate before the critic's first forward
    penalty = BanachGP(norm=Sobolev(s=-1.5), lam="auto", gamma="auto")
    handle = scale_by_gamma(critic, penalty)
    with pytest.raises(RuntimeError, match=r"penalty.calibrate\(real_batches\)"):
        critic(x)
    handle.remove()
    torch.testing.assert_close(critic(x), plain)
