"""Stopping a run by signals: the first SIGINT is acknowledged at once and the run stops after
the iteration with a checkpoint; a second one stops at once, without a traceback, keeping or
saving a checkpoint of a finished iteration."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from train_helpers import one_thread, restore_threads, toy_config, training_rows

from lipreg.train import checkpoint
from lipreg.train.cli import main
from lipreg.train.evaluate import Evaluator
from lipreg.train.loop import Trainer
from lipreg.train.runner import Runner

setup_module, teardown_module = one_thread, restore_threads


def _signals_in_iteration(trainer: Trainer, step: int, count: int, seen: list[str]) -> None:
    """Send ``count`` SIGINTs during iteration ``step`` (1-based), recording what the user
    saw on stderr right after the first one, before the iteration ends."""
    original = trainer.iteration

    def iteration() -> None:
        if trainer.step == step - 1:
            for _ in range(count):
                os.kill(os.getpid(), signal.SIGINT)
                seen.append("")  # the handler runs before this line
        original()

    trainer.iteration = iteration  # type: ignore[method-assign]


def test_the_first_sigint_is_acknowledged_at_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    trainer = Trainer(toy_config(tmp_path, steps=4))
    original = trainer.iteration
    said: list[str] = []

    def iteration() -> None:
        if trainer.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
            said.append(capfd.readouterr().err)  # still inside the iteration
        original()

    trainer.iteration = iteration  # type: ignore[method-assign]
    summary = Runner(trainer).run()
    assert "stopping after this iteration" in said[0] and "again" in said[0]
    assert summary.interrupted and summary.step == 2
    assert checkpoint.load(tmp_path)["step"] == 2


def test_a_second_sigint_stops_at_once_keeping_the_last_checkpoint(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    trainer = Trainer(toy_config(tmp_path, steps=6, checkpoint_every=2))
    _signals_in_iteration(trainer, 3, count=2, seen=[])
    summary = Runner(trainer).run()  # no KeyboardInterrupt
    assert summary.interrupted and summary.step == 2  # iteration 3 did not complete
    assert checkpoint.load(tmp_path)["step"] == 2
    out = capfd.readouterr().out
    assert "at once" in out and "step 2 is kept" in out and "--resume" in out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_sigint_during_an_evaluation_saves_that_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Between iterations the state is whole: it is saved, and resuming continues exactly."""
    whole = toy_config(tmp_path / "whole", steps=4, eval_every=2)
    Runner(Trainer(whole)).run()

    original = Evaluator.evaluate

    def evaluate(self: Evaluator, step: int, generator: object) -> dict[str, float]:
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, step, generator)  # type: ignore[arg-type]

    monkeypatch.setattr(Evaluator, "evaluate", evaluate)
    part = toy_config(tmp_path / "part", steps=4, eval_every=2)
    summary = Runner(Trainer(part)).run()
    assert summary.interrupted and summary.step == 2
    assert "checkpoint saved" in capfd.readouterr().out
    monkeypatch.undo()
    state = checkpoint.load(tmp_path / "part")
    assert state["step"] == 2
    Runner(Trainer(part, resume=state)).run()
    assert training_rows(tmp_path / "part") == training_rows(tmp_path / "whole")


def test_sigint_during_the_final_evaluation_ends_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Evaluator.finish

    def finish(self: Evaluator, *args: object) -> list[Path]:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Evaluator, "finish", finish)
    summary = Runner(Trainer(toy_config(tmp_path, steps=2))).run()
    assert summary.interrupted and summary.step == 2
    assert checkpoint.load(tmp_path)["step"] == 2


def test_ctrl_c_while_the_run_is_set_up_ends_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Building 10,000 patches or reading CIFAR-10 takes a while before the run's own
    handlers are installed."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "__init__", interrupted)
    assert main(["--data", "8gaussians", "--out", str(tmp_path / "run")]) == 130
    assert "interrupted before training started" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
