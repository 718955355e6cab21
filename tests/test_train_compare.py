"""``lipreg train --compare-norms``: one run per norm on the same data (each equal to a run of
its own), the side-by-side figure with each run's exact W1, and a clear error for every use
that cannot make a comparison."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from train_helpers import (
    one_thread,
    read_scalars,
    restore_threads,
    toy_config,
    training_rows,
    usage_error,
)

from lipreg import parse_norm
from lipreg.train import metrics, plots
from lipreg.train.cli import main, parse_command
from lipreg.train.compare import ComparisonError, compare_norms, run_directory
from lipreg.train.loop import Trainer
from lipreg.train.runner import Runner

setup_module, teardown_module = one_thread, restore_threads

TINY = [
    "--data",
    "8gaussians",
    "--data-size",
    "64",
    "--width",
    "8",
    "--batch-size",
    "16",
    "--gen-batch-size",
    "16",
    "--steps",
    "2",
    "--log-every",
    "1",
    "--eval-samples",
    "32",
    "--no-progress",
    "--no-tensorboard",
]
NORMS = ["l2", "lp:p=1", "lp:p=inf"]


def test_compare_norms_trains_each_norm_on_the_same_data_and_draws_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    drawn: list[plots.Panel] = []
    draw = plots.plot_norm_comparison

    def spy(panels: list[plots.Panel], path: Path, **kwargs: Any) -> Path:
        drawn.extend(panels)
        return draw(panels, path, **kwargs)

    monkeypatch.setattr(plots, "plot_norm_comparison", spy)
    out = tmp_path / "cmp"
    assert main([*TINY, "--out", str(out), "--compare-norms", *NORMS]) == 0
    printed = capsys.readouterr().out

    with Image.open(out / "norm_comparison.png") as img:
        assert img.size == (3 * 460, 400)  # one panel per norm, in one row
    assert [d.name for d in sorted(p for p in out.iterdir() if p.is_dir())] == [
        "l2",
        "lp_p=1",
        "lp_p=inf",
    ]
    assert len(drawn) == 3
    configs = []
    for norm, (title, _, real, fake) in zip(NORMS, drawn, strict=True):
        run = out / norm.replace(":", "_")
        assert run == run_directory(out, norm)
        for name in ("config.json", "checkpoint.pt", "critic_surface.png", "scalars.jsonl"):
            assert (run / name).is_file(), (norm, name)
        config = json.loads((run / "config.json").read_text())
        assert config["norm"] == parse_norm(norm).spec and config["out"] == str(run)
        configs.append({k: v for k, v in config.items() if k not in ("norm", "out")})
        # the title's W1 is the run's final metric/w1, the exact W1 of the points drawn
        w1 = [r["metric/w1"] for r in read_scalars(run) if "metric/w1" in r][-1]
        assert math.isfinite(w1) and w1 > 0
        assert title == f"{norm}: W1 = {w1:.4g}"
        assert metrics.wasserstein1(fake, real) == pytest.approx(w1, rel=1e-12)
        assert f"{norm}: W1 = {w1:.4g} ({run})" in printed
        assert torch.equal(real, drawn[0][2])  # the same real points in every panel
    assert configs[0] == configs[1] == configs[2]  # only the norm and the directory differ
    assert f"wrote {out / 'norm_comparison.png'}" in printed

    # Each run is the run of its norm alone: same data, weights, batches and noise.
    alone = toy_config(tmp_path / "alone", data_size=64, width=8, steps=2, norm="lp:p=1")
    Runner(Trainer(alone)).run()
    rows = training_rows(out / "lp_p=1")
    assert rows == training_rows(tmp_path / "alone")
    assert rows != training_rows(out / "l2")  # ... and the norm does change the training


def test_an_interrupted_comparison_stops_without_a_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iteration = Trainer.iteration

    def stopped_in_the_second_run(trainer: Trainer) -> None:
        iteration(trainer)
        if trainer.config.norm == "lp:p=1" and trainer.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Trainer, "iteration", stopped_in_the_second_run)
    config = toy_config(tmp_path / "cmp", steps=2)
    comparison = compare_norms(config, ["l2", "lp:p=1", "lp:p=inf"])
    assert comparison.interrupted and comparison.figure is None
    assert [r.norm for r in comparison.runs] == ["l2"] and math.isfinite(comparison.runs[0].w1)
    assert (tmp_path / "cmp" / "lp_p=1" / "checkpoint.pt").is_file()  # resumable on its own
    assert not (tmp_path / "cmp" / "lp_p=inf").exists()
    assert not (tmp_path / "cmp" / "norm_comparison.png").exists()


BAD_USES = [
    (["--compare-norms"], "--compare-norms: expected at least one argument"),
    (["--compare-norms", "l2"], "--compare-norms needs at least two norms"),
    (["--compare-norms", "l2", "lp:p=0.5"], "argument --compare-norms"),
    (["--compare-norms", "l2", "hilbert"], "argument --compare-norms"),
    (["--compare-norms", "l2", "lp:p=1", "L2"], "--compare-norms names the norm l2 twice"),
    (["--compare-norms", "l2", "sobolev:s=-1"], "--compare-norms sobolev:s=-1"),
    (["--compare-norms", "l2", "lp:p=1", "--norm", "l2"], "drop --norm"),
    (["--compare-norms", "l2", "lp:p=1", "--resume", "runs/x"], "cannot be combined with --resume"),
]


@pytest.mark.parametrize(
    ("argv", "named"), BAD_USES, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_bad_comparisons_are_argparse_errors(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, lambda: parse_command(["--data", "8gaussians", *argv]))
    assert "error:" in err and named in err, err


@pytest.mark.parametrize(
    "data", [[], ["--data", "digits"], ["--preset", "bwgan-cifar10"]], ids=["default", "d", "p"]
)
def test_comparisons_need_toy_data(data: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, lambda: parse_command([*data, "--compare-norms", "l2", "lp:p=1"]))
    assert "--compare-norms draws critic surfaces in the plane and needs toy 2-D data" in err
    assert "8gaussians, 25gaussians, swissroll" in err


def test_comparisons_run_in_one_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["--data", "8gaussians", "--compare-norms", "l2", "lp:p=1"]
    assert "without torchrun" in usage_error(capsys, lambda: parse_command(argv))


def test_a_run_that_cannot_be_built_fails_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    argv = [*TINY, "--model", "resnet", "--out", str(out), "--compare-norms", "l2", "lp:p=1"]
    assert "--compare-norms, run of l2: --model" in usage_error(capsys, lambda: main(argv))
    assert not out.exists()
    with pytest.raises(ComparisonError) as error:
        compare_norms(toy_config(out), "l2")  # a string is one spec, not a list of them
    assert "at least two norms" in str(error.value)
    assert not out.exists()
