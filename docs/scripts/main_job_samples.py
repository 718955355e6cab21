"""docs/img/main_job_samples.png: the last sample grid of the README's main job.

Runs the README's command, ``lipreg train --preset bwgan-digits`` (4000 generator steps,
about 2 minutes on 2 CPU cores), into a temporary folder and copies its final grid of 64
samples; prints the run's closing lines (the digits FID and classes reached).

    python docs/scripts/main_job_samples.py [--out docs/img] [--steps 4000]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=IMG, help="folder for the PNG (docs/img)")
    parser.add_argument(
        "--steps", type=int, default=PRESETS["bwgan-digits"]["steps"], help="generator steps"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as run:
        command = [
            sys.executable, "-m", "lipreg.train", "--preset", "bwgan-digits", "--out", run,
            "--steps", str(args.steps), "--no-progress",
        ]  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        print("\n".join(done.stdout.strip().splitlines()[-2:]))
        grid = Path(run) / "samples" / f"step_{args.steps:06d}.png"
        shutil.copyfile(grid, args.out / "main_job_samples.png")


if __name__ == "__main__":
    main()
