"""The project's promises outside the library code: packaging, README commands, example."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import read_scalars

import lipreg
import lipreg.integrations

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_version_and_integrations_package() -> None:
    assert lipreg.__version__ == importlib.metadata.version("lipreg")
    assert Path(lipreg.integrations.__file__).parent.name == "integrations"
    assert (Path(lipreg.__file__).parent / "py.typed").exists()


def _extra(name: str) -> list[str]:
    """The distribution names of an extra of pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] for r in project["optional-dependencies"][name]
    ]


def test_the_train_extra_brings_what_lipreg_train_uses() -> None:
    """The README promises TensorBoard events; `lipreg train` checks the other modules of the
    extra before it starts (lipreg.train.extra.TRAIN_MODULES, by import name)."""
    from lipreg.train.extra import TRAIN_MODULES

    train = _extra("train")
    assert "tensorboard" in train
    imports = {"pillow": "PIL", "scikit-learn": "sklearn"}
    optional = {"tensorboard"}  # the run says when it is missing and goes on
    assert sorted(TRAIN_MODULES) == sorted(imports.get(d, d) for d in train if d not in optional)


MAIN_JOB_PREFIX = 'pip install -c constraints.txt -e ".[train]" && '


def test_the_library_alone_brings_numpy() -> None:
    """``import torch`` without NumPy warns "Failed to initialize NumPy" on every start, so
    the library's own dependencies (no extra) include it."""
    core = [r for r in importlib.metadata.requires("lipreg") or [] if "extra ==" not in r]
    assert any(re.match(r"numpy\b", r) for r in core), core


def test_readme_has_the_two_commands() -> None:
    commands = re.findall(r"^(pip install .*)$", README, flags=re.MULTILINE)
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert main_job.startswith(MAIN_JOB_PREFIX + "lipreg train ")
    assert tests.endswith("&& python -m pytest")
    marker = README.index("<!-- test-command -->")
    assert README.index(tests) > marker  # .ci/run runs the line after the marker
    assert (ROOT / "examples" / "regularise_critic.py").exists()


def _main_job_arguments(out: Path, steps: int) -> list[str]:
    """The README's ``lipreg train`` arguments with fewer steps and another run directory."""
    main_job = re.findall(r"^(pip install .*)$", README, flags=re.MULTILINE)[0]
    args = shlex.split(main_job.removeprefix(MAIN_JOB_PREFIX))[1:]
    for option, value in (
        ("--steps", str(steps)),
        ("--eval-every", str(steps)),
        ("--out", str(out)),
    ):
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    return args


@pytest.mark.slow
def test_main_job_trains_and_writes_its_outputs(tmp_path: Path) -> None:
    """The README's main job through the console script, with 2 steps: it logs the digits
    metrics and states them in its last line."""
    script = Path(sys.executable).with_name("lipreg")
    assert script.exists(), "the lipreg console script is not installed (pip install -e .)"
    out = tmp_path / "run"
    done = subprocess.run(
        # fewer digits and evaluation samples keep the test short
        [str(script), *_main_job_arguments(out, 2), "--data-size", "512", "--eval-samples", "64"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # small models; no thrashing on shared cores
    )
    assert done.returncode == 0, done.stderr[-3000:]
    training = [r for r in read_scalars(out) if "loss/critic" in r]
    assert training and all(math.isfinite(v) for r in training for v in r.values())
    assert training[-1]["lam"] > 0 and training[-1]["gamma"] > 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["norm"] == lipreg.parse_norm("sobolev:s=-1.5").spec
    assert (saved["data"], saved["lam"], saved["gamma"]) == ("digits", "auto", "auto")
    metrics = [r for r in read_scalars(out) if "metric/digits_fid" in r]
    assert [r["step"] for r in metrics] == [0, 2]
    assert 0 <= metrics[-1]["metric/digits_classes"] <= 10
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("lipreg train: step 2: digits FID "), last
    assert "classes reached" in last and "spectral distance" in last
    for name in ("checkpoint.pt", "samples/step_000002.png", "plots/losses.png"):
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_example_prints_lam_gamma_and_penalty() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "regularise_critic.py"), "--steps", "20"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout
    header, _, *rows = out.strip().splitlines()
    assert "lam" in header and "gamma" in header and "penalty" in header
    table = [r for r in rows if r.startswith(("8 Gaussians", "smooth images"))]
    assert len(table) == 6
    for row in table:
        numbers = [float(v.rstrip("%")) for v in row.split()[-6:]]
        assert all(math.isfinite(v) for v in numbers), row
        lam, gamma = numbers[0], numbers[1]
        assert lam > 0 and gamma > 0
