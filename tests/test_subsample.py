"""Subsampled: the penalty of a random subset of the batch, rows taken consistently."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from conftest import ConvCritic, assert_same_grads, images
from lipreg import BanachGP, BanachR1, BanachR1R2, FiniteDifferenceGP, Lazy, Lp, Subsampled


def test_the_value_and_gradients_are_the_penalty_of_the_drawn_rows() -> None:
    """With the random state reset, the subset's penalty equals the wrapped penalty called
    by hand on the rows that ``torch.randperm`` draws, value and parameter gradients."""
    real, fake = images(8, torch.float64)
    critic = ConvCritic().double()
    twin = copy.deepcopy(critic)
    torch.manual_seed(3)
    value = Subsampled(BanachGP(), 0.25)(critic, real, fake)
    torch.manual_seed(3)
    index = torch.randperm(8)[:2]
    torch.manual_seed(3)
    torch.randperm(8)  # the draw the wrapper made, so the interpolation weights match
    expected = BanachGP()(twin, real[index], fake[index])
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
    value.backward()
    expected.backward()
    assert_same_grads(critic, twin, rtol=1e-12, atol=1e-15)


def test_every_row_is_drawn_equally_often_so_the_value_is_unbiased() -> None:
    """R1 is a mean of per-sample terms: averaged over many draws, the subset's value tends
    to the whole batch's (a 5-sigma bound on the Monte-Carlo error)."""
    real, _ = images(6, torch.float64)
    critic = ConvCritic().double()
    penalty = BanachR1(Lp(3), gamma=2.0)
    whole = penalty(critic, real).item()
    torch.manual_seed(0)
    draws = torch.tensor([Subsampled(penalty, 0.5)(critic, real).item() for _ in range(400)])
    error = 5 * draws.std() / 400**0.5
    assert abs(float(draws.mean()) - whole) < error


@pytest.mark.parametrize(("fraction", "batch", "k"), [(0.25, 64, 16), (0.5, 3, 2), (0.01, 8, 1)])
def test_size_rounds_and_is_at_least_one(fraction: float, batch: int, k: int) -> None:
    assert Subsampled(BanachGP(), fraction).size(batch) == k


def test_fraction_one_is_the_penalty_and_draws_nothing() -> None:
    real, fake = images(4)
    critic = ConvCritic()
    torch.manual_seed(1)
    value = Subsampled(BanachGP(), 1.0)(critic, real, fake)
    after = torch.rand(())
    torch.manual_seed(1)
    assert torch.equal(value, BanachGP()(critic, real, fake))
    assert torch.equal(after, torch.rand(()))


class Conditional(nn.Module):
    """A critic that reads a per-sample label and records the labels it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.critic = ConvCritic()
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor, label: Tensor, scale: float = 1.0) -> Tensor:
        self.seen.append(label)
        return scale * self.critic(x).flatten() + label.to(x.dtype)


def test_tensor_arguments_with_batch_rows_follow_the_subset() -> None:
    """Labels of a conditional critic, FiniteDifferenceGP's reused scores: the same rows as
    real and fake; other keyword arguments pass unchanged."""
    real, fake = images(8)
    labels = torch.arange(8)
    critic = Conditional()
    torch.manual_seed(5)
    Subsampled(BanachR1R2(gamma=1.0), 0.5)(critic, real, fake, label=labels, scale=2.0)
    torch.manual_seed(5)
    index = torch.randperm(8)[:4]
    assert all(torch.equal(seen, labels[index]) for seen in critic.seen)
    d_real, d_fake = critic.critic(real), critic.critic(fake)
    kwargs: dict[str, Any] = {"d_real": d_real, "d_fake": d_fake}
    torch.manual_seed(5)
    value = Subsampled(FiniteDifferenceGP(pairs="real-fake"), 0.5)(
        critic.critic, real, fake, **kwargs
    )
    expected = FiniteDifferenceGP(pairs="real-fake")(
        critic.critic, real[index], fake[index], d_real=d_real[index], d_fake=d_fake[index]
    )
    torch.testing.assert_close(value, expected)


def test_composes_with_lazy_and_checkpoints_the_wrapped_state() -> None:
    real, fake = images(8)
    lazy = Lazy(Subsampled(BanachGP(lam="auto", gamma="auto"), 0.5), every=2)
    for _ in range(3):
        lazy(ConvCritic(), real, fake)
    state = lazy.state_dict()
    assert int(state["calls"]) == 3
    # two of the three calls evaluated: the running estimates saw two subsets of 4 samples
    assert int(state["penalty.penalty.calibration.count"]) == 8
    restored = Lazy(Subsampled(BanachGP(lam="auto", gamma="auto"), 0.5), every=2)
    restored.load_state_dict(state)
    assert torch.equal(
        restored.state_dict()["penalty.penalty.calibration.means"],
        state["penalty.penalty.calibration.means"],
    )
    assert repr(Subsampled(BanachGP(), 0.25)).count("fraction=0.25") == 1


@pytest.mark.parametrize("fraction", [0, 1.5, -0.1, "0.5", True, float("nan")])
def test_bad_fractions_name_the_argument(fraction: object) -> None:
    with pytest.raises(ValueError, match="fraction must be a number in \\(0, 1\\]"):
        Subsampled(BanachGP(), fraction)  # type: ignore[arg-type]


def test_bad_penalty_and_inputs_are_refused_before_drawing() -> None:
    with pytest.raises(TypeError, match="penalty must be a lipreg penalty module"):
        Subsampled(lambda c, r, f: r.sum(), 0.5)  # type: ignore[arg-type]
    wrapper = Subsampled(BanachGP(), 0.5)
    real, fake = images(4)
    critic = ConvCritic()
    state = torch.get_rng_state()
    with pytest.raises(TypeError, match="critic must be callable"):
        wrapper(None, real, fake)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fake"):
        wrapper(critic, real, fake[..., :4])
    assert torch.equal(state, torch.get_rng_state())


def test_a_fake_batch_of_another_size_gets_its_own_draw() -> None:
    real, fake = images(8, torch.float64)
    critic = ConvCritic().double()
    torch.manual_seed(2)
    value = Subsampled(BanachR1R2(gamma=1.0), 0.5)(critic, real, fake[:6])
    torch.manual_seed(2)
    index_real = torch.randperm(8)[:4]
    index_fake = torch.randperm(6)[:3]
    expected = BanachR1R2(gamma=1.0)(critic, real[index_real], fake[:6][index_fake])
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
