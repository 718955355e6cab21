"""The command line of ``lipreg train``: options, presets, help, and a clear error for every bad
option (argparse's exit code 2 with the option named)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import one_thread, restore_threads, toy_config, usage_error

from lipreg import parse_norm
from lipreg.cli import main as lipreg_main
from lipreg.train.cli import build_parser, main, parse_command
from lipreg.train.config import TrainConfig
from lipreg.train.loop import Trainer
from lipreg.train.presets import PRESETS

setup_module, teardown_module = one_thread, restore_threads

TINY = ["--data", "8gaussians", "--data-size", "64", "--width", "8", "--no-progress"]


def test_no_options_give_the_defaults() -> None:
    command = parse_command([])
    config = command.config
    assert config == TrainConfig() and command.resume is None and command.compare_norms == ()
    assert config.betas == (0.0, 0.9) and all(type(b) is float for b in config.betas)
    assert (config.lr, config.n_critic, config.batch_size, config.gen_batch_size) == (
        2e-4,
        5,
        64,
        128,
    )


def test_every_option_is_explained_and_maps_to_the_config() -> None:
    parser = build_parser()
    fields = set(TrainConfig().to_dict())
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    for action in options:
        assert action.help and len(action.help) > 20, action.option_strings
        assert action.dest in fields | {"preset", "resume", "compare_norms"}, action.dest
    assert {a.dest for a in options} == fields | {"preset", "resume", "compare_norms"}


def test_preset_sets_the_papers_configuration_and_explicit_options_win() -> None:
    config = parse_command(["--preset", "bwgan-cifar10"]).config
    preset = PRESETS["bwgan-cifar10"]
    for key, value in preset.items():
        if key != "norm":
            assert getattr(config, key) == value, key
    assert config.norm == parse_norm("sobolev:s=-1.5").spec and config.drift == 1e-5
    assert config.lam == "auto" and config.gamma == "auto" and config.ema == 0.99
    config = parse_command(
        ["--preset", "bwgan-cifar10", "--norm", "lp:p=10", "--steps", "7"]
    ).config
    assert config.norm == parse_norm("lp:p=10").spec and config.steps == 7
    assert config.model == "resnet" and config.drift == 1e-5
    baseline = parse_command(["--preset", "wgan-gp-cifar10"]).config
    assert (baseline.norm, baseline.lam, baseline.gamma) == ("l2", 10.0, 1.0)


def test_values_are_parsed() -> None:
    config = parse_command(
        ["--lam", "auto", "--gamma", "2.5", "--betas", "0.5", "0.99", "--norm", "Sobolev: s=-1"]
    ).config
    assert config.lam == "auto" and config.gamma == 2.5 and config.betas == (0.5, 0.99)
    assert config.norm == parse_norm("sobolev:s=-1").spec
    config = parse_command(["--no-tensorboard", "--no-progress", "--precision", "bf16"]).config
    assert not config.tensorboard and not config.progress and config.precision == "bf16"


BAD_OPTIONS = [
    (["--steps", "0"], "--steps"),
    (["--steps", "ten"], "--steps"),
    (["--n-critic", "-1"], "--n-critic"),
    (["--batch-size", "1.5"], "--batch-size"),
    (["--gen-batch-size", "0"], "--gen-batch-size"),
    (["--lam", "-1"], "--lam"),
    (["--lam", "big"], "--lam"),
    (["--gamma", "0"], "--gamma"),
    (["--gamma", "nan"], "--gamma"),
    (["--lr", "0"], "--lr"),
    (["--betas", "1", "0.9"], "--betas"),
    (["--betas", "0.5"], "--betas"),
    (["--ema", "1"], "--ema"),
    (["--drift", "-1e-5"], "--drift"),
    (["--norm", "lp:p=0.5"], "--norm"),
    (["--norm", "sobolev"], "--norm"),
    (["--norm", "hilbert"], "--norm"),
    (["--data", "mnist"], "--data"),
    (["--penalty", "clip"], "--penalty"),
    (["--precision", "16"], "--precision"),
    (["--model", "vit"], "--model"),
    (["--lr-decay", "exponential"], "--lr-decay"),
    (["--loss", "lsgan"], "--loss"),
    (["--lr-final", "-1"], "--lr-final"),
    (["--lr-decay", "none", "--lr-final", "1e-5"], "--lr-final"),
    (["--decay-steps", "0"], "--decay-steps"),
    (["--beta2-final", "1"], "--beta2-final"),
    (["--gamma-final", "-0.1"], "--gamma-final"),
    (["--ema-half-life", "0"], "--ema-half-life"),
    (["--ema", "0", "--ema-half-life", "100"], "--ema-half-life"),
    (["--loss", "rpgan", "--batch-size", "64", "--gen-batch-size", "96"], "--gen-batch-size"),
    (["--device", "tpu"], "--device"),
    (["--seed", "-3"], "--seed"),
    (["--eval-every", "-1"], "--eval-every"),
    (["--checkpoint-every", "x"], "--checkpoint-every"),
    (["--log-every", "0"], "--log-every"),
    (["--image-size", "0"], "--image-size"),
    (["--inception-weights", "/nonexistent/pt_inception.pth"], "--inception-weights"),
    (["--preset", "bwgan-mnist"], "--preset"),
    (["--resume", "/nonexistent/run"], "--resume"),
    (["--data", "swissroll", "--eval-samples", "5000"], "--eval-samples 5000: toy data"),
    (["--unknown-option"], "unrecognized arguments: --unknown-option"),
]
if not torch.cuda.is_available():
    BAD_OPTIONS.append((["--device", "cuda"], "--device"))


@pytest.mark.parametrize(
    ("argv", "named"), BAD_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_bad_option_is_an_argparse_error_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, lambda: parse_command(argv))
    assert "error:" in err and named in err, err


# Options that parse but contradict the data or the models: rejected when the run is built,
# before anything is written, with the option named.
BAD_COMBINATIONS = [
    (["--data", "8gaussians", "--model", "resnet"], "--model"),
    (["--data", "8gaussians", "--image-size", "16"], "image_size"),
    (["--data", "patches", "--data-root", "/tmp"], "--data patches"),
    (["--data", "cifar10"], "cifar"),
    (
        ["--data", "patches", "--data-size", "64", "--image-size", "18", "--model", "dcgan"],
        "b * 2**k",
    ),
    (["--data", "8gaussians", "--data-size", "32", "--batch-size", "64"], "--batch-size"),
    (["--data", "digits", "--model", "mlp"], "--model mlp"),
    (["--data", "8gaussians", "--norm", "sobolev:s=-1"], "--norm sobolev:s=-1"),
    (["--data", "8gaussians", "--penalty", "gp", "--gamma-final", "0.1"], "--gamma-final"),
]


@pytest.mark.parametrize(("argv", "named"), BAD_COMBINATIONS)
def test_inconsistent_options_fail_before_training(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(
        capsys, lambda: main([*argv, "--out", str(tmp_path / "run"), "--no-progress"])
    )
    assert named in err, err
    assert not (tmp_path / "run").exists()


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        lipreg_main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lipreg train")
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in out, option


def test_top_level_command_lists_train(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        lipreg_main(["--help"])
    assert info.value.code == 0 and "train" in capsys.readouterr().out
    err = usage_error(capsys, lambda: lipreg_main(["evaluate"]))
    assert "invalid choice" in err and "evaluate" in err, err


def test_parser_is_an_argparse_parser_for_the_docs() -> None:
    parser = build_parser()
    assert isinstance(parser, argparse.ArgumentParser) and parser.prog == "lipreg train"
    assert "--penalty" in parser.format_help()


@pytest.mark.slow
def python(*args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh process on one thread, its output captured."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_python_m_lipreg_train_runs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = python("-m", "lipreg.train", *TINY, "--steps", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "checkpoint.pt").exists() and (out / "scalars.jsonl").exists()


def _user_errors(root: Path) -> dict[str, list[str]]:
    """Command lines with a mistake in the user's files, each set up under ``root``."""
    from test_train_data import write_cifar

    cifar = root / "cifar"
    write_cifar(cifar)
    refused = root / "refused"
    write_cifar(refused)
    (refused / "data_batch_2").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    incomplete = root / "incomplete"
    write_cifar(incomplete)
    (incomplete / "data_batch_5").unlink()
    (root / "empty").mkdir()
    (root / "a-file").write_text("not a directory")
    folder = root / "broken-images"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    return {
        "refused CIFAR pickle": ["--data", "cifar10", "--data-root", str(refused)],
        "missing CIFAR batch": ["--data", "cifar10", "--data-root", str(incomplete)],
        "missing --data-root": ["--data", "cifar10", "--data-root", str(root / "nowhere")],
        "empty --data-root": ["--data", "cifar10", "--data-root", str(root / "empty")],
        "--data-root a file": ["--data", "cifar10-test", "--data-root", str(root / "a-file")],
        "missing folder": ["--data", "folder", "--data-root", str(root / "nowhere")],
        "empty folder": ["--data", "folder", "--data-root", str(root / "empty")],
        "unreadable image": [
            *("--data", "folder", "--data-root", str(folder), "--image-size", "8"),
            *("--batch-size", "1", "--gen-batch-size", "1"),
        ],
        "--out under a file": [*TINY, "--out", str(root / "a-file" / "run")],
        "--out a file": [*TINY, "--out", str(root / "a-file")],
    }


@pytest.mark.parametrize(
    "case",
    [
        "refused CIFAR pickle",
        "missing CIFAR batch",
        "missing --data-root",
        "empty --data-root",
        "--data-root a file",
        "missing folder",
        "empty folder",
        "unreadable image",
        "--out under a file",
        "--out a file",
    ],
)
def test_user_errors_end_in_one_line_and_status_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _user_errors(tmp_path)[case]
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "run")]
    err = usage_error(capsys, lambda: main([*argv, "--steps", "1", "--no-progress"]))
    last = err.strip().splitlines()[-1]
    assert last.startswith("lipreg train: error: ") and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_every_error_is_one_line_that_points_to_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's own errors, a bad combination, a data error: the message alone, on one
    line, without the usage text that would bury it."""
    nowhere = str(tmp_path / "nowhere")
    for argv in (
        ["--steps", "0"],
        ["--unknown-option"],
        ["--penalty", "r1", "--lam", "5"],
        ["--data", "cifar10", "--data-root", nowhere, "--out", str(tmp_path / "run")],
    ):
        err = usage_error(capsys, lambda argv=argv: main(argv))  # type: ignore[misc]
        assert "usage:" not in err and err.count("\n") == 1, err
        assert err.startswith("lipreg train: error: ") and err.endswith(
            " (see lipreg train --help)\n"
        ), err
    err = usage_error(capsys, lambda: main(["--steps", "0"], prog="python -m lipreg.train"))
    assert err.endswith(" (see python -m lipreg.train --help)\n"), err


@pytest.mark.parametrize(
    "argv",
    [
        ["--penalty", "r1", "--lam", "5"],
        ["--penalty", "r2", "--lam", "auto"],
        ["--penalty", "r1", "--lam", "10"],  # the default value, but given: still no effect
    ],
)
def test_lam_is_refused_where_it_has_no_effect(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """R1 and R2 are weighted by gamma alone (as the StyleGAN adapter insists)."""
    err = usage_error(capsys, lambda: parse_command(argv))
    last = err.strip().splitlines()[-1]
    assert "--lam" in last and f"--penalty {argv[1]}" in last and "--gamma" in last, last
    assert parse_command(argv[:2]).config.penalty == argv[1]  # the default lam is fine
    with pytest.raises(ValueError, match="--lam"):
        Trainer(toy_config(tmp_path, penalty=argv[1], lam=5.0))


ENTRY_POINTS = {
    "lipreg train": "from lipreg.cli import main\nsys.exit(main(['train', '--help']))",
    "python -m lipreg.train": "import runpy\nsys.argv = ['lipreg.train', '--help']\n"
    "runpy.run_module('lipreg.train', run_name='__main__')",
}


@pytest.mark.slow
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("missing", ["numpy", "matplotlib"])
def test_without_the_train_extra_lipreg_train_says_how_to_install_it(
    missing: str, entry: str
) -> None:
    """`pip install -e .` alone: the message, not a ModuleNotFoundError traceback (numpy at
    the start, or matplotlib at the end of a run), from either way in."""
    code = f"import sys; sys.modules[{missing!r}] = None\n" + ENTRY_POINTS[entry]
    done = python("-c", code)
    assert done.returncode == 2, done.stderr
    assert f"({missing} is missing)" in done.stderr and "lipreg[train]" in done.stderr
    assert "Traceback" not in done.stderr
