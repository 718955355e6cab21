"""The project's promises outside the library code: packaging, README commands, example."""

from __future__ import annotations

import importlib.metadata
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lipreg
import lipreg.integrations

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_version_and_integrations_package() -> None:
    assert lipreg.__version__ == importlib.metadata.version("lipreg")
    assert Path(lipreg.integrations.__file__).parent.name == "integrations"
    assert (Path(lipreg.__file__).parent / "py.typed").exists()


def test_readme_has_the_two_commands() -> None:
    commands = re.findall(r"^(pip install .*)$", README, flags=re.MULTILINE)
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "examples/regularise_critic.py" in main_job
    assert tests.endswith("&& python -m pytest")
    marker = README.index("<!-- test-command -->")
    assert README.index(tests) > marker  # .ci/run runs the line after the marker
    assert (ROOT / "examples" / "regularise_critic.py").exists()


@pytest.mark.slow
def test_main_job_runs_and_prints_lam_gamma_and_penalty() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "regularise_critic.py"), "--steps", "20"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
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
