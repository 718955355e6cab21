"""Lazy: the amortised penalty equals the eager one, the schedule checkpoints, bad input
changes nothing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import Calls, ConvCritic, assert_same_grads, images
from lipreg import BanachGP, BanachR1, Lazy, Lp


@pytest.mark.parametrize("every", [1, 3, 16])
def test_amortised_value_and_gradient_equal_the_eager_ones(every: int) -> None:
    """Over n * every calls on the same batch, the lazy values and parameter gradients add up
    to those of the eager penalty (StyleGAN2's rule)."""
    real, _ = images(4)
    critic = ConvCritic().double()
    twin = copy.deepcopy(critic)
    real = real.double()
    eager = BanachR1(Lp(3), gamma=2.0)
    lazy = Lazy(BanachR1(Lp(3), gamma=2.0), every=every)
    probe = Calls(twin)
    eager_total = sum(eager(critic, real) for _ in range(2 * every))
    lazy_values = [lazy(probe, real) for _ in range(2 * every)]
    assert isinstance(eager_total, torch.Tensor)
    eager_total.backward()
    sum(lazy_values).backward()  # type: ignore[union-attr]
    torch.testing.assert_close(sum(lazy_values), eager_total, rtol=1e-12, atol=0)
    assert_same_grads(twin, critic, rtol=1e-10, atol=1e-14)
    assert probe.calls == 2  # the critic only runs on the two evaluating calls
    assert [v.requires_grad for v in lazy_values] == [i % every == 0 for i in range(2 * every)]
    assert int(lazy.calls) == 2 * every


def test_skipped_calls_return_a_plain_zero_on_the_right_device_and_dtype() -> None:
    real, _ = images(4)
    lazy = Lazy(BanachR1(), every=4)
    assert lazy.due
    lazy(ConvCritic(), real)
    assert not lazy.due
    zero = lazy(ConvCritic(), real)
    assert zero.shape == () and zero.item() == 0.0 and not zero.requires_grad
    assert zero.dtype == torch.float32 and zero.device == real.device
    assert lazy(ConvCritic().double(), real.double()).dtype == torch.float64
    assert lazy(ConvCritic(), real.half()).dtype == torch.float32


def test_schedule_resumes_from_a_checkpoint() -> None:
    real, fake = images(4)
    lazy = Lazy(BanachGP(lam="auto", gamma="auto"), every=3)
    for _ in range(4):
        lazy(ConvCritic(), real, fake)
    state = copy.deepcopy(lazy.state_dict())
    assert int(state["calls"]) == 4 and state["_extra_state"] == {"every": 3}
    restored = Lazy(BanachGP(lam="auto", gamma="auto"), every=3)
    restored.load_state_dict(state)
    assert not restored.due and restored._calls == 4
    torch.testing.assert_close(
        restored.penalty.calibration.means,
        lazy.penalty.calibration.means,  # type: ignore[union-attr]
    )
    restored(ConvCritic(), real, fake)
    restored(ConvCritic(), real, fake)
    assert restored.due  # call 6 evaluates


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s.update(_extra_state={"every": 5}), "saved with every=5"),
        (lambda s: s.update(calls=torch.tensor(-1)), "non-negative integer"),
        (lambda s: s.update(calls=torch.tensor(2.0)), "non-negative integer"),
        (lambda s: s.update({"penalty._extra_state": {"norm": "lp:p=10"}}), "lp:p=10"),
        (lambda s: s.update(_extra_state=3), "_extra_state: expected {'every': interval}"),
        (lambda s: s.update(_extra_state={"every": 3.0}), "_extra_state: expected {'every'"),
    ],
)
def test_bad_checkpoints_load_nothing(change, words: str) -> None:  # type: ignore[no-untyped-def]
    real, fake = images(4)
    source = Lazy(BanachGP(lam="auto", gamma="auto"), every=3)
    source(ConvCritic(), real, fake)
    state = copy.deepcopy(source.state_dict())
    change(state)
    target = Lazy(BanachGP(lam="auto", gamma="auto"), every=3)
    with pytest.raises(RuntimeError, match="nothing was loaded") as info:
        target.load_state_dict(state)
    assert words in str(info.value)
    assert int(target.calls) == 0 and target._calls == 0
    assert int(target.penalty.calibration.count) == 0  # type: ignore[union-attr]


def test_bad_calls_do_not_advance_the_counter() -> None:
    real, fake = images(4)
    lazy = Lazy(BanachR1(), every=2)
    with pytest.raises(TypeError, match="critic must be callable"):
        lazy("critic", real)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dtype differs"):
        lazy(ConvCritic(), real, fake.double())
    with pytest.raises(ValueError, match="NaN or inf"):
        lazy(ConvCritic(), real.clone().fill_(float("inf")))
    assert lazy._calls == 0 and int(lazy.calls) == 0 and lazy.due
    lazy(ConvCritic(), real)
    with pytest.raises(ValueError, match="dtype differs"):  # checked on skipped calls too
        lazy(ConvCritic(), real, fake.double())
    assert lazy._calls == 1


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        ((BanachR1(), 0), ValueError, "every must be a positive integer"),
        ((BanachR1(), 2.0), ValueError, "every must be a positive integer"),
        ((BanachR1(), True), ValueError, "every must be a positive integer"),
        ((lambda c, r: r, 4), TypeError, "penalty must be a lipreg penalty module"),
    ],
)
def test_bad_constructor_arguments(args, error, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=words):
        Lazy(*args)


def test_repr() -> None:
    lazy = Lazy(BanachR1(), every=16)
    assert "every=16, calls=0" in repr(lazy) and "BanachR1(" in repr(lazy)


def test_stats_are_the_wrapped_penalty_s_last_evaluating_call() -> None:
    lazy = Lazy(BanachGP(), every=2)
    assert lazy.stats is None
    real, fake = images(4)
    critic = ConvCritic()
    lazy(critic, real, fake)
    first = lazy.stats
    assert first is not None and first is lazy.penalty.stats
    lazy(critic, real, fake)  # skipped: the statistics stay those of the evaluating call
    assert lazy.stats is first


def test_skipped_calls_check_the_norm_s_layout_too() -> None:
    lazy = Lazy(BanachR1("w2"), every=4)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(48, 1))
    good = torch.rand(2, 3, 4, 4)
    lazy(critic, good)  # evaluating call
    with pytest.raises(ValueError, match="real must have layout"):
        lazy(critic, good.flatten(1))  # a skipped call rejects it as the eager penalty does
    assert lazy._calls == 1
