"""lipreg.losses against hand-written formulas (float64 values and gradients), their
properties, errors, and composition with every penalty in one line."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from conftest import ConvCritic, images
from lipreg import (
    BanachGP,
    BanachR1,
    BanachR1R2,
    BanachR2,
    FiniteDifferenceGP,
    Lazy,
    hinge_critic_loss,
    hinge_generator_loss,
    ns_critic_loss,
    ns_generator_loss,
    rpgan_critic_loss,
    rpgan_generator_loss,
    wgan_critic_loss,
    wgan_generator_loss,
)
from lipreg.losses import LOSSES


def log1pexp(t: float) -> float:
    """softplus(t) = log(1 + e^t), written out (stable for large |t|)."""
    return max(t, 0.0) + math.log1p(math.exp(-abs(t)))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


# Each loss as a plain-Python formula over lists of scores, independent of torch.
CRITIC: dict[str, Callable[[list[float], list[float]], float]] = {
    "wgan": lambda r, f: mean(f) - mean(r),
    "ns": lambda r, f: mean([log1pexp(-x) for x in r]) + mean([log1pexp(y) for y in f]),
    "hinge": lambda r, f: mean([max(0.0, 1 - x) for x in r]) + mean([max(0.0, 1 + y) for y in f]),
    "rpgan": lambda r, f: mean([log1pexp(-(x - y)) for x, y in zip(r, f, strict=True)]),
}
GENERATOR: dict[str, Callable[[list[float], list[float]], float]] = {
    "wgan": lambda r, f: -mean(f),
    "ns": lambda r, f: mean([log1pexp(-y) for y in f]),
    "hinge": lambda r, f: -mean(f),
    "rpgan": lambda r, f: mean([log1pexp(-(y - x)) for x, y in zip(r, f, strict=True)]),
}
FUNCTIONS = {
    "wgan": (wgan_critic_loss, wgan_generator_loss),
    "ns": (ns_critic_loss, ns_generator_loss),
    "hinge": (hinge_critic_loss, hinge_generator_loss),
    "rpgan": (rpgan_critic_loss, rpgan_generator_loss),
}


def scores(b: int, seed: int, scale: float = 3.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, generator=g, dtype=torch.float64) * scale).requires_grad_(True)


def numeric_grad(
    fn: Callable[[list[float]], float], x: list[float], h: float = 1e-6
) -> list[float]:
    """Central differences of a plain-Python function (hinge kinks avoided by the data)."""
    out = []
    for i in range(len(x)):
        up, down = list(x), list(x)
        up[i] += h
        down[i] -= h
        out.append((fn(up) - fn(down)) / (2 * h))
    return out


def generator_call(name: str, d_real: Tensor, d_fake: Tensor) -> Tensor:
    gen = FUNCTIONS[name][1]
    return gen(d_real, d_fake) if name == "rpgan" else gen(d_fake)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", list(CRITIC))
@pytest.mark.parametrize("shape", ["flat", "column"])
def test_values_and_gradients_equal_the_hand_written_formulas(name: str, shape: str) -> None:
    d_real, d_fake = scores(6, 1), scores(6, 2)
    r, f = d_real.tolist(), d_fake.tolist()
    as_given = (lambda t: t) if shape == "flat" else (lambda t: t.unsqueeze(1))
    for side, formula in (("critic", CRITIC[name]), ("generator", GENERATOR[name])):
        if side == "critic":
            value = FUNCTIONS[name][0](as_given(d_real), as_given(d_fake))
        else:
            value = generator_call(name, as_given(d_real), as_given(d_fake))
        assert value.shape == () and value.dtype == torch.float64
        assert value.item() == pytest.approx(formula(r, f), rel=1e-12, abs=1e-12)
        grads = torch.autograd.grad(value, (d_real, d_fake), allow_unused=True)
        expected_real = numeric_grad(lambda x: formula(x, f), r)  # noqa: B023
        expected_fake = numeric_grad(lambda y: formula(r, y), f)  # noqa: B023
        for got, expected in zip(grads, (expected_real, expected_fake), strict=True):
            got_list = [0.0] * len(r) if got is None else got.tolist()
            assert got_list == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("name", list(CRITIC))
def test_gradcheck(name: str) -> None:
    d_real, d_fake = scores(5, 3), scores(5, 4)
    critic, _ = FUNCTIONS[name]
    assert torch.autograd.gradcheck(critic, (d_real, d_fake))
    assert torch.autograd.gradcheck(lambda r, f: generator_call(name, r, f), (d_real, d_fake))


def test_registry_matches_the_functions() -> None:
    d_real, d_fake = scores(4, 5), scores(4, 6)
    for name, loss in LOSSES.items():
        assert loss.name == name
        assert torch.equal(loss.critic(d_real, d_fake), FUNCTIONS[name][0](d_real, d_fake))
        assert torch.equal(loss.generator(d_real, d_fake), generator_call(name, d_real, d_fake))
        if not loss.relativistic:  # D(real) is not read
            assert torch.equal(loss.generator(None, d_fake), generator_call(name, d_real, d_fake))
    assert [n for n, loss in LOSSES.items() if loss.relativistic] == ["rpgan"]
    with pytest.raises(TypeError, match="pass d_real"):
        LOSSES["rpgan"].generator(None, d_fake)


finite = st.floats(-30, 30, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=8), finite)
def test_properties(pairs: list[tuple[float, float]], shift: float) -> None:
    r = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    f = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    assert ns_critic_loss(r, f) >= 0 and hinge_critic_loss(r, f) >= 0
    # Relativistic losses see only differences; the generator's is the critic's mirrored.
    torch.testing.assert_close(rpgan_critic_loss(r + shift, f + shift), rpgan_critic_loss(r, f))
    assert torch.equal(rpgan_generator_loss(r, f), rpgan_critic_loss(f, r))
    # WGAN and the hinge generator share -E D(fake); the hinge is WGAN inside the margins.
    assert torch.equal(hinge_generator_loss(f), wgan_generator_loss(f))
    inside = (r.abs() < 1).all() and (f.abs() < 1).all()
    if inside:
        torch.testing.assert_close(hinge_critic_loss(r, f), 2 + wgan_critic_loss(r, f))


def test_ns_critic_loss_of_the_optimal_critic_is_log4_minus_twice_jsd() -> None:
    """Distributions on four points with masses p and q (in tenths), the optimal critic
    D* = log(p / q): the loss on samples in those proportions is log 4 - 2 JSD(p, q)."""
    p, q = [5, 3, 2, 0], [1, 2, 3, 4]

    def kl(a: list[int], b: list[int]) -> float:
        return sum(x / 10 * math.log(x / ((x + y) / 2)) for x, y in zip(a, b, strict=True) if x)

    jsd = (kl(p, q) + kl(q, p)) / 2
    d = [math.log(x / y) if x else -math.inf for x, y in zip(p, q, strict=True)]
    d_real = torch.tensor([d[i] for i in range(4) for _ in range(p[i])], dtype=torch.float64)
    d_fake = torch.tensor([d[i] for i in range(4) for _ in range(q[i])], dtype=torch.float64)
    value = ns_critic_loss(d_real, d_fake).item()
    assert value == pytest.approx(math.log(4) - 2 * jsd, rel=1e-12)


def test_half_precision_scores_are_computed_in_float32() -> None:
    d_real, d_fake = torch.randn(8).bfloat16(), torch.randn(8).bfloat16()
    for name in CRITIC:
        value = FUNCTIONS[name][0](d_real, d_fake)
        assert value.dtype == torch.float32
        expected = FUNCTIONS[name][0](d_real.float(), d_fake.float())
        assert torch.equal(value, expected)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ns_critic_loss(torch.randn(3).mean(), torch.randn(3)), ValueError, "0-dim"),
        (lambda: ns_critic_loss(torch.randn(3, 2), torch.randn(3)), ValueError, r"\[B, 1\]"),
        (lambda: ns_critic_loss([1.0, 2.0], torch.randn(3)), TypeError, "d_real"),  # type: ignore[arg-type]
        (lambda: hinge_critic_loss(torch.randn(3), torch.arange(3)), TypeError, "d_fake"),
        (lambda: wgan_generator_loss(torch.randn(0)), ValueError, "at least one"),
        (lambda: rpgan_critic_loss(torch.randn(3), torch.randn(4)), ValueError, "as many"),
        (lambda: rpgan_generator_loss(None, torch.randn(4)), TypeError, "d_real"),  # type: ignore[arg-type]
    ],
)
def test_bad_scores_are_refused_naming_the_argument(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


PENALTIES = {
    "BanachGP": lambda: BanachGP("sobolev:s=-1"),
    "one-sided": lambda: BanachGP("lp:p=4", one_sided=True),
    "FiniteDifferenceGP": lambda: FiniteDifferenceGP("l2"),
    "BanachR1": lambda: BanachR1("sobolev:s=1", gamma=1.0),
    "BanachR2": lambda: BanachR2("l2", gamma=1.0),
    "BanachR1R2": lambda: BanachR1R2("lp:p=3", gamma=1.0),
    "Lazy": lambda: Lazy(BanachR1R2("l2", gamma=1.0), every=1),
}


@pytest.mark.parametrize("name", list(CRITIC))
@pytest.mark.parametrize("penalty", list(PENALTIES))
def test_every_loss_composes_with_every_penalty_in_one_line(name: str, penalty: str) -> None:
    torch.manual_seed(0)
    critic = ConvCritic()
    real, fake = images(4)
    reg = PENALTIES[penalty]()
    d_loss = LOSSES[name].critic(critic(real), critic(fake)) + reg(critic, real, fake)
    assert d_loss.shape == () and torch.isfinite(d_loss)
    d_loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())
