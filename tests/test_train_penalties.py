"""The trainer's derivative-free penalties (--penalty approx-r1, approx-r2, approx-r1r2 with
--sigma) and --penalty-fraction: what each builds, the critic loss against a computation by
hand, the loss's scores handed to the penalties that take them, the wrappers seen through,
the rules for the new options, and old checkpoints."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from train_helpers import (
    fixed_batch,
    image_config,
    one_thread,
    restore_threads,
    toy_config,
    usage_error,
)

from lipreg import ApproxR1, FiniteDifferenceGP, Lazy, Subsampled, parse_norm
from lipreg.derivative_free import DEFAULT_SIGMA
from lipreg.train import checkpoint
from lipreg.train.cli import main, parse_command
from lipreg.train.config import TrainConfig
from lipreg.train.loop import Trainer
from lipreg.train.objectives import method_problems
from lipreg.train.penalties import PENALTIES, layers
from lipreg.train.plan import Plan
from lipreg.train.runner import Runner, describe
from lipreg.train.schedules import cosine

setup_module, teardown_module = one_thread, restore_threads

APPROX = {"approx-r1": "ApproxR1", "approx-r2": "ApproxR2", "approx-r1r2": "ApproxR1R2"}


# ---- what --penalty approx-* builds -------------------------------------------------------


@pytest.mark.parametrize(("penalty", "kind"), APPROX.items())
def test_approx_penalties_build_the_librarys_with_the_runs_norm_gamma_and_sigma(
    tmp_path: Path, penalty: str, kind: str
) -> None:
    config = image_config(tmp_path, penalty=penalty, lam=10.0, gamma=3.0, sigma=0.07)
    trainer = Trainer(config)
    inner = trainer.penalty
    assert type(inner).__name__ == kind and inner is trainer.inner_penalty
    assert inner.norm is trainer.plan.norm  # W^{-3/2,2}, parsed once
    assert (inner.gamma, inner.sigma, inner.draws, inner.antithetic) == (3.0, 0.07, 1, False)
    # zero-centred: the non-saturating loss, a weight rather than a Lipschitz constant
    assert trainer.config.loss == "ns" and trainer.gamma_scale is None
    assert not trainer.plan.estimates_wasserstein
    assert TrainConfig().sigma == DEFAULT_SIGMA == 0.03


def test_the_critic_loss_is_the_one_line_with_the_estimate_written_out(tmp_path: Path) -> None:
    """``approx-r1r2`` on half the batch every 2nd critic step, in L2, against the loss by
    hand: the same random draws in the same order (the subset, then the real batch's
    perturbation, then the generated batch's), ``h = sigma z``, ``z ~ N(0, I)``, and the
    penalty ``2 * (gamma / 2) (mean_i (D(x_i + h_i) - D(x_i))^2 / sigma^2 + the same on the
    fakes)`` on the subset (times 2, the interval); the next call adds nothing."""
    sigma, gamma = 0.1, 3.0
    config = toy_config(
        tmp_path,
        penalty="approx-r1r2",
        gamma=gamma,
        sigma=sigma,
        penalty_fraction=0.5,
        lazy_every=2,
        drift=0.25,
    )
    trainer = Trainer(config)
    real, fake = fixed_batch(16, (2,), 1), fixed_batch(16, (2,), 2)
    critic = trainer.d
    for call in range(2):
        torch.manual_seed(7)
        trainer.opt_d.zero_grad()
        trainer.critic_backward(real, fake)
        got = [p.grad.clone() for p in critic.parameters()]

        critic.zero_grad()
        torch.manual_seed(7)
        d_real, d_fake = critic(real), critic(fake)
        loss = (
            F.softplus(-d_real).mean() + F.softplus(d_fake).mean() + 0.25 * d_real.square().mean()
        )
        if call == 0:
            i = torch.randperm(16)[:8]
            h_real, h_fake = sigma * torch.randn(8, 2), sigma * torch.randn(8, 2)
            r1 = ((critic(real[i] + h_real) - d_real[i]) ** 2).mean() / sigma**2
            r2 = ((critic(fake[i] + h_fake) - d_fake[i]) ** 2).mean() / sigma**2
            loss = loss + 2 * (gamma / 2) * (r1 + r2)
        loss.backward()
        assert float(trainer.last["loss/critic"]) == pytest.approx(float(loss.detach()), rel=1e-6)
        for a, b in zip(got, (p.grad for p in critic.parameters()), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# ---- the loss's scores, passed to the penalties that take them -----------------------------


class _Spy:
    """Records what the penalty itself receives and how often the critic runs."""

    def __init__(self, trainer: Trainer) -> None:
        self.kwargs: list[dict[str, Any]] = []
        self.rows: list[int] = []
        self.forwards = 0

        def penalty_called(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> None:
            self.kwargs.append(kwargs)
            self.rows.append(args[1].shape[0])

        def critic_called(module: nn.Module, args: tuple[Any, ...], out: Tensor) -> None:
            self.forwards += 1

        trainer.inner_penalty.register_forward_pre_hook(penalty_called, with_kwargs=True)
        trainer.d.register_forward_hook(critic_called)


#: critic forwards of a critic step for the penalties that take the scores: the loss's two,
#: and the perturbed batches (one for R1 or R2, two for R1 + R2); fd none of its own
FORWARDS = {"fd": 2, "approx-r1": 3, "approx-r2": 3, "approx-r1r2": 4}


@pytest.mark.parametrize("penalty", sorted(set(PENALTIES) - {"none"}))
def test_the_loss_scores_go_to_the_penalties_that_take_them(tmp_path: Path, penalty: str) -> None:
    zero_centred = {"gamma": 10.0} if PENALTIES[penalty].zero_centred else {}
    trainer = Trainer(toy_config(tmp_path, penalty=penalty, penalty_fraction=0.25, **zero_centred))
    spy = _Spy(trainer)
    real, fake = fixed_batch(16, (2,), 1), fixed_batch(16, (2,), 2)
    trainer.critic_backward(real, fake)
    assert spy.rows == [4]  # a quarter of the batch reaches the penalty itself
    (kwargs,) = spy.kwargs
    if penalty not in FORWARDS:
        assert kwargs == {}  # the exact penalties run the critic at their own points
        return
    assert set(kwargs) == {"d_real", "d_fake"} and spy.forwards == FORWARDS[penalty]
    with torch.no_grad():  # the subset's rows of the loss's scores
        d_real, d_fake = trainer.d(real), trainer.d(fake)
    for name, scores in (("d_real", d_real), ("d_fake", d_fake)):
        assert kwargs[name].requires_grad  # attached: the penalty's gradient flows through them
        rows = torch.isin(scores, kwargs[name].detach())
        assert int(rows.sum()) == 4, name


def test_finite_differences_on_the_loss_scores_equal_their_own_forward_passes(
    tmp_path: Path,
) -> None:
    trainer = Trainer(toy_config(tmp_path, penalty="fd", lam=10.0, gamma=0.5))
    real, fake = fixed_batch(16, (2,), 1), fixed_batch(16, (2,), 2)
    trainer.critic_backward(real, fake)
    own = FiniteDifferenceGP(norm="l2", lam=10.0, gamma=0.5)
    value = own(trainer.d, real, fake)
    assert trainer.inner_penalty.stats is not None
    torch.testing.assert_close(trainer.inner_penalty.stats.penalty, value.detach())


# ---- the wrappers, seen through -----------------------------------------------------------


def test_calibration_scaling_and_statistics_see_through_both_wrappers(tmp_path: Path) -> None:
    """``--gamma auto`` with ``--critic-scale gamma``: lam and gamma estimated once, before
    training, on the penalty inside Lazy(Subsampled(., 0.5), 2), which the critic's factor
    follows; the start-up line and the scalars show it."""
    trainer = Trainer(image_config(tmp_path, penalty_fraction=0.5, lazy_every=2))
    lazy, subsampled, gp = layers(trainer.penalty)
    assert isinstance(lazy, Lazy) and isinstance(subsampled, Subsampled)
    assert (lazy.every, subsampled.fraction) == (2, 0.5) and gp is trainer.inner_penalty
    assert gp.calibration.frozen and int(gp.calibration.count) == len(trainer.data) == 64
    x = trainer.data.take(torch.arange(4))
    assert trainer.gamma_scale is not None
    scaled = trainer.d(x)
    trainer.gamma_scale.remove()
    torch.testing.assert_close(scaled, gp.gamma * trainer.d(x))
    text = describe(trainer.penalty)
    assert text.startswith("Lazy(every=2, calls=0) of Subsampled(fraction=0.5) of BanachGP(")
    assert text.endswith("lam='auto', gamma='auto')")  # the innermost's calibration settings
    trainer.iteration()
    values = trainer.scalars()
    assert values["gamma"] == pytest.approx(gp.gamma) and values["lam"] == pytest.approx(gp.lam)
    assert values["penalty"] == float(gp.stats.penalty)


def test_the_gamma_schedule_sets_the_weight_inside_both_wrappers(tmp_path: Path) -> None:
    config = toy_config(
        tmp_path,
        penalty="approx-r2",
        gamma=1.0,
        gamma_final=0.1,
        decay_steps=4,
        lazy_every=2,
        penalty_fraction=0.5,
    )
    trainer = Trainer(config)
    for step in range(4):
        trainer.iteration()
        expected = cosine(1.0, 0.1, step, 4)
        assert trainer.inner_penalty.gamma == pytest.approx(expected)
        assert trainer.scalars()["gamma"] == pytest.approx(expected)


# ---- the rules -----------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["lp:p=3", "lp:p=1", "sobolev:s=-1.5,p=3", "lp:p=inf"])
@pytest.mark.parametrize("penalty", list(APPROX))
def test_non_hilbert_norms_are_refused_with_the_librarys_reason(
    tmp_path: Path, penalty: str, norm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the plan is parsed, before any data is read: here a CIFAR-10 folder that does not
    exist would be the next error."""
    with pytest.raises(ValueError) as library:
        ApproxR1(norm=parse_norm(norm))
    reason = str(library.value).split(" needs ", 1)[1]  # after the library's "ApproxR1"
    with pytest.raises(ValueError, match="needs a Hilbert norm") as plan:
        Plan.parse(TrainConfig(penalty=penalty, norm=norm, gamma=10.0))
    spec = parse_norm(norm).spec
    assert str(plan.value).startswith(f"--norm {spec}: --penalty {penalty} needs {reason}")
    assert "--norm l2, sobolev:s=S or w2" in str(plan.value)
    missing = str(tmp_path / "nothing")
    args = ["--data", "cifar10", "--data-root", missing, "--out", str(tmp_path / "run")]
    err = usage_error(capsys, lambda: main([*args, "--penalty", penalty, "--norm", norm]))
    assert "needs a Hilbert norm" in err and "cifar" not in err.lower(), err


@pytest.mark.parametrize("norm", ["l2", "sobolev:s=-1.5", "sobolev:s=1,c=2", "w2"])
def test_hilbert_norms_are_accepted(norm: str) -> None:
    for penalty in APPROX:
        config = TrainConfig(penalty=penalty, norm=norm, gamma=10.0).checked()
        assert method_problems(config) == [], (penalty, norm)


def test_approx_trains_in_the_local_w2_norm(tmp_path: Path) -> None:
    trainer = Trainer(image_config(tmp_path, penalty="approx-r1", norm="w2", lam=10.0, gamma=1.0))
    trainer.iteration()
    values = trainer.scalars()
    assert all(math.isfinite(v) for v in values.values()), values
    assert values["dual_squared_mean"] > 0 and values["sigma"] == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sigma", "0.1"], "--sigma 0.1 has no effect: --sigma is the size of the perturbations"),
        (["--penalty", "r1", "--gamma", "10", "--sigma", "0.03"], "--penalty r1 draws none"),
        (
            ["--penalty", "none", "--loss", "ns", "--penalty-fraction", "0.5"],
            "--penalty-fraction 0.5 has no effect with --penalty none",
        ),
        (["--penalty-fraction", "0"], "expected a number in (0, 1], got '0'"),
        (["--penalty-fraction", "1.5"], "expected a number in (0, 1], got '1.5'"),
        (["--sigma", "0"], "argument --sigma: expected a number in (0, inf)"),
    ],
)
def test_the_command_line_refuses_options_without_effect_or_out_of_range(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, lambda: parse_command(args))
    assert message in err, err


def test_a_presets_sigma_and_fraction_give_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from lipreg.train import presets

    preset = {**presets.PRESETS["bwgan-digits"], "penalty": "approx-r2", "lam": 10.0}
    preset |= {"gamma": 10.0, "sigma": 0.1, "penalty_fraction": 0.5}
    monkeypatch.setitem(presets.PRESETS, "approx-digits", preset)
    config = parse_command(["--preset", "approx-digits"]).config
    assert (config.sigma, config.penalty_fraction) == (0.1, 0.5)
    exact = parse_command(["--preset", "approx-digits", "--penalty", "r2"]).config
    assert (exact.sigma, exact.penalty_fraction) == (DEFAULT_SIGMA, 0.5)
    none = ["--preset", "approx-digits", "--penalty", "none", "--loss", "ns"]
    plain = parse_command(none).config
    assert (plain.sigma, plain.penalty_fraction, plain.gamma) == (DEFAULT_SIGMA, 1.0, 1.0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"penalty_fraction": 0.0}, r"--penalty-fraction must be a number in \(0, 1\]"),
        ({"penalty_fraction": 1.01}, r"--penalty-fraction must be a number in \(0, 1\]"),
        ({"penalty_fraction": math.nan}, r"--penalty-fraction must be a number in \(0, 1\]"),
        ({"penalty_fraction": "half"}, "--penalty-fraction must be float"),
        ({"sigma": 0.0}, "--sigma must be a number > 0, got 0.0"),
        ({"sigma": math.inf}, "--sigma must be a number > 0, got inf"),
        ({"sigma": -0.1}, "--sigma must be a number > 0"),
    ],
)
def test_the_configuration_checks_the_new_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values).checked()


def test_a_fraction_of_one_is_the_penalty_itself(tmp_path: Path) -> None:
    """Runs without --penalty-fraction keep the penalty's checkpoint keys of before it."""
    trainer = Trainer(toy_config(tmp_path, penalty_fraction=1.0))
    assert layers(trainer.penalty) == [trainer.penalty]
    assert set(trainer.penalty.state_dict()) == {
        "_extra_state",
        "calibration.means",
        "calibration.count",
        "calibration._extra_state",
    }


# ---- checkpoints --------------------------------------------------------------------------


def test_checkpoints_from_before_the_options_resume_on_the_whole_batch(tmp_path: Path) -> None:
    Runner(Trainer(toy_config(tmp_path, steps=1))).run()
    state = checkpoint.load(tmp_path)
    del state["config"]["penalty_fraction"], state["config"]["sigma"]  # as written before them
    saved = TrainConfig.from_saved(state["config"])
    assert (saved.penalty_fraction, saved.sigma) == (1.0, DEFAULT_SIGMA)
    resumed = Trainer(toy_config(tmp_path, steps=2), resume=state)
    assert resumed.step == 1 and not Runner(resumed).run().interrupted


def test_a_checkpoint_of_another_fraction_or_sigma_is_refused(tmp_path: Path) -> None:
    config = toy_config(tmp_path, penalty="approx-r1", gamma=10.0, penalty_fraction=0.5, steps=1)
    Runner(Trainer(config)).run()
    state = checkpoint.load(tmp_path)
    for change in ({"penalty_fraction": 0.25}, {"sigma": 0.1}):
        other = dataclasses.replace(config, steps=2, **change)
        with pytest.raises(checkpoint.CheckpointError, match="written with other settings"):
            Trainer(other, resume=state)
