"""The studies' options: the data sets they run on (``--data``), their configurations (a
preset with the study's own choices) and their shared command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _stats import SPECTRAL, Metric
from _study import CLASSES, FID

from lipreg.train.config import TrainConfig

# ---- data sets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    """A data set the studies run on (``--data``): its preset and its quality metric."""

    name: str  #: the trainer's --data, e.g. "digits"
    preset: str  #: the preset every study starts from
    fid: str  #: the key of the FID-like metric
    classes: str  #: the key of the classes reached
    label: str  #: how reports name the FID-like metric, e.g. "digits FID"
    metric: str  #: how reports name the quality metric, e.g. "digits metric"
    title: str  #: how reports name the data in prose, e.g. "the digits"
    heading: str  #: how figures name the data, e.g. "Digits at 16x16"

    @property
    def quality(self) -> Metric:
        """The FID-like metric."""
        return Metric(self.fid, self.label, "lower")

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The metrics a report shows, when the runs measured them: the FID-like metric,
        the classes reached, and the spectral metric (``_stats.SPECTRAL``)."""
        return (self.quality, Metric(self.classes, "classes reached", "higher"), *SPECTRAL)


DATASETS = {
    "digits": DataSet(
        name="digits",
        # The papers' schedule (5 critic steps, the penalty on every one), not the main job's
        # tuned one: what a norm or a method buys is asked on the papers' schedule, and the
        # records stay comparable when the main job's schedule changes.
        preset="bwgan-digits-paper",
        fid=FID,
        classes=CLASSES,
        label="digits FID",
        metric="digits metric",
        title="the digits",
        heading="Digits at 16x16",
    ),
    # The same papers' schedule on Fashion-MNIST at its native 28x28 (the main job's recipe
    # there is bwgan-fashion; the studies ask what a norm or a method buys on the papers').
    "fashion-mnist": DataSet(
        name="fashion-mnist",
        preset="bwgan-fashion-paper",
        fid="metric/fashion_fid",
        classes="metric/fashion_classes",
        label="Fashion-MNIST FID",
        metric="Fashion-MNIST metric",
        title="Fashion-MNIST",
        heading="Fashion-MNIST",
    ),
}


def dataset_of(meta: dict[str, Any]) -> DataSet:
    """The data set of a saved study (records written before ``--data`` are digits)."""
    return DATASETS[meta.get("data", "digits")]


# ---- the scripts' shared command line -----------------------------------------------------

QUICK = {
    "width": 4,
    "batch_size": 16,
    "gen_batch_size": 16,
    "eval_samples": 100,
}
"""``--quick``: a tiny version of the task (seconds), for smoke tests of the scripts."""


def study_overrides(
    steps: int, evals: int, quick: bool, log_every: int | None = None
) -> dict[str, Any]:
    """A study's own choices on top of the preset: ``steps`` generator steps, ``evals``
    evaluations after step 0, training scalars logged as often (or every ``log_every``
    steps), and the tiny task of :data:`QUICK` when ``quick``."""
    every = max(1, steps // evals)
    return {
        "steps": steps,
        "eval_every": every,
        "log_every": every if log_every is None else log_every,
        **(QUICK if quick else {}),
    }


def base_config(dataset: str = "digits", **overrides: Any) -> TrainConfig:
    """The preset of ``dataset`` (:data:`DATASETS`) with ``overrides`` (the study's own
    choices), writing nothing but what the study reads."""
    from lipreg.train.presets import PRESETS

    preset = DATASETS[dataset].preset
    if preset not in PRESETS:
        raise ValueError(
            f"--data {dataset}: the studies start from the preset {preset}, which "
            f"lipreg.train.presets.PRESETS does not have yet; known: {sorted(PRESETS)}"
        )
    quiet = {"tensorboard": False, "progress": False, "checkpoint_every": 0, "inception": False}
    return TrainConfig.from_dict({**PRESETS[preset], **quiet, **overrides})


def planned(
    dataset: str,
    methods: dict[str, dict[str, Any]],
    plan: dict[str, int],
    evals: int,
    quick: bool,
) -> dict[str, TrainConfig]:
    """Every setting's configuration: the preset with the setting's ``methods`` overrides and
    the study's choices for its ``plan``-ned steps."""
    return {
        name: base_config(dataset, **study_overrides(plan[name], evals, quick), **overrides)
        for name, overrides in methods.items()
    }


def parser(
    doc: str, steps: int, seeds: int, jobs: int, evals: int, out: str
) -> argparse.ArgumentParser:
    """The options every study script takes, with its defaults; ``out`` is the default
    output folder under ``runs/<data>/``."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", choices=sorted(DATASETS), default="digits", help="the data set (%(default)s)"
    )
    p.add_argument("--steps", type=int, default=steps, help="generator steps (%(default)s)")
    p.add_argument("--seeds", type=int, default=seeds, help="seeds 0..N-1 (%(default)s)")
    p.add_argument(
        "--jobs", type=int, default=jobs, help="runs at a time, one thread each (%(default)s)"
    )
    p.add_argument(
        "--evals", type=int, default=evals, help="evaluations per run after step 0 (%(default)s)"
    )
    p.add_argument("--out", type=Path, help=f"output folder (default: runs/DATA/{out})")
    p.add_argument(
        "--figures",
        type=Path,
        help="folder for the PNGs (default: OUT), e.g. docs/img for the documentation",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="measure the time per iteration, print the estimated duration and stop",
    )
    p.add_argument(
        "--redraw",
        action="store_true",
        help="redraw the tables and plots from OUT's saved JSON without training",
    )
    p.add_argument(
        "--rescore",
        action="store_true",
        help="re-evaluate OUT's kept generators with the current metrics, rewrite the final "
        "evaluation of every run in OUT's JSON, then redraw",
    )
    p.add_argument(
        "--quick", action="store_true", help="a tiny version in seconds (2 steps, 2 seeds)"
    )
    p.set_defaults(default_out=out)
    return p


def size(args: argparse.Namespace) -> tuple[int, int, int]:
    """``(steps, seeds, jobs)`` of a study: the options', or 2 steps, 2 seeds and one job at a
    time with ``--quick``."""
    return (2, 2, 1) if args.quick else (args.steps, args.seeds, args.jobs)


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``p``'s arguments with ``out`` filled in (``runs/<data>/<default>``)."""
    args = p.parse_args(argv)
    if args.out is None:
        args.out = Path("runs") / args.data / args.default_out
    return args
