"""BanachR1 / BanachR2 / BanachR1R2: StyleGAN2's R1 and R3GAN's R1 + R2 exactly for L2, the
formula in other norms against independent dense computations, gradcheck, per-sample
derivatives, errors, statistics."""

from __future__ import annotations

import copy

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
)
from lipreg import L2, BanachR1, BanachR1R2, BanachR2, Lazy, Lp, R1R2Stats, Sobolev


def stylegan2_r1(critic: nn.Module, real: torch.Tensor, r1_gamma: float) -> torch.Tensor:
    """StyleGAN2-ADA's loss_Dr1 (training/loss.py), averaged over the batch as its
    ``loss_Dr1.mean()`` does."""
    real_img_tmp = real.detach().requires_grad_(True)
    real_logits = critic(real_img_tmp)
    (r1_grads,) = torch.autograd.grad(
        outputs=[real_logits.sum()], inputs=[real_img_tmp], create_graph=True
    )
    r1_penalty = r1_grads.square().sum([1, 2, 3])
    loss_dr1 = r1_penalty * (r1_gamma / 2)
    return loss_dr1.mean()


@pytest.mark.parametrize("engine", ["func", "autograd"])
@pytest.mark.parametrize("r1_gamma", [10.0, 0.2])
def test_l2_r1_equals_stylegan2(engine: str, r1_gamma: float) -> None:
    critic = ConvCritic()
    twin = copy.deepcopy(critic)
    real, _ = images(6)
    expected = stylegan2_r1(critic, real, r1_gamma)
    expected.backward()
    got = BanachR1(L2(), gamma=r1_gamma, engine=engine)(twin, real)  # type: ignore[arg-type]
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert_same_grads(twin, critic, rtol=1e-5, atol=1e-8, without_grad=["head.bias"])


def test_l2_r2_is_r1_on_the_fakes() -> None:
    critic = ConvCritic()
    twin = copy.deepcopy(critic)
    real, fake = images(6)
    expected = stylegan2_r1(critic, fake, 3.0)
    expected.backward()
    got = BanachR2("l2", gamma=3.0)(twin, real, fake)
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert_same_grads(twin, critic, rtol=1e-5, atol=1e-8, without_grad=["head.bias"])


@pytest.mark.parametrize("norm", [Lp(1.5), Lp(float("inf")), Sobolev(s=-1.5), Sobolev(1.0, p=3)])
@pytest.mark.parametrize("which", ["r1", "r2"])
def test_value_in_other_norms_against_dense_duals(norm, which: str) -> None:  # type: ignore[no-untyped-def]
    critic = ConvCritic().double()
    real, fake = images(6, torch.float64)
    penalty = BanachR1(norm, gamma=4.0) if which == "r1" else BanachR2(norm, gamma=4.0)
    got = penalty(critic, real, fake)
    x = (real if which == "r1" else fake).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    t_dual = dense_filter(norm, (3, 8, 8), dual=True)
    dual = np.linalg.norm(g.numpy().reshape(6, -1) @ t_dual.T, ord=norm.q, axis=1)
    assert got.item() == pytest.approx(2.0 * np.mean(dual**2), rel=1e-10)
    stats = penalty.stats
    assert stats is not None
    d = stats.as_dict()
    assert d["penalty"] == pytest.approx(got.item())
    assert d["dual_norm_mean"] == pytest.approx(dual.mean(), rel=1e-10)
    assert d["dual_norm_max"] == pytest.approx(dual.max(), rel=1e-10)
    assert d["gamma"] == 4.0


@pytest.mark.parametrize("norm", [L2(), Lp(3)], ids=str)
def test_gradcheck_and_gradgradcheck(norm) -> None:  # type: ignore[no-untyped-def]
    critic = ConvCritic(width=2).double()
    real, _ = images(3, torch.float64)
    penalty = BanachR1(norm, gamma=2.0)

    def value(*params: torch.Tensor) -> torch.Tensor:
        return penalty(functional(critic, params), real)

    params = leaf_parameters(critic)
    assert gradcheck(value, params)
    assert gradgradcheck(value, params)


def test_per_sample_on_a_batch_coupled_critic() -> None:
    """Minibatch-mean coupling: the per-sample derivative differs from the batched one and
    matches a brute-force loop over samples."""

    def critic(x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return (flat * flat.mean(0, keepdim=True)).sum(1) + flat.square().sum(1)

    real, _ = images(4, torch.float64)
    got = BanachR1(gamma=2.0, per_sample=True)(critic, real)
    batched = BanachR1(gamma=2.0)(critic, real)
    expected = brute_force_per_sample(critic, real).square().flatten(1).sum(1).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    assert abs(got.item() - batched.item()) > 1e-3


def test_zero_gradient_has_zero_penalty_and_finite_parameter_gradients() -> None:
    """ReLU critic dead on the data: ||g|| = 0 exactly, and the double backward stays finite."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(192, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        critic[1].bias.fill_(-100.0)
    value = BanachR1(Lp(3))(critic, images(6)[0])
    value.backward()
    assert value.item() == 0.0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in critic.parameters())


def test_conditional_critic_receives_its_arguments() -> None:
    labels = torch.arange(6)
    seen = {}

    def critic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen["y"] = y
        return x.flatten(1).sum(1) * (y + 1)

    value = BanachR1(gamma=2.0)(critic, images(6)[0], y=labels)
    assert seen["y"] is labels
    # ||g||^2 = 192 (y + 1)^2, times gamma / 2 = 1
    expected = (192 * (labels + 1.0) ** 2).mean()
    assert value.item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: BanachR1(gamma=-1.0), ValueError, "gamma must be in [0, inf)"),
        (lambda: BanachR1(gamma="auto"), TypeError, "gamma must be a real number"),
        (lambda: BanachR2(gamma=float("nan")), ValueError, "gamma must be in"),
        (lambda: BanachR1(norm="lp:q=2"), ValueError, "Accepted forms"),
        (lambda: BanachR1(engine="jax"), ValueError, "engine must be 'func' or 'autograd'"),
        (lambda: BanachR1(chunk_size=0), ValueError, "chunk_size must be a positive integer"),
    ],
)
def test_bad_constructor_arguments(make, error, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_bad_calls_raise_and_keep_the_last_stats() -> None:
    r1, r2 = BanachR1(), BanachR2()
    real, fake = images(6)
    critic = ConvCritic()
    r1(critic, real)
    r2(critic, real, fake)
    before = r1.stats, r2.stats
    with pytest.raises(TypeError, match="BanachR2 penalises the gradient on generated"):
        r2(critic, real)
    with pytest.raises(ValueError, match="dtype differs"):
        r1(critic, real, fake.double())
    with pytest.raises(TypeError, match="critic must be callable"):
        r1("critic", real)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN or inf"):
        r1(critic, real.clone().fill_(float("nan")))
    assert (r1.stats, r2.stats) == before


def test_checkpoint_records_the_norm() -> None:
    state = BanachR1(Lp(10)).state_dict()
    BanachR1(Lp(10)).load_state_dict(state)
    with pytest.raises(RuntimeError, match=r"nothing was loaded: .*saved for norm 'lp:p=10'"):
        BanachR1(L2()).load_state_dict(state)


def test_repr() -> None:
    text = repr(BanachR2("sobolev:s=-1.5", gamma=0.5))
    assert text.startswith("BanachR2(") and "gamma=0.5" in text and "W^{-1.5,2}" in text


def r3gan_r1_r2(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gamma: float
) -> torch.Tensor:
    """R3GAN's zero-centred penalties as its paper writes them: per sample
    ``||grad D(x_real)||^2`` and ``||grad D(x_fake)||^2`` from one critic evaluation of each
    batch, ``(gamma / 2) (R1 + R2)`` averaged over the batch."""
    norms = []
    for x in (real, fake):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        norms.append(g.square().sum([1, 2, 3]))
    return ((gamma / 2) * (norms[0] + norms[1])).mean()


@pytest.mark.parametrize("engine", ["func", "autograd"])
def test_l2_r1r2_equals_r3gans_penalty(engine: str) -> None:
    critic = ConvCritic()
    twin = copy.deepcopy(critic)
    real, fake = images(6)
    expected = r3gan_r1_r2(critic, real, fake, 0.05)
    expected.backward()
    got = BanachR1R2("l2", gamma=0.05, engine=engine)(twin, real, fake)  # type: ignore[arg-type]
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert_same_grads(twin, critic, rtol=1e-5, atol=1e-8, without_grad=["head.bias"])


@pytest.mark.parametrize("norm", [Sobolev(s=1.0), Lp(3)], ids=str)
def test_r1r2_is_r1_plus_r2_with_both_terms_in_its_stats(norm) -> None:  # type: ignore[no-untyped-def]
    critic = ConvCritic().double()
    real, fake = images(5, torch.float64)
    fake = fake[:3]  # batches of different sizes: each term is its own batch's mean
    r1, r2, both = BanachR1(norm, 3.0), BanachR2(norm, 3.0), BanachR1R2(norm, 3.0)
    value = both(critic, real, fake)
    parts = r1(critic, real), r2(critic, real, fake)
    torch.testing.assert_close(value, parts[0] + parts[1], rtol=1e-12, atol=0)
    stats = both.stats
    assert isinstance(stats, R1R2Stats) and r1.stats is not None and r2.stats is not None
    assert stats.as_dict()["r1"] == pytest.approx(parts[0].item(), rel=1e-12)
    assert stats.as_dict()["r2"] == pytest.approx(parts[1].item(), rel=1e-12)
    assert stats.as_dict()["penalty"] == pytest.approx(value.item(), rel=1e-12)
    assert float(stats.dual_norm_max) == max(
        float(r1.stats.dual_norm_max), float(r2.stats.dual_norm_max)
    )
    mean = (5 * float(r1.stats.dual_norm_mean) + 3 * float(r2.stats.dual_norm_mean)) / 8
    assert float(stats.dual_norm_mean) == pytest.approx(mean, rel=1e-12)


def test_r1r2_evaluates_the_critic_on_each_batch_alone() -> None:
    """A critic with a batch statistic: R1 + R2 sees the real and the generated batch
    separately (as R3GAN evaluates D), not their concatenation."""

    def critic(x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return ((flat - flat.mean(0, keepdim=True)) ** 3).sum(1)

    real, fake = images(4, torch.float64)
    got = BanachR1R2(gamma=2.0)(critic, real, fake)
    separate = BanachR1(gamma=2.0)(critic, real) + BanachR2(gamma=2.0)(critic, real, fake)
    assert got.item() == pytest.approx(separate.item(), rel=1e-12)
    both = torch.cat([real, fake])
    together = BanachR1(gamma=2.0)(critic, both) * 2  # the mean over 8 points, times 2
    assert abs(got.item() - together.item()) > 1e-3 * got.item()


def test_r1r2_needs_the_fakes_and_keeps_its_stats_on_refusal() -> None:
    penalty, critic = BanachR1R2(), ConvCritic()
    real, fake = images(4)
    penalty(critic, real, fake)
    before = penalty.stats
    with pytest.raises(TypeError, match="BanachR1R2 penalises the gradient on real and on"):
        penalty(critic, real)
    with pytest.raises(ValueError, match="NaN or inf"):
        penalty(critic, real, fake.clone().fill_(float("inf")))
    assert penalty.stats is before


def test_gamma_is_a_checked_weight_that_may_be_reassigned() -> None:
    """A schedule sets gamma between calls; a bad value is refused and changes nothing."""
    critic, (real, fake) = ConvCritic(), images(4)
    penalty = BanachR1R2("l2", gamma=2.0)
    halved = BanachR1R2("l2", gamma=1.0)(critic, real, fake)
    penalty.gamma = 1.0
    assert penalty.gamma == 1.0 and torch.equal(penalty(critic, real, fake), halved)
    for bad, error in ((-0.5, ValueError), (float("inf"), ValueError), ("auto", TypeError)):
        with pytest.raises(error, match="gamma"):
            penalty.gamma = bad  # type: ignore[assignment]
        assert penalty.gamma == 1.0
    lazy = Lazy(BanachR1R2("sobolev:s=-1", gamma=0.5), every=2)
    assert lazy(critic, real, fake).requires_grad and not lazy(critic, real, fake).requires_grad
    assert "gamma=0.5" in repr(lazy) and "BanachR1R2(" in repr(lazy)
