"""Importing lipreg and its integrations never imports a host codebase or framework."""

from __future__ import annotations

import subprocess
import sys

import pytest

HOSTS = (
    "lightning",
    "pytorch_lightning",
    "accelerate",
    "torch_utils",
    "utils",
    "training",
    "R3GAN",
    "op",
)


@pytest.mark.slow
def test_integrations_import_their_hosts_lazily() -> None:
    code = (
        "import sys\n"
        "import lipreg, lipreg.integrations\n"
        "import lipreg.integrations.stylegan, lipreg.integrations.lightning\n"
        "import lipreg.integrations.accelerate, lipreg.integrations.studiogan\n"
        "import lipreg.integrations.r3gan, lipreg.integrations.rosinality\n"
        f"print(sorted(m for m in {HOSTS!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
