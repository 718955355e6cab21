"""What keeping a study's generators in a lower precision costs: trains a few runs of the
preset (as a study trains them), then scores each run's final generator (the weight
average) as the run evaluated it, once from the float32 original and once from each
candidate storage precision, and prints the differences of every metric, with the bytes a
run takes in each precision.

The float32 rescoring must equal what the run recorded (the same fixed noise, sample count
and real reference): that checks the re-scoring path itself. The differences of the other
precisions are what ``--rescore`` of a kept study inherits (``_records.KEPT_DTYPE``,
``_records.FID_TOLERANCE``).

    python benchmarks/kept_precision.py                 # 3 runs of 400 steps, ~3 min on 2 cores
    python benchmarks/kept_precision.py --quick         # a tiny version, seconds
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Sequence

import _options
import _records
import _study
import torch

PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def size(state: dict[str, torch.Tensor], dtype: torch.dtype) -> int:
    """Bytes of ``state`` saved in ``dtype`` (as :func:`_records.save_generators` keeps it)."""
    buffer = io.BytesIO()
    torch.save(_records.compact(state, dtype), buffer)
    return buffer.getbuffer().nbytes


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", choices=sorted(_options.DATASETS), default="digits")
    p.add_argument("--runs", type=int, default=3, help="runs, seeds 0..N-1 (%(default)s)")
    p.add_argument("--steps", type=int, default=400, help="generator steps (%(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (%(default)s)")
    p.add_argument("--quick", action="store_true", help="a tiny version in seconds")
    args = p.parse_args(argv)
    steps, runs, jobs = (2, 2, 1) if args.quick else (args.steps, args.runs, args.jobs)
    study = {**_options.study_overrides(steps, 1, args.quick), "eval_every": 0}
    config = _options.base_config(args.data, **study)
    print(f"machine: {_records.machine()}")
    print(f"training {runs} runs of {steps} steps of the preset {config.data}, {jobs} at a time")
    jobs_ = [_study.Job("preset", seed, config, initial=False) for seed in range(runs)]
    trained = _study.train_all(jobs_, jobs)
    kept = [r.generator for r in trained if r.generator is not None]
    tasks = [(g, dtype) for g in kept for dtype in (None, *PRECISIONS.values())]
    scores = _study.pool_map(_score, tasks, jobs)
    keys = [k for k in trained[0].evals[-1] if k.startswith("metric/")]
    names = ["float32", *PRECISIONS]
    lines = [
        "| seed | metric | recorded | " + " | ".join(f"{n} - recorded" for n in names) + " |",
        "| ---: | --- | ---: |" + " ---: |" * len(names),
    ]
    worst = dict.fromkeys(names, 0.0)
    for i, run in enumerate(trained):
        mine = scores[i * len(names) : (i + 1) * len(names)]
        for key in keys:
            recorded = run.evals[-1][key]
            diffs = [s[key] - recorded for s in mine]
            lines.append(
                f"| {run.seed} | {key[7:]} | {recorded:.4g} | "
                + " | ".join(f"{d:+.2g}" for d in diffs)
                + " |"
            )
            if key == _options.DATASETS[args.data].fid:
                for n, d in zip(names, diffs, strict=True):
                    worst[n] = max(worst[n], abs(d)) if math.isfinite(d) else math.inf
    print("\n".join(lines))
    state = kept[0]["state"]
    print(
        "largest |FID difference|: "
        + ", ".join(f"{n} {worst[n]:.3g}" for n in names)
        + "; bytes per run: "
        + ", ".join(
            f"{n} {size(state, d)}" for n, d in (("float32", torch.float32), *PRECISIONS.items())
        )
    )
    return 0


def _score(task: tuple[dict[str, object], torch.dtype | None]) -> dict[str, float]:
    kept, dtype = task
    return _study.score(kept, dtype)


if __name__ == "__main__":
    sys.exit(main())
