"""The configuration parsed once into typed parts (lipreg.train.plan), and the options that
other choices make meaningless (lipreg.train.unused): refused when given, reset when only a
preset set them."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import pytest
from train_helpers import image_config, one_thread, restore_threads, toy_config

from lipreg import Sobolev, parse_norm
from lipreg.losses import LOSSES
from lipreg.train.cli import parse_command
from lipreg.train.config import TrainConfig
from lipreg.train.constraints import parse_constraint
from lipreg.train.ctransform import CTransformObjective
from lipreg.train.loop import Trainer
from lipreg.train.penalties import PENALTIES
from lipreg.train.plan import Plan
from lipreg.train.unused import settle, unused_options

setup_module, teardown_module = one_thread, restore_threads


def test_the_plan_holds_the_parsed_parts() -> None:
    config = TrainConfig(
        penalty="gp", norm="Sobolev: s=-1", constraint="sn:conv=fft", gamma_final=None
    )
    plan = Plan.parse(config)
    assert plan.norm == parse_norm("sobolev:s=-1") and isinstance(plan.norm, Sobolev)
    assert plan.constraint == parse_constraint("sn:conv=fft")
    assert plan.penalty is PENALTIES["gp"]
    assert plan.loss is LOSSES["wgan"]  # auto, resolved for a Lipschitz penalty
    assert plan.config == dataclasses.replace(
        config, norm=plan.norm.spec, constraint="sn:conv=fft", loss="wgan"
    )
    assert plan.schedule.config == plan.config and plan.estimates_wasserstein
    ctransform = Plan.parse(TrainConfig(penalty="none", loss="ctransform", norm="lp:p=1"))
    assert isinstance(ctransform.loss, CTransformObjective)
    assert ctransform.loss.norm is ctransform.norm


@pytest.mark.parametrize(
    ("overrides", "estimates"),
    [
        ({}, True),  # wgan with gp
        ({"penalty": "r1"}, False),  # ns
        ({"penalty": "none", "constraint": "sn"}, True),  # wgan, 1-Lipschitz in l2
        ({"penalty": "none", "constraint": "clip"}, False),  # an unknown multiple of c
        ({"penalty": "none", "loss": "ctransform"}, True),
        ({"loss": "hinge"}, False),
    ],
)
def test_when_the_gap_estimates_w1(overrides: dict[str, Any], estimates: bool) -> None:
    assert Plan.parse(TrainConfig(**overrides)).estimates_wasserstein is estimates


def test_building_a_run_parses_no_spec_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer builds its penalty, constraint and objective from the plan's parts: a
    Sobolev norm is made once, by the plan, and the penalty measures in that very object."""
    made: list[Sobolev] = []
    init = Sobolev.__init__

    @functools.wraps(init)  # parse_norm reads the constructor's signature
    def counted(self: Sobolev, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    config = image_config(tmp_path, constraint="sn", lam=10.0, gamma=1.0)
    monkeypatch.setattr(Sobolev, "__init__", counted)
    plan = Plan.parse(config)
    assert made == [plan.norm]
    trainer = Trainer(plan)
    assert made == [plan.norm] and trainer.penalty.norm is plan.norm
    assert trainer.constraint.spec is plan.constraint and trainer.config is plan.config


# ---- options that other choices make meaningless ---------------------------------------

DEFAULTS = TrainConfig()

# Whatever their values: gamma_final is unused by every Lipschitz penalty (gp by default),
# sigma by every penalty but the derivative-free ones.
LIPSCHITZ = {"gamma_final", "sigma"}
NOTHING = {"lam", "gamma", "gamma_final", "lazy_every", "penalty_fraction", "sigma"}
UNUSED = [
    ({}, LIPSCHITZ),
    ({"penalty": "r1", "lam": 5.0}, {"lam", "sigma"}),
    ({"penalty": "r1r2", "lam": "auto", "gamma_final": 0.1}, {"lam", "sigma"}),
    ({"penalty": "approx-r1", "lam": 5.0, "sigma": 0.1}, {"lam"}),
    ({"penalty": "approx-r1r2", "gamma_final": 0.1, "penalty_fraction": 0.5}, {"lam"}),
    ({"penalty": "fd", "penalty_fraction": 0.5}, LIPSCHITZ),
    ({"penalty": "none", "loss": "ns"}, NOTHING | {"norm"}),
    ({"penalty": "none", "loss": "ctransform"}, NOTHING),
    ({"penalty": "dragan", "gamma_final": 0.1}, LIPSCHITZ),
    ({"lr_decay": "none"}, {"lr_final"} | LIPSCHITZ),
    ({"ema": 0.0, "penalty": "r2"}, {"ema_half_life", "lam", "sigma"}),
]


@pytest.mark.parametrize(("overrides", "unused"), UNUSED)
def test_unused_options(overrides: dict[str, Any], unused: set[str]) -> None:
    config = dataclasses.replace(DEFAULTS, **overrides)
    if config.loss == "auto":
        config = dataclasses.replace(config, loss="wgan")
    found = unused_options(config)
    assert set(found) == unused
    for name, why in found.items():
        assert why.startswith(f"--{name.replace('_', '-')} {getattr(config, name)!r} ")


def test_settle_refuses_given_options_and_resets_a_presets() -> None:
    r1 = dataclasses.replace(DEFAULTS, penalty="r1", loss="ns", lam="auto", lr_decay="none")
    # given on the command line: refused whatever the value, even the default
    for lam in ("auto", 10.0):
        _, problems = settle(dataclasses.replace(r1, lam=lam), given={"lam"})
        assert len(problems) == 1 and problems[0].endswith("; drop --lam"), problems
    # set by a preset: back to its default, and nothing else changes
    settled, problems = settle(dataclasses.replace(r1, lr_final=1e-5), preset={"lam", "lr_final"})
    assert problems == []
    assert settled == dataclasses.replace(r1, lam=10.0, lr_final=None)
    # neither (Python code, a checkpoint): refused when it is not the default
    _, problems = settle(r1)
    assert problems == [
        "--lam 'auto' has no effect with --penalty r1, which --gamma alone weights (--gamma 10 "
        "is StyleGAN2's R1 weight); leave it at its default 10.0"
    ]
    assert settle(dataclasses.replace(r1, lam=10.0)) == (dataclasses.replace(r1, lam=10.0), [])


def test_the_options_a_preset_set_give_way_to_explicit_choices() -> None:
    r2 = ["--preset", "bwgan-digits", "--penalty", "r2", "--loss", "ns", "--gamma", "10"]
    command = parse_command(r2)
    assert command.config.lam == DEFAULTS.lam and command.plan.config.lam == DEFAULTS.lam
    preset = parse_command(["--preset", "bwgan-digits"]).config
    changed = {"penalty": "gp", "loss": "auto", "lam": "auto", "gamma": "auto"}
    assert dataclasses.replace(command.config, **changed) == preset
    r3gan = parse_command(["--preset", "r3gan-cifar10", "--lr-decay", "none", "--ema", "0"])
    assert r3gan.config.lr_final is None and r3gan.config.ema_half_life is None
    gp = parse_command(["--preset", "r3gan-cifar10", "--penalty", "gp", "--loss", "wgan"])
    assert gp.config.gamma_final is None and gp.config.gamma == 0.05  # gamma is still used
    sn = ["--preset", "bwgan-digits", "--penalty", "none", "--constraint", "sn", "--loss", "hinge"]
    config = parse_command(sn).config
    assert (config.norm, config.lam, config.gamma) == (DEFAULTS.norm, DEFAULTS.lam, 1.0)


def test_the_python_api_keeps_refusing_unused_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--lr-final 1e-05 has no effect"):
        Plan.parse(toy_config(tmp_path, lr_decay="none", lr_final=1e-5))
    with pytest.raises(ValueError, match=r"--ema-half-life 100\.0 has no effect"):
        Plan.parse(toy_config(tmp_path, ema=0.0, ema_half_life=100.0))
