"""Checkpoints: exact resumption, stopping on signals, atomic writes, and clear errors for
corrupt or foreign files."""

from __future__ import annotations

import fractions
import io
import os
import random
import signal
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from train_helpers import (
    image_config,
    one_thread,
    restore_threads,
    toy_config,
    training_rows,
    usage_error,
)

from lipreg.train import checkpoint
from lipreg.train.checkpoint import CheckpointError
from lipreg.train.cli import main
from lipreg.train.config import TrainConfig
from lipreg.train.loop import Trainer
from lipreg.train.runner import Runner

setup_module, teardown_module = one_thread, restore_threads


def _interrupt_at(trainer: Trainer, step: int, signum: int) -> None:
    """Send ``signum`` to this process right after iteration ``step`` (as a user would)."""
    original = trainer.iteration

    def iteration() -> None:
        original()
        if trainer.step == step:
            os.kill(os.getpid(), signum)

    trainer.iteration = iteration  # type: ignore[method-assign]


def r3gan_config(out: Path, **overrides: object) -> TrainConfig:
    """The toy run with R3GAN's objective and every schedule, whose horizon (4) falls
    between the interruption (3) and the end (6)."""
    schedules = {"gamma_final": 0.1, "lr_decay": "cosine", "lr_final": 1e-5, "decay_steps": 4}
    schedules |= {"beta2_final": 0.99, "ema_half_life": 2.0}
    return toy_config(out, loss="rpgan", penalty="r1r2", gamma=1.0, **schedules, **overrides)


def clip_config(out: Path, **overrides: object) -> TrainConfig:
    """The toy run with WGAN weight clipping instead of a penalty."""
    return toy_config(out, penalty="none", constraint="clip:c=0.1", **overrides)


def sn_config(out: Path, **overrides: object) -> TrainConfig:
    """The image run with power-iteration spectral normalisation (whose vectors u, v change
    at every critic forward) and the hinge loss."""
    plain = {"penalty": "none", "loss": "hinge", "norm": "l2", "lam": 10.0, "gamma": 1.0}
    return image_config(out, constraint="sn", **plain, **overrides)


def sn_fft_gp_config(out: Path, **overrides: object) -> TrainConfig:
    """The image run (W^{-3/2,2} penalty, auto lam and gamma) under FFT spectral norms."""
    return image_config(out, constraint="sn:conv=fft", **overrides)


def ctransform_config(out: Path, **overrides: object) -> TrainConfig:
    """The image run with the c-transform in W^{-3/2,2}."""
    return image_config(out, penalty="none", loss="ctransform", lam=10.0, gamma=1.0, **overrides)


def approx_config(out: Path, **overrides: object) -> TrainConfig:
    """The image run with R3GAN's objective without double backward in W^{-3/2,2}, on half of
    every other critic step's batch: the subsets and the perturbations are random draws."""
    penalty = {"penalty": "approx-r1r2", "loss": "rpgan", "lam": 10.0, "gamma": 0.5}
    schedule = {"sigma": 0.05, "penalty_fraction": 0.5, "lazy_every": 2}
    return image_config(out, **penalty, **schedule, **overrides)


def fd_fraction_config(out: Path, **overrides: object) -> TrainConfig:
    """The image run with finite differences on a quarter of each batch and running lam and
    gamma estimates (--critic-scale none), which see the subsets only."""
    return image_config(out, penalty="fd", penalty_fraction=0.25, critic_scale="none", **overrides)


@pytest.mark.parametrize(
    ("make", "signum"),
    [
        (toy_config, signal.SIGTERM),
        (image_config, signal.SIGINT),
        (r3gan_config, signal.SIGTERM),
        (clip_config, signal.SIGTERM),
        (sn_config, signal.SIGINT),
        (sn_fft_gp_config, signal.SIGTERM),
        (ctransform_config, signal.SIGINT),
        (approx_config, signal.SIGTERM),
        (fd_fraction_config, signal.SIGINT),
    ],
    ids=[
        "toy-SIGTERM",
        "images-SIGINT",
        "r3gan-schedules-SIGTERM",
        "clip-SIGTERM",
        "sn-SIGINT",
        "sn-fft-gp-SIGTERM",
        "ctransform-SIGINT",
        "approx-fraction-lazy-SIGTERM",
        "fd-fraction-SIGINT",
    ],
)
def test_resume_continues_exactly(tmp_path: Path, make, signum: int) -> None:  # type: ignore[no-untyped-def]
    steps = 6
    whole = make(tmp_path / "whole", steps=steps, eval_every=2)
    Runner(Trainer(whole)).run()

    part = make(tmp_path / "part", steps=steps, eval_every=2)
    first = Trainer(part)
    _interrupt_at(first, 3, signum)
    summary = Runner(first).run()
    assert summary.interrupted and summary.step == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    state = checkpoint.load(tmp_path / "part")
    assert state["step"] == 3 and len(state["rng"]) == 1

    resumed = Trainer(part, resume=state)
    assert resumed.step == 3
    assert not Runner(resumed).run().interrupted
    expected, got = training_rows(tmp_path / "whole"), training_rows(tmp_path / "part")
    assert sorted(got) == list(range(1, steps + 1))
    assert got == expected  # bitwise: every loss, penalty, lam, gamma of steps 1..6
    final = [checkpoint.load(tmp_path / d) for d in ("whole", "part")]
    for key in ("generator", "critic", "ema", "penalty"):
        for name, tensor in final[0][key].items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(tensor, final[1][key][name]), (key, name)


def test_resume_from_the_command_line_uses_the_saved_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["--data", "8gaussians", "--data-size", "64", "--width", "8", "--batch-size", "16"]
    assert main([*args, "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    assert main(["--resume", str(out), "--steps", "3"]) == 0
    assert checkpoint.load(out / "checkpoint.pt")["step"] == 3
    capsys.readouterr()
    err = usage_error(capsys, lambda: main(["--resume", str(out), "--norm", "lp:p=3"]))
    assert "--norm 'l2'" in err and "lp:p=3" in err and "other settings" in err


def test_resuming_with_more_steps_continues_the_decay_on_the_new_line(tmp_path: Path) -> None:
    """A finished 4-step run resumed with --steps 8 runs steps 5..8 at the rates of an 8-step
    run (not at the saved final rate 0)."""
    Runner(Trainer(toy_config(tmp_path, steps=4))).run()
    state = checkpoint.load(tmp_path)
    assert [g["lr"] for g in state["opt_d"]["param_groups"]] == [0.0]
    longer = toy_config(tmp_path, steps=8)
    resumed = Trainer(longer, resume=state)
    for opt in (resumed.opt_g, resumed.opt_d):
        assert [g["lr"] for g in opt.param_groups] == [longer.lr * (1 - 4 / 8)]
    rates = []
    original = resumed.iteration

    def iteration() -> None:
        rates.append(resumed.opt_d.param_groups[0]["lr"])
        original()

    resumed.iteration = iteration  # type: ignore[method-assign]
    Runner(resumed).run()
    assert rates == pytest.approx([longer.lr * (1 - k / 8) for k in (4, 5, 6, 7)], rel=1e-12)


def test_checkpoint_holds_everything_and_loads_with_weights_only(tmp_path: Path) -> None:
    trainer = Trainer(image_config(tmp_path / "run", precision="fp16", steps=1))
    Runner(trainer).run()
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["format"] == checkpoint.FORMAT and state["step"] == 1
    assert set(state) >= {"generator", "critic", "ema", "opt_g", "opt_d", "sched_g", "sched_d"}
    assert state["scaler_d"]["scale"] > 0  # fp16: the scaler's state is kept
    assert set(state["penalty"]) >= {"calibration.means", "calibration.count"}
    assert TrainConfig.from_dict(state["config"]) == trainer.config
    assert set(state["rng"][0]) == {"python", "torch", "cuda"}


def test_random_states_round_trip(tmp_path: Path) -> None:
    state = checkpoint.rng_state()
    draws = (random.random(), torch.rand(3))
    path = checkpoint.save(tmp_path / "c.pt", {"rng": state})
    checkpoint.set_rng_state(torch.load(path, weights_only=True)["rng"])
    assert random.random() == draws[0]
    assert torch.equal(torch.rand(3), draws[1])


def test_a_failed_save_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = checkpoint.save(tmp_path / "checkpoint.pt", {"step": 1})
    before = path.read_bytes()

    def failing_save(obj: object, f) -> None:  # type: ignore[no-untyped-def]
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(path, {"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1


def _write(path: Path, content: object) -> Path:
    torch.save(content, path)
    return path


def test_corrupt_and_foreign_checkpoints_are_refused_clearly(tmp_path: Path) -> None:
    good = Trainer(toy_config(tmp_path / "run", steps=1))
    Runner(good).run()
    data = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    cases = {
        "truncated.pt": (data[: len(data) // 2], "truncated or corrupt"),
        "empty.pt": (b"", "truncated or corrupt"),
        "noise.pt": (random.Random(0).randbytes(2000), "not a file written by torch.save"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            checkpoint.load(tmp_path / name)
    unsafe = _write(
        tmp_path / "unsafe.pt", {"format": checkpoint.FORMAT, "x": fractions.Fraction(1, 3)}
    )
    with pytest.raises(CheckpointError, match="holds other objects"):
        checkpoint.load(unsafe)
    foreign = _write(tmp_path / "foreign.pt", {"model": {"w": torch.ones(2)}})
    with pytest.raises(CheckpointError, match="not written by lipreg train"):
        checkpoint.load(foreign)
    partial = _write(tmp_path / "partial.pt", {"format": checkpoint.FORMAT, "step": 3})
    with pytest.raises(CheckpointError, match="lacks the entries"):
        checkpoint.load(partial)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "missing")


def _small_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save({"format": checkpoint.FORMAT, "step": 1, "critic": {"w": torch.ones(3)}}, buffer)
    return buffer.getvalue()


SMALL = _small_checkpoint()


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """Foreign bytes, bytes behind torch.save's zip header, or a real checkpoint with some
    bytes overwritten and possibly cut short."""
    kind = draw(st.sampled_from(["noise", "zip header", "damaged"]))
    if kind == "noise":
        return draw(st.binary(max_size=300))
    if kind == "zip header":
        return b"PK\x03\x04" + draw(st.binary(max_size=300))
    data = bytearray(SMALL)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@settings(max_examples=300, deadline=None)
@given(damaged_files())
def test_any_damaged_file_gets_a_checkpoint_error(data: bytes) -> None:
    # torch's readers fail on such bytes with IndexError, KeyError, struct.error, ...; the
    # user must always get the one clear error type.
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "checkpoint.pt"
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match="--resume: "):
            checkpoint.load(path)


def test_a_checkpoint_of_other_models_is_refused(tmp_path: Path) -> None:
    Runner(Trainer(toy_config(tmp_path / "run", steps=1))).run()
    state = checkpoint.load(tmp_path / "run")
    state["critic"] = {"net.0.weight": torch.zeros(3, 3)}
    with pytest.raises(CheckpointError, match="does not fit this run's models"):
        Trainer(toy_config(tmp_path / "run", steps=1), resume=state)
