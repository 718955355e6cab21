"""BanachGP: the paper's formula, the WGAN-GP special case, derivative modes and engines,
double backward, mixed precision and statistics."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

from conftest import (
    ConvCritic,
    assert_same_grads,
    brute_force_per_sample,
    dense_filter,
    functional,
    images,
    leaf_parameters,
    mlp,
    wgan_gp,
)
from lipreg import L2, BanachGP, BanachR1, Lp, Sobolev, input_gradient, parse_norm


@pytest.mark.parametrize("make", [BanachGP, lambda: BanachGP(L2(), lam=10.0, gamma=1.0)])
def test_l2_reproduces_hand_written_wgan_gp(make) -> None:  # type: ignore[no-untyped-def]
    critic = ConvCritic()
    twin = copy.deepcopy(critic)
    real, fake = images(8)
    torch.manual_seed(7)
    expected = wgan_gp(critic, real, fake)
    expected.backward()
    torch.manual_seed(7)
    got = make()(twin, real, fake)
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert_same_grads(twin, critic, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("norm", [Lp(10), Sobolev(s=-1.5), Sobolev(s=1.0, p=3.0)], ids=str)
@pytest.mark.parametrize("one_sided", [False, True])
def test_value_is_lam_gamma_times_the_papers_term(norm, one_sided: bool) -> None:  # type: ignore[no-untyped-def]
    """lam * gamma * E[(||dD||_* / gamma - 1)^2] with lam, gamma the real-data means, each
    piece computed independently (NumPy norms on the dense filter, autograd gradient)."""
    critic = ConvCritic().double()
    real, fake = images(8, torch.float64)
    x_hat = 0.3 * real + 0.7 * fake
    penalty = BanachGP(
        norm, lam="auto", gamma="auto", sampling=lambda r, f: x_hat, one_sided=one_sided
    )
    got = penalty(critic, real, fake)

    t = dense_filter(norm, (3, 8, 8))
    t_dual = dense_filter(norm, (3, 8, 8), dual=True)
    flat = real.numpy().reshape(8, -1)
    lam = np.linalg.norm(flat @ t.T, ord=norm.p, axis=1).mean()
    gamma = np.linalg.norm(flat @ t_dual.T, ord=norm.q, axis=1).mean()
    x = x_hat.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    dual = np.linalg.norm(g.numpy().reshape(8, -1) @ t_dual.T, ord=norm.q, axis=1)
    excess = dual / gamma - 1
    if one_sided:
        excess = np.maximum(excess, 0)
    # lam and gamma are running means kept in float32 buffers
    assert got.item() == pytest.approx(lam * gamma * np.mean(excess**2), rel=1e-6)
    assert penalty.lam == pytest.approx(lam, rel=1e-6)
    assert penalty.gamma == pytest.approx(gamma, rel=1e-6)


def test_one_sided_ignores_gradients_below_gamma() -> None:
    critic = lambda x: 0.1 * x.flatten(1).sum(1)  # noqa: E731 - ||grad||_2 = 0.1 sqrt(192) > 1
    real, fake = images(8)
    two = BanachGP(gamma=1.0)(critic, real, fake)
    one = BanachGP(gamma=1.0, one_sided=True)(critic, real, fake)
    assert two.item() == pytest.approx(one.item())
    small = BanachGP(gamma=2.0, one_sided=True)(critic, real, fake)  # 0.1 sqrt(192) < 2
    assert small.item() == 0.0


class Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(3 * 8 * 8)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return self.net(x)


@pytest.mark.parametrize("sampling", ["real", "fake", "interpolate", "custom"])
def test_sampling(sampling: str) -> None:
    real, fake = images(8)
    critic = Recorder()
    received = {}

    def custom(r: torch.Tensor, f: torch.Tensor | None) -> torch.Tensor:
        received.update(real=r, fake=f)
        return torch.cat([r, f])

    penalty = BanachGP(sampling=custom if sampling == "custom" else sampling)
    torch.manual_seed(3)
    penalty(critic, real.requires_grad_(True), fake)
    (seen,) = critic.seen
    if sampling == "real":
        torch.testing.assert_close(seen, real.detach())
    elif sampling == "fake":
        torch.testing.assert_close(seen, fake)
    elif sampling == "custom":
        assert not received["real"].requires_grad  # inputs arrive detached
        assert seen.shape[0] == 16
    else:
        torch.manual_seed(3)
        eps = torch.rand(8, 1, 1, 1)
        torch.testing.assert_close(seen, eps * real.detach() + (1 - eps) * fake)
        assert ((eps > 0) & (eps < 1)).all()


def test_real_sampling_needs_no_fakes_and_real_gets_no_gradient() -> None:
    real, _ = images(8)
    real.requires_grad_(True)
    critic = ConvCritic()
    BanachGP(sampling="real")(critic, real).backward()
    assert real.grad is None
    assert critic.conv1.weight.grad is not None and critic.head.weight.grad is not None


def test_conditional_critic_receives_its_arguments() -> None:
    class Conditional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 3 * 8 * 8)
            self.net = mlp(3 * 8 * 8)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return self.net(x * self.embed(labels).view_as(x))

    critic = Conditional()
    real, fake = images(8)
    labels = torch.randint(0, 10, (8,))
    x_hat = 0.5 * (real + fake)
    got = BanachGP(sampling=lambda r, f: x_hat)(critic, real, fake, labels=labels)
    x = x_hat.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x, labels).sum(), x)
    assert got.item() == pytest.approx(
        10 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean().item(), rel=1e-5
    )


# ---------------------------------------------------------------- per-sample derivatives


class Coupled(nn.Module):
    """Couples samples through the batch mean, like batch statistics do."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(3 * 8 * 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - 0.8 * x.mean(dim=0, keepdim=True))


@pytest.mark.parametrize("engine", ["func", "autograd"])
def test_per_sample_equals_batched_on_independent_critic(engine: str) -> None:
    critic = ConvCritic().double()
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    batched = input_gradient(critic, x, engine=engine)  # type: ignore[arg-type]
    per_sample = input_gradient(critic, x, per_sample=True, engine=engine, chunk_size=4)  # type: ignore[arg-type]
    torch.testing.assert_close(per_sample, batched)
    torch.testing.assert_close(batched, brute_force_per_sample(critic, x))


@pytest.mark.parametrize("engine", ["func", "autograd"])
def test_per_sample_is_right_on_batch_coupled_critic(engine: str) -> None:
    critic = Coupled().double()
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    truth = brute_force_per_sample(critic, x)
    per_sample = input_gradient(critic, x, per_sample=True, engine=engine)  # type: ignore[arg-type]
    batched = input_gradient(critic, x, engine=engine)  # type: ignore[arg-type]
    torch.testing.assert_close(per_sample, truth)
    assert (batched - truth).abs().max() > 1e-3  # the summed vjp mixes in other samples' terms
    real, fake = x, torch.randn_like(x)
    sampler = lambda r, f: x  # noqa: E731
    a = BanachGP(sampling=sampler, per_sample=True)(critic, real, fake)
    b = BanachGP(sampling=sampler)(critic, real, fake)
    expected = 10 * ((truth.flatten(1).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(a, expected)
    assert not torch.allclose(b, expected)


def bn_critic() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.Softplus(),
        nn.Flatten(),
        nn.Linear(256, 1),
    )


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("engine", ["func", "autograd"])
def test_batchnorm_critic_in_training_mode(per_sample: bool, engine: str) -> None:
    critic = bn_critic().double().train()
    reference = copy.deepcopy(critic)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    bn = critic[1]
    stats_before = (bn.running_mean.clone(), bn.num_batches_tracked.clone())
    g = input_gradient(critic, x, per_sample=per_sample, engine=engine)  # type: ignore[arg-type]
    # batch statistics were used (as in training), running statistics were left alone
    assert torch.equal(bn.running_mean, stats_before[0])
    assert torch.equal(bn.num_batches_tracked, stats_before[1])
    assert bn.track_running_stats
    if per_sample:
        torch.testing.assert_close(g, brute_force_per_sample(reference, x))
    else:
        z = x.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(reference(z).sum(), z)
        torch.testing.assert_close(g, expected)


def test_batchnorm_critic_matches_wgan_gp_through_bound_method_and_partial() -> None:
    critic = bn_critic().train()
    twin = copy.deepcopy(critic)
    real, fake = images(8)
    torch.manual_seed(1)
    expected = wgan_gp(critic, real, fake)
    torch.manual_seed(1)
    got = BanachGP()(twin.forward, real, fake)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    expected.backward()
    got.backward()
    assert_same_grads(twin, critic, rtol=1e-4, atol=1e-6)


class OldStyleDouble(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def, override]
        return 2 * x

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        return 2 * grad


def test_old_style_autograd_function_needs_the_autograd_engine() -> None:
    net = ConvCritic()
    critic = lambda x: net(OldStyleDouble.apply(x))  # noqa: E731
    real, fake = images(8)
    with pytest.raises(RuntimeError, match="engine='autograd'"):
        BanachGP()(critic, real, fake)
    torch.manual_seed(2)
    got = BanachGP(engine="autograd")(critic, real, fake)
    torch.manual_seed(2)
    expected = BanachGP()(lambda x: net(2 * x), real, fake)
    torch.testing.assert_close(got, expected)


def test_mutating_closure_gets_an_explanation() -> None:
    net = bn_critic().train()
    with pytest.raises(RuntimeError, match=r"nn\.Module"):
        BanachGP()(lambda x: net(x), *images(8))


# ---------------------------------------------------------------- double backward


@pytest.mark.parametrize(
    ("norm", "per_sample"),
    [(L2(), False), (Lp(3), False), (Sobolev(s=-1.5), False), (Sobolev(s=1.0, p=3.0), True)],
    ids=str,
)
def test_gradcheck_and_gradgradcheck_through_the_penalty(norm, per_sample: bool) -> None:  # type: ignore[no-untyped-def]
    critic = ConvCritic(width=2).double()
    real, fake = images(4, torch.float64)
    x_hat = 0.4 * real + 0.6 * fake
    penalty = BanachGP(norm, lam=2.0, gamma=0.5, sampling=lambda r, f: x_hat, per_sample=per_sample)

    def value(*params: torch.Tensor) -> torch.Tensor:
        return penalty(functional(critic, params), real, fake)

    params = leaf_parameters(critic)
    assert gradcheck(value, params)
    assert gradgradcheck(value, params)


# ---------------------------------------------------------------- precision


def test_grad_scaler_prevents_float16_underflow() -> None:
    def critic(x: torch.Tensor) -> torch.Tensor:
        # float16 backward: each entry's gradient, 1e-4 * 1e-4, underflows to zero unscaled
        return ((x.half() * 1e-4) * 1e-4).flatten(1).sum(1)

    real, _ = images(8)
    expected = 1e-8 * math.sqrt(3 * 8 * 8)
    plain = BanachGP(sampling="real", check_finite=False)
    plain(critic, real)
    assert plain.stats is not None and plain.stats.dual_norm_mean.item() == 0.0
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    scaled = BanachGP(sampling="real", grad_scaler=scaler)
    value = scaled(critic, real)
    assert scaled.stats is not None
    assert scaled.stats.dual_norm_mean.item() == pytest.approx(expected, rel=2e-3)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(10 * (expected - 1) ** 2, rel=1e-6)


SCALED = [
    lambda scaler: BanachGP(grad_scaler=scaler),
    lambda scaler: BanachGP(per_sample=True, engine="autograd", grad_scaler=scaler),
    lambda scaler: BanachR1(grad_scaler=scaler),
]


@pytest.mark.parametrize("make", SCALED, ids=["gp", "gp-per-sample-autograd", "r1"])
def test_default_grad_scaler_under_float16_autocast(make) -> None:  # type: ignore[no-untyped-def]
    """torch.amp.GradScaler with its defaults (initial scale 2^16, which float16 cannot hold)
    under a real float16 autocast (CPU): the first penalty is finite and close to the float32
    one, and the scaler's step keeps the scale (it found no inf or NaN gradient)."""
    critic = ConvCritic()
    real, fake = images(8)
    torch.manual_seed(3)
    exact = make(None)(critic, real, fake)
    scaler = torch.amp.GradScaler("cpu")
    assert scaler.get_scale() == 2.0**16
    penalty = make(scaler)
    torch.manual_seed(3)
    with torch.autocast("cpu", dtype=torch.float16):
        assert critic(real).dtype == torch.float16  # a float16 forward and backward
        value = penalty(critic, real, fake)
    assert value.item() == pytest.approx(exact.item(), rel=1e-2)
    optimizer = torch.optim.SGD(critic.parameters(), lr=1e-3)
    scaler.scale(value).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 2.0**16


def test_autocast_norms_in_float32() -> None:
    critic = ConvCritic()
    real, fake = images(8)
    torch.manual_seed(4)
    exact = BanachGP(Sobolev(s=-1.5), lam="auto", gamma="auto")(critic, real, fake)
    torch.manual_seed(4)
    penalty = BanachGP(Sobolev(s=-1.5), lam="auto", gamma="auto")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = penalty(critic, real, fake)
    assert mixed.dtype == torch.float32
    assert penalty.stats is not None and penalty.stats.dual_norm_mean.dtype == torch.float32
    assert mixed.item() == pytest.approx(exact.item(), rel=0.05)


# ---------------------------------------------------------------- statistics and repr


def test_stats_after_a_call() -> None:
    critic = ConvCritic()
    real, fake = images(8)
    x_hat = 0.5 * (real + fake)
    penalty = BanachGP(Lp(4), lam=3.0, gamma="auto", sampling=lambda r, f: x_hat)
    assert penalty.stats is None
    value = penalty(critic, real, fake)
    x = x_hat.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    dual = np.linalg.norm(g.numpy().reshape(8, -1), ord=4 / 3, axis=1)
    gamma = np.linalg.norm(real.numpy().reshape(8, -1), ord=4 / 3, axis=1).mean()
    stats = penalty.stats
    assert stats is not None
    assert not any(t.requires_grad for t in vars(stats).values())
    d = stats.as_dict()
    assert d["penalty"] == pytest.approx(value.item())
    assert d["dual_norm_mean"] == pytest.approx(dual.mean(), rel=1e-5)
    assert d["dual_norm_max"] == pytest.approx(dual.max(), rel=1e-5)
    assert d["frac_above_gamma"] == pytest.approx(np.mean(dual > gamma))
    assert d["lam"] == 3.0 and d["gamma"] == pytest.approx(gamma, rel=1e-5)


def test_repr_and_text_specs() -> None:
    penalty = BanachGP("sobolev:s=-1.5", lam="auto", gamma="auto")
    assert penalty.norm == Sobolev(s=-1.5)
    text = repr(penalty)
    assert "W^{-1.5,2}" in text and "B* = W^{1.5,2}" in text and "lam='auto'" in text
    assert parse_norm(penalty.norm.spec) == penalty.norm
