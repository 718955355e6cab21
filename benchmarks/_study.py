"""Shared machinery of the quality studies (gamma_parametrisation.py, norm_study.py,
method_race.py): train configurations of ``lipreg train`` over seeds, read their metric
histories, and summarise them with intervals.

Runs are independent processes' worth of work; ``--jobs 2`` runs two at a time with one
thread each (on two cores, two single-threaded runs of these small models finish sooner than
one after the other with two threads each), ``--jobs 1`` one at a time with every thread.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import lipreg
from lipreg.train.config import TrainConfig


@dataclass
class Run:
    """One finished training run of a study."""

    name: str  #: the setting, e.g. "W^{-1.5,2}"
    seed: int
    seconds: float  #: wall time of the training iterations (evaluations excluded)
    evals: list[dict[str, float]]  #: the evaluation rows: step, seconds so far, metric/...
    train: list[dict[str, float]] = field(default_factory=list)  #: logged training scalars

    def final(self, key: str) -> float:
        """``key`` (e.g. ``"metric/digits_fid"``) at the last evaluation."""
        return self.evals[-1][key]


Job = tuple[str, int, TrainConfig, Callable[[Any], None] | None]


def train(job: Job) -> Run:
    """Train ``job``'s configuration; the clock counts training only (the trainer's own
    evaluations are timed out with the steps they happen at)."""
    from lipreg.train.loop import Trainer

    name, seed, config, setup = job
    with tempfile.TemporaryDirectory() as out:
        config = dataclasses.replace(config, out=out, seed=seed, progress=False)
        trainer = Trainer(config)
        if setup is not None:
            setup(trainer)
        evaluator = trainer.evaluator(Path(out))
        evals: list[dict[str, float]] = []
        clock = 0.0

        def evaluate() -> None:
            values = evaluator.evaluate(trainer.step, trainer.sampler)
            evals.append({"step": trainer.step, "seconds": clock, **values})

        evaluate()
        rows: list[dict[str, float]] = []
        while trainer.step < config.steps:
            started = time.perf_counter()
            trainer.iteration()
            clock += time.perf_counter() - started
            if trainer.step % config.log_every == 0:
                rows.append({"step": trainer.step, **trainer.scalars()})
            if trainer.step % config.eval_every == 0 or trainer.step == config.steps:
                evaluate()
        trainer.close()
    return Run(name=name, seed=seed, seconds=clock, evals=evals, train=rows)


def train_all(jobs: Sequence[Job], workers: int) -> list[Run]:
    """:func:`train` every job, ``workers`` at a time (one thread each when ``workers > 1``),
    printing one line per finished run; results in the order of ``jobs``."""
    if workers == 1:
        runs = []
        for job in jobs:
            runs.append(train(job))
            _report(runs[-1])
        return runs
    with ProcessPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        futures = [pool.submit(train, job) for job in jobs]
        for f in futures:
            _report(f.result())
        return [f.result() for f in futures]


def _report(run: Run) -> None:
    last = run.evals[-1]
    metrics = ", ".join(f"{k[7:]} {v:.4g}" for k, v in last.items() if k.startswith("metric/"))
    print(f"  {run.name} seed {run.seed}: {run.seconds:.0f} s; {metrics}", flush=True)


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its two-sided 95 % Student-t interval (``nan`` for one value)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan
    return mean, t975(n - 1) * statistics.stdev(values) / math.sqrt(n)


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean of ``a - b`` over seeds, the half-width of its 95 % interval and the two-sided
    p-value of the paired t-test."""
    from scipy.stats import ttest_rel

    diff = [x - y for x, y in zip(a, b, strict=True)]
    mean, half = mean_ci(diff)
    p = float(ttest_rel(a, b).pvalue) if len(diff) > 1 and statistics.stdev(diff) > 0 else math.nan
    return mean, half, p


def machine() -> str:
    """One line: CPU, cores, threads, Python, torch, lipreg."""
    cpu = platform.processor() or platform.machine()
    with_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                with_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{with_model or cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, lipreg {lipreg.__version__}"
    )


def save_runs(runs: Sequence[Run], path: Path) -> None:
    """Every run's evaluation history as JSON (the tables and plots can be redrawn from it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=1) + "\n")
