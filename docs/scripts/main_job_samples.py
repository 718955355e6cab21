"""docs/img/main_job_samples.png: the last sample grid of the README's main job (or of the
Fashion-MNIST preset's run, docs/img/fashion_preset_samples.png, with --preset bwgan-fashion).

Runs ``lipreg train --preset PRESET`` (bwgan-digits, the README's command: 4000 generator
steps, about 2 minutes on 2 CPU cores; bwgan-fashion: 8000 steps, about 9 minutes, and
Fashion-MNIST's files) into a temporary folder and copies its final grid of 64 samples;
prints the run's closing lines (the quality metric's scores).

    python docs/scripts/main_job_samples.py [--preset bwgan-digits] [--out docs/img] [--steps N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import IMG

from lipreg.train.presets import PRESETS

PICTURES = {"bwgan-digits": "main_job_samples.png", "bwgan-fashion": "fashion_preset_samples.png"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--preset", choices=sorted(PICTURES), default="bwgan-digits", help="(%(default)s)"
    )
    parser.add_argument("--out", type=Path, default=IMG, help="folder for the PNG (docs/img)")
    parser.add_argument("--steps", type=int, help="generator steps (the preset's)")
    args = parser.parse_args()
    steps = PRESETS[args.preset]["steps"] if args.steps is None else args.steps
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as run:
        command = [
            sys.executable, "-m", "lipreg.train", "--preset", args.preset, "--out", run,
            "--steps", str(steps), "--no-progress",
        ]  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        print("\n".join(done.stdout.strip().splitlines()[-2:]))
        grid = Path(run) / "samples" / f"step_{steps:06d}.png"
        shutil.copyfile(grid, args.out / PICTURES[args.preset])


if __name__ == "__main__":
    main()
