"""NaN and inf: check_finite covers the inputs and the returned value of every penalty, a
GradScaler-skipped batch does not poison the running estimates, and estimate_lipschitz
certifies nothing from non-finite values."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from conftest import Calls, images
from lipreg import (
    BanachGP,
    BanachR1,
    BanachR2,
    FiniteDifferenceGP,
    Lazy,
    estimate_lipschitz,
)


def relu_critic() -> nn.Module:
    """A ReLU critic: its input gradient at a NaN input is finite (relu' = 0 there), so only a
    check of the inputs themselves sees the NaN."""
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 8), nn.ReLU(), nn.Linear(8, 1))


def nan_blind(x: torch.Tensor) -> torch.Tensor:
    """A critic whose scores are finite whatever its input (the NaN is mapped to 0)."""
    return torch.nan_to_num(x, posinf=0.0, neginf=0.0).flatten(1).sum(1)


def linear_critic(weight: float) -> nn.Module:
    """``D(x) = weight * sum(x)``: every input gradient has entries ``weight``."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(192, 1, bias=False))
    nn.init.constant_(critic[1].weight, weight)
    return critic


def poisoned(x: torch.Tensor, value: float) -> torch.Tensor:
    bad = x.clone()
    bad[1, 0, 0, 0] = value
    return bad


PENALTIES: list[tuple[str, Callable[[], nn.Module], Callable[..., torch.Tensor]]] = [
    ("BanachGP", BanachGP, relu_critic()),
    ("BanachGP-one-sided", lambda: BanachGP(one_sided=True), relu_critic()),
    ("BanachR1", BanachR1, relu_critic()),
    ("BanachR2", BanachR2, relu_critic()),
    ("FiniteDifferenceGP", FiniteDifferenceGP, nan_blind),
    (
        "FiniteDifferenceGP-interpolates",
        lambda: FiniteDifferenceGP(pairs="interpolates"),
        nan_blind,
    ),
    ("Lazy", lambda: Lazy(BanachR2(), every=2), relu_critic()),
]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("where", ["real", "fake"])
@pytest.mark.parametrize(("name", "make", "critic"), PENALTIES, ids=[p[0] for p in PENALTIES])
def test_check_finite_covers_the_inputs_with_fixed_lam(name, make, critic, where, value) -> None:  # type: ignore[no-untyped-def]
    """With fixed lam/gamma no estimate sees the data: the critics here give finite dual norms
    (or quotients) at NaN/inf points, so only the inputs' own check can refuse them."""
    real, fake = images(4)
    inputs = {"real": real, "fake": fake}
    inputs[where] = poisoned(inputs[where], value)
    penalty = make()
    with pytest.raises(ValueError, match=f"non-finite values in the penalty: {where} contains"):
        penalty(critic, inputs["real"], inputs["fake"])
    assert getattr(penalty, "stats", None) is None
    assert penalty(critic, real, fake).isfinite()  # the same call on clean data is fine


def test_check_finite_covers_the_points_of_a_pairs_callable() -> None:
    real, fake = images(4)
    penalty = FiniteDifferenceGP(pairs=lambda r, f: (poisoned(r, float("nan")), f))
    with pytest.raises(ValueError, match="the pairs' x contains NaN or inf"):
        penalty(nan_blind, real, fake)


def _toward_ones(r: torch.Tensor, f: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(x, x + 1)``: a linear critic's quotient is then its gradient's l2 norm."""
    return r, r + 1


# Penalties whose every term is finite but whose value overflows float32: dual norms (and
# quotients) of sqrt(192) * 5e17 = 6.9e18 square to 4.8e37, times the weights beyond 3.4e38.
OVERFLOWING = [
    ("BanachGP", lambda: BanachGP(lam=10.0), 5e17),
    ("BanachR1", lambda: BanachR1(gamma=100.0), 5e17),
    ("FiniteDifferenceGP", lambda: FiniteDifferenceGP(lam=10.0, pairs=_toward_ones), 5e17),
]


@pytest.mark.parametrize(("name", "make", "weight"), OVERFLOWING, ids=[o[0] for o in OVERFLOWING])
def test_check_finite_covers_the_returned_value(name, make, weight) -> None:  # type: ignore[no-untyped-def]
    real, fake = images(4)
    critic = linear_critic(weight)
    penalty = make()
    with pytest.raises(ValueError, match=r"the penalty is inf although its .* are finite"):
        penalty(critic, real, fake)
    assert penalty.stats is None
    penalty.check_finite = False  # the same call unchecked: finite terms, an inf value
    assert torch.isinf(penalty(critic, real, fake))
    terms = {k: v for k, v in penalty.stats.as_dict().items() if k != "penalty"}
    assert all(v < 1e19 for v in terms.values()), terms


def test_lazy_checks_that_its_factor_does_not_overflow() -> None:
    """A finite R1 of 4.8e37 (dual norms 6.9e18) that Lazy's factor 16 overflows."""
    real, _ = images(4)
    lazy = Lazy(BanachR1(gamma=2.0), every=16)
    with pytest.raises(ValueError, match="every=16 times the wrapped penalty's value overflows"):
        lazy(linear_critic(5e17), real)
    assert lazy._calls == 0 and lazy.due
    assert lazy.stats is not None and lazy.stats.penalty.isfinite()
    lazy.penalty.check_finite = False  # type: ignore[union-attr]
    assert torch.isinf(lazy(linear_critic(5e17), real))


def test_an_active_scaler_leaves_non_finite_values_to_it() -> None:
    scaler = torch.amp.GradScaler("cpu")
    real, fake = images(4)
    value = BanachGP(grad_scaler=scaler)(relu_critic(), poisoned(real, float("nan")), fake)
    assert isinstance(value, torch.Tensor)  # no raise: the scaler skips that step


def test_a_skipped_nan_batch_does_not_poison_the_estimates() -> None:
    """Under an active GradScaler non-finite values do not raise; the NaN batch's penalty is
    NaN (the scaler skips the step) but the running lam/gamma stay those of the good batches."""
    scaler = torch.amp.GradScaler("cpu")
    penalty = BanachGP(lam="auto", gamma="auto", grad_scaler=scaler)
    critic = relu_critic()
    real, fake = images(4)
    penalty(critic, real, fake)
    means, count = penalty.calibration.means.clone(), penalty.calibration.count.clone()
    for value in (float("nan"), float("inf")):
        assert not penalty(critic, poisoned(real, value), fake).isfinite()
        assert torch.equal(penalty.calibration.means, means)
        assert torch.equal(penalty.calibration.count, count)
    penalty(critic, real * 2, fake)
    assert int(penalty.calibration.count) == 8 and penalty.calibration.means.isfinite().all()


def test_unchecked_finite_difference_estimates_are_not_poisoned_either() -> None:
    penalty = FiniteDifferenceGP(lam="auto", gamma="auto", check_finite=False)
    real, fake = images(4)
    penalty(nan_blind, real, fake)
    means = penalty.calibration.means.clone()
    penalty(nan_blind, poisoned(real, float("nan")), fake)
    assert torch.equal(penalty.calibration.means, means)
    assert int(penalty.calibration.count) == 4


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_estimate_lipschitz_refuses_non_finite_samples(value: float) -> None:
    critic = Calls(relu_critic())
    real, _ = images(4)
    with pytest.raises(ValueError, match="samples contain NaN or inf"):
        estimate_lipschitz(critic, "l2", poisoned(real, value), steps=2)
    assert critic.calls == 0


def test_estimate_lipschitz_refuses_a_critic_that_overflows() -> None:
    real, _ = images(4)
    with pytest.raises(ValueError, match=r"dual gradient norm .* is NaN or inf"):
        estimate_lipschitz(linear_critic(1e38), "l2", real, steps=2)

    def nan_score(x: torch.Tensor) -> torch.Tensor:
        scores = x.flatten(1).sum(1)
        return torch.where(scores > scores.median(), torch.nan, scores)

    with pytest.raises(ValueError, match=r"a difference quotient .* is NaN or inf"):
        estimate_lipschitz(nan_score, "l2", real, steps=0)
