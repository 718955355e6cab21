"""Bad input gets a ValueError/TypeError naming the problem and the fix, and a rejected call
changes neither the running estimates nor the statistics."""

from __future__ import annotations

import pytest
import torch

from conftest import Calls, ConvCritic
from lipreg import (
    BanachGP,
    BanachR1,
    BanachR2,
    FiniteDifferenceGP,
    Sobolev,
    estimate_lipschitz,
    input_gradient,
)


def calibrated(norm: object = "l2") -> BanachGP:
    penalty = BanachGP(norm, lam="auto", gamma="auto")  # type: ignore[arg-type]
    real = torch.randn(4, 3, 8, 8)
    penalty(ConvCritic(), real, torch.randn_like(real))
    return penalty


def snapshot(penalty: BanachGP) -> tuple[torch.Tensor, torch.Tensor, object]:
    return penalty.calibration.means.clone(), penalty.calibration.count.clone(), penalty.stats


def assert_unchanged(penalty: BanachGP, before: tuple[torch.Tensor, torch.Tensor, object]) -> None:
    means, count, stats = snapshot(penalty)
    assert torch.equal(means, before[0]) and torch.equal(count, before[1]) and stats is before[2]


R = torch.randn(4, 3, 8, 8)
NET = ConvCritic()

CASES = [
    # (critic, real, fake, error, message words, reaches the critic)
    ("not callable", R, R, TypeError, "critic must be callable", False),
    (NET, R.numpy(), R, TypeError, "real must be a torch.Tensor", False),
    (NET, R.long(), R, TypeError, "real must be a floating-point tensor", False),
    (NET, R[0, 0, 0], R, ValueError, "real must be batch-first", False),
    (NET, R, R.long(), TypeError, "fake must be a floating-point", False),
    (NET, R, R[:, :, :4], ValueError, "shape differs", False),
    (NET, R, R.double(), ValueError, "dtype differs", False),
    (NET, R, R.to("meta"), ValueError, "device differs", False),
    (NET, R, R[:3], ValueError, "real has 4 samples and fake 3", False),
    (NET, R, None, TypeError, "needs fake samples", False),
    (lambda x: x.flatten(1)[:, :2], R, R, ValueError, "got shape [4, 2]", True),
    (lambda x: x.flatten(1).sum(1)[:3], R, R, ValueError, "shape [B] or [B, 1] with B=4", True),
    (lambda x: (x.sum(), x.sum()), R, R, TypeError, "must be a tensor of scores", True),
    (lambda x: NET(x.detach()), R, R, ValueError, "does not depend on its input", True),
    (lambda x: torch.ones(4), R, R, ValueError, "does not depend on its input", True),
    (lambda x: x.flatten(1).sqrt().sum(1), R, R, ValueError, "NaN or inf", True),
    (
        NET,
        R.clone().index_fill_(0, torch.tensor([1]), float("inf")),
        R,
        ValueError,
        "NaN or inf",
        True,
    ),
]


@pytest.mark.parametrize("engine", ["func", "autograd"])
@pytest.mark.parametrize(("critic", "real", "fake", "error", "words", "reached"), CASES)
def test_bad_call_raises_and_changes_nothing(  # type: ignore[no-untyped-def]
    engine, critic, real, fake, error, words, reached
) -> None:
    penalty = calibrated()
    penalty.engine = engine
    before = snapshot(penalty)
    probe = Calls(critic) if callable(critic) else critic
    with pytest.raises(error) as info:
        penalty(probe, real, fake)
    assert words in str(info.value)
    assert_unchanged(penalty, before)
    if callable(critic):
        assert (probe.calls > 0) == reached


def test_critic_raising_inside_changes_nothing() -> None:
    penalty = calibrated()
    before = snapshot(penalty)

    def broken(x: torch.Tensor) -> torch.Tensor:
        raise KeyError("inside the critic")

    with pytest.raises(KeyError):
        penalty(broken, R, R)
    assert_unchanged(penalty, before)


def test_layout_errors_come_before_the_critic() -> None:
    penalty = calibrated(Sobolev(s=-1.5))
    before = snapshot(penalty)
    probe = Calls(NET)
    with pytest.raises(ValueError, match=r"layout \[B, C, H, W\]"):
        penalty(probe, R.flatten(2), R.flatten(2))
    assert probe.calls == 0
    assert_unchanged(penalty, before)


def test_sampler_output_is_checked() -> None:
    penalty = BanachGP(sampling=lambda r, f: r[:, :2])
    with pytest.raises(ValueError, match=r"sampler .* must be points \[B', 3, 8, 8\] like real's"):
        penalty(NET, R, R)
    with pytest.raises(TypeError, match=r"sampler .*<lambda> must be a torch\.Tensor"):
        BanachGP(sampling=lambda r, f: r.numpy())(NET, R, R)


def test_non_finite_can_be_left_to_the_caller() -> None:
    penalty = BanachGP(check_finite=False)
    value = penalty(lambda x: x.flatten(1).sqrt().sum(1), R.abs() - 1, R)
    assert not torch.isfinite(value)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"lam": -1.0}, ValueError, "lam must be in [0, inf)"),
        ({"lam": "fixed"}, TypeError, "or pass lam='auto'"),
        ({"gamma": 0.0}, ValueError, "gamma must be in (0, inf)"),
        ({"gamma": float("nan")}, ValueError, "gamma must be in"),
        ({"gamma": torch.tensor(1.0)}, TypeError, "gamma must be a real number"),
        (
            {"sampling": "gaussian"},
            ValueError,
            "sampling must be one of ['dragan', 'dragan_interpolate', 'fake', 'interpolate', "
            "'real']",
        ),
        ({"sampling": 3}, TypeError, "sampling must be a name or a callable"),
        ({"engine": "jax"}, ValueError, "engine must be 'func' or 'autograd'"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive integer"),
        ({"norm": "sobolev:q=2"}, ValueError, "Accepted forms"),
        ({"norm": 2}, TypeError, "text spec"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        BanachGP(**kwargs)
    assert words in str(info.value)


def _calibrate(**kwargs: object) -> object:
    return BanachGP(lam="auto").calibrate([R, R], **kwargs)  # type: ignore[arg-type]


OPTIONS = [
    # every bool and int option of the public constructors and functions
    (lambda: BanachGP(per_sample="False"), TypeError, "per_sample must be True or False"),
    (lambda: BanachGP(one_sided="False"), TypeError, "one_sided must be True or False"),
    (lambda: BanachGP(check_finite=0), TypeError, "check_finite must be True or False"),
    (lambda: BanachR1(per_sample="True"), TypeError, "per_sample must be True or False"),
    (lambda: BanachR2(check_finite="no"), TypeError, "check_finite must be True or False"),
    (lambda: FiniteDifferenceGP(one_sided="False"), TypeError, "one_sided must be True or"),
    (lambda: FiniteDifferenceGP(check_finite=1), TypeError, "check_finite must be True or"),
    (lambda: input_gradient(NET, R, per_sample="no"), TypeError, "per_sample must be True or"),
    (lambda: _calibrate(freeze="False"), TypeError, "freeze must be True or False"),
    (lambda: _calibrate(max_batches=1.5), ValueError, "max_batches must be a positive integer"),
    (lambda: _calibrate(max_batches="2"), ValueError, "max_batches must be a positive integer"),
    (
        lambda: estimate_lipschitz(NET, "l2", R, pairwise="False"),
        TypeError,
        "pairwise must be True or False",
    ),
    (
        lambda: estimate_lipschitz(NET, "l2", R, eval_mode="no"),
        TypeError,
        "eval_mode must be True or False",
    ),
    (lambda: Sobolev(s=1.0, spatial_dims=2.0), ValueError, "spatial_dims must be 1"),
    (lambda: BanachGP(grad_scaler="scaler"), TypeError, "grad_scaler must be a torch.amp"),
    (lambda: BanachR1(grad_scaler=object()), TypeError, "grad_scaler must be a torch.amp"),
    (
        lambda: input_gradient(NET, R, grad_scaler=torch.optim.SGD(NET.parameters(), lr=1.0)),
        TypeError,
        "grad_scaler must be a torch.amp.GradScaler",
    ),
]


@pytest.mark.parametrize(("call", "error", "words"), OPTIONS)
def test_options_of_the_wrong_type_are_refused(call, error, words) -> None:  # type: ignore[no-untyped-def]
    """A string for a boolean would switch it on ("False" is truthy), 2.0 passes ``in`` checks
    for integers: each is refused with a message naming the option."""
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_meta_inputs_are_refused_and_change_nothing() -> None:
    """The meta device has shapes but no values; the running estimates stay where they are."""
    penalty = calibrated()
    before = snapshot(penalty)
    with pytest.raises(ValueError, match="real is on the meta device"):
        penalty(NET, R.to("meta"), R.to("meta"))
    assert_unchanged(penalty, before)
    assert penalty.calibration.means.device == R.device


def test_an_integer_critic_output_is_not_called_detached() -> None:
    with pytest.raises(
        TypeError, match=r"must be real floating-point scores, got dtype torch\.int64"
    ):
        BanachGP()(lambda x: x.flatten(1).sum(1).long(), R, R)
    with pytest.raises(TypeError, match="d_real must be real floating-point scores"):
        FiniteDifferenceGP()(NET, R, R, d_real=torch.ones(4, dtype=torch.int32))
