"""Shared machinery of the quality studies (norm_study.py, method_race.py): train
configurations of ``lipreg train`` over seeds, read their metric histories, and summarise
them with intervals, paired tests and times to a threshold.

Every run is single-threaded. ``--jobs 2`` runs two at a time in worker processes (on two
cores, two single-threaded runs of these small models finish sooner than one after the
other with two threads each); ``--jobs 1`` runs them one after the other in this process.

The clock of a run counts its training iterations only: building the trainer (including
the estimate of lam and gamma from the data) and every evaluation are outside it. On digits
an evaluation is the digits quality metric and the spectral metric
(lipreg.train.metrics.digits and .spectral, the evaluator's ``scores``) of ``eval_samples``
samples from the weight average, without writing sample grids.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
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

FID = "metric/digits_fid"
CLASSES = "metric/digits_classes"


@dataclass
class Run:
    """One finished training run of a study."""

    name: str  #: the setting, e.g. "W^{-1.5,2}"
    seed: int
    #: CPU seconds of the training iterations, evaluations excluded: runs are single-threaded,
    #: so this is their wall time on a quiet core, whatever else the machine runs
    seconds: float
    evals: list[dict[str, float]]  #: the evaluation rows: step, seconds so far, metric/...
    train: list[dict[str, float]] = field(default_factory=list)  #: logged training scalars
    steps: int = 0  #: generator steps trained

    def final(self, key: str) -> float:
        """``key`` (e.g. ``"metric/digits_fid"``) at the last evaluation."""
        return self.evals[-1][key]


Job = tuple[str, int, TrainConfig, Callable[[Any], None] | None]


def evaluate(trainer: Any, evaluator: Any) -> dict[str, float]:
    """The quick quality metrics of ``trainer``'s sampler now
    (:meth:`~lipreg.train.evaluate.Evaluator.scores`: on digits the digits metric and the
    spectral metric); a generator whose samples are not finite scores FID ``inf`` and 0
    classes."""
    fake = evaluator.generate(trainer.sampler)
    if not bool(torch.isfinite(fake).all()):
        return {FID: math.inf, CLASSES: 0.0}
    return dict(evaluator.scores(fake))


def train(job: Job) -> Run:
    """Train ``job``'s configuration; the clock counts training iterations only, in CPU
    seconds of this (single-threaded) process: two runs side by side on two cores, or other
    load, do not inflate it as they would wall time."""
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

        def record() -> None:
            evals.append({"step": trainer.step, "seconds": clock, **evaluate(trainer, evaluator)})

        record()
        rows: list[dict[str, float]] = []
        while trainer.step < config.steps:
            started = time.process_time()
            trainer.iteration()
            clock += time.process_time() - started
            if trainer.step % config.log_every == 0:
                rows.append({"step": trainer.step, **trainer.scalars()})
            every = config.eval_every
            if (every and trainer.step % every == 0) or trainer.step == config.steps:
                record()
        trainer.close()
    return Run(name=name, seed=seed, seconds=clock, evals=evals, train=rows, steps=trainer.step)


def _single_thread() -> None:
    torch.set_num_threads(1)


def train_all(jobs: Sequence[Job], workers: int) -> list[Run]:
    """:func:`train` every job single-threaded, ``workers`` at a time, printing one line per
    finished run; results in the order of ``jobs``."""
    if workers == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            runs = []
            for job in jobs:
                runs.append(train(job))
                _report(runs[-1])
            return runs
        finally:
            torch.set_num_threads(threads)
    with ProcessPoolExecutor(workers, initializer=_single_thread) as pool:
        futures = [pool.submit(train, job) for job in jobs]
        for f in futures:
            _report(f.result())
        return [f.result() for f in futures]


def _report(run: Run) -> None:
    last = run.evals[-1]
    metrics = ", ".join(f"{k[7:]} {v:.4g}" for k, v in last.items() if k.startswith("metric/"))
    print(f"  {run.name} seed {run.seed}: {run.seconds:.0f} s; {metrics}", flush=True)


# ---- timing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What one configuration costs here, single-threaded."""

    build: float  #: seconds to build the trainer (data, models, lam/gamma estimates)
    iteration: float  #: wall seconds per training iteration
    cpu: float  #: CPU seconds of this process per iteration (a quiet machine's wall time)
    evaluation: float  #: seconds per evaluation


def probe(config: TrainConfig, iterations: int, warmup: int = 1) -> Probe:
    """Time ``iterations`` training iterations of ``config`` after ``warmup`` ones, and one
    evaluation, in this process with one thread. CPU time approximates the wall time of a
    quiet machine, where other processes do not take turns on the core."""
    from lipreg.train.loop import Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            trainer = Trainer(dataclasses.replace(config, out=out, progress=False))
            build = time.perf_counter() - started
            for _ in range(warmup):
                trainer.iteration()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(iterations):
                trainer.iteration()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            evaluator = trainer.evaluator(Path(out))
            started = time.perf_counter()
            evaluate(trainer, evaluator)
            evaluation = time.perf_counter() - started
            trainer.close()
    finally:
        torch.set_num_threads(threads)
    return Probe(build, wall / iterations, cpu / iterations, evaluation)


def estimate(jobs: Sequence[Job], probes: dict[str, Probe], workers: int) -> tuple[float, float]:
    """Minutes the ``jobs`` take on ``workers`` cores: ``(from CPU times, from wall times)``
    of the ``probes`` (by job name): steps times the time per iteration, plus the build and
    every evaluation, divided among the workers."""
    totals = [0.0, 0.0]
    for name, _, config, _ in jobs:
        p = probes[name]
        evals = 1 + math.ceil(config.steps / config.eval_every) if config.eval_every else 2
        fixed = p.build + evals * p.evaluation
        totals[0] += fixed + config.steps * p.cpu
        totals[1] += fixed + config.steps * p.iteration
    return totals[0] / workers / 60, totals[1] / workers / 60


def announce(
    jobs: Sequence[Job], probes: dict[str, Probe], workers: int, plan: dict[str, int] | None = None
) -> None:
    """Print every setting's measured times (and its steps in ``plan``) and the estimated
    duration of ``jobs`` on ``workers`` cores."""
    for name, p in probes.items():
        steps = "" if plan is None else f" -> {plan[name]} steps"
        print(
            f"  {name}: {1e3 * p.iteration:.0f} ms per iteration ({1e3 * p.cpu:.0f} ms CPU), "
            f"evaluation {p.evaluation:.1f} s, build {p.build:.1f} s{steps}"
        )
    quiet, now = estimate(jobs, probes, workers)
    print(
        f"estimated duration: {quiet:.0f} min on a quiet machine (from CPU times), "
        f"{now:.0f} min at this machine's current load",
        flush=True,
    )


def record(
    script: str, argv: Sequence[str], probes: dict[str, Probe], **details: Any
) -> dict[str, Any]:
    """The ``meta`` of a study's JSON: the command, the machine, the measured times and
    ``details`` (steps, seeds, settings, ...)."""
    return {
        "command": f"python benchmarks/{script} " + " ".join(argv),
        "machine": machine(),
        "probes": {n: dataclasses.asdict(p) for n, p in probes.items()},
        **details,
    }


def execute(
    script: str,
    argv: Sequence[str] | None,
    work: Sequence[Job],
    probes: dict[str, Probe],
    jobs: int,
    saved: Path,
    dry_run: bool,
    plan: dict[str, int] | None = None,
    **details: Any,
) -> tuple[list[Run], dict[str, Any]] | None:
    """Announce the ``work`` and its estimated duration, then (unless ``dry_run``) train it
    ``jobs`` at a time and save the runs to ``saved`` with :func:`record`'s meta (the command
    is ``script`` with ``argv``, default ``sys.argv[1:]``, ``details``, ``jobs`` and the ``plan``
    of steps if one is given); returns the runs and the meta, or ``None`` for a dry run."""
    announce(work, probes, jobs, plan)
    if dry_run:
        return None
    runs = train_all(work, jobs)
    details = {**details, "jobs": jobs, **({} if plan is None else {"plan": plan})}
    meta = record(script, sys.argv[1:] if argv is None else argv, probes, **details)
    save_runs(runs, saved, meta)
    return runs, meta


# ---- statistics --------------------------------------------------------------------------


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
    p-value of the paired t-test (``nan`` when the differences do not vary: no test)."""
    from scipy.stats import ttest_rel

    diff = [x - y for x, y in zip(a, b, strict=True)]
    mean, half = mean_ci(diff)
    p = float(ttest_rel(a, b).pvalue) if len(diff) > 1 and statistics.stdev(diff) > 0 else math.nan
    return mean, half, p


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` for multiple comparisons: with the ``m``
    finite p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``; a hypothesis is rejected at level alpha when
    its adjusted p-value is at most alpha, which bounds the chance of any false rejection
    among the ``m`` by alpha. ``nan`` (no test) stays ``nan`` and does not count in ``m``."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(tested)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for j, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - j) * p))
        adjusted[i] = running
    return adjusted


def time_to(run: Run, key: str, threshold: float) -> float | None:
    """Training seconds at ``run``'s first evaluation with ``key`` at or below
    ``threshold``, or None if no evaluation reaches it."""
    for row in run.evals:
        if row[key] <= threshold:
            return row["seconds"]
    return None


def by_name(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """The runs grouped by setting, in order of first appearance, each sorted by seed."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    return {name: sorted(group, key=lambda r: r.seed) for name, group in groups.items()}


def by_step(runs: Sequence[Run], key: str) -> list[tuple[float, float, float]]:
    """``(mean seconds, mean key, half-width of key's 95 % interval)`` at each evaluation
    step that every run of ``runs`` (one setting's seeds) made, in order."""
    steps = sorted(set.intersection(*({row["step"] for row in r.evals} for r in runs)))
    out = []
    for step in steps:
        rows = [next(row for row in r.evals if row["step"] == step) for r in runs]
        seconds = statistics.fmean(row["seconds"] for row in rows)
        mean, half = mean_ci([row[key] for row in rows])
        out.append((seconds, mean, half))
    return out


def fmt(mean: float, half: float, digits: int = 1) -> str:
    """``mean ± half`` (just the mean without an interval)."""
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def cell(values: Sequence[float]) -> str:
    """Mean ± 95 % half-width over the finite values, and how many diverged."""
    ok = finite(values)
    if not ok:
        return f"diverged ({len(values)}/{len(values)})"
    text = fmt(*mean_ci(ok))
    return text if len(ok) == len(values) else f"{text} (diverged {len(values) - len(ok)})"


def comparisons(
    groups: dict[str, list[Run]], key: str, baseline: str
) -> dict[str, tuple[float, float, float]]:
    """Per setting but ``baseline``: the paired difference to it in ``key`` at the last
    evaluation, over the seeds both ended with finite values (mean, half-width, p-value)."""
    base = {r.seed: r.final(key) for r in groups[baseline]}
    out = {}
    for name, runs in groups.items():
        if name == baseline:
            continue
        pairs = [
            (r.final(key), base[r.seed])
            for r in runs
            if r.seed in base and math.isfinite(r.final(key)) and math.isfinite(base[r.seed])
        ]
        if len(pairs) < 2:
            out[name] = (math.nan, math.nan, math.nan)
            continue
        a, b = zip(*pairs, strict=True)
        out[name] = paired(a, b)
    return out


def verdict(diff: float, adjusted: float, better: str) -> str:
    """Whether a difference with Holm-adjusted p-value ``adjusted`` is significant at 5 %,
    and in which direction (``better`` is "lower" or "higher")."""
    if math.isnan(adjusted) or adjusted > 0.05:
        return "no"
    good = diff < 0 if better == "lower" else diff > 0
    return "yes, better" if good else "yes, worse"


def paired_table(
    groups: dict[str, list[Run]], key: str, label: str, better: str, baseline: str
) -> list[str]:
    """Markdown lines: every setting's difference to ``baseline`` in ``key`` at the last
    evaluation, paired by seed, with its paired t-test and Holm's correction across the
    settings (one family per metric), and the list of the significant ones."""
    diffs = comparisons(groups, key, baseline)
    adjusted = dict(zip(diffs, holm([p for _, _, p in diffs.values()]), strict=True))
    lines = [
        f"## {label}: difference to {baseline}, paired by seed ({better} is better)",
        "",
        "| setting | difference | p (paired t-test) | p (Holm) | significant at 5 % |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, (diff, half, p) in diffs.items():
        sig = verdict(diff, adjusted[name], better)
        lines.append(f"| {name} | {fmt(diff, half, 2)} | {p:.3g} | {adjusted[name]:.3g} | {sig} |")
    significant = [n for n, (d, _, _) in diffs.items() if verdict(d, adjusted[n], better) != "no"]
    return [
        *lines,
        "",
        f"Significant after Holm's correction across the {len(diffs)} comparisons: "
        + (", ".join(significant) if significant else "none")
        + ". (A p-value of nan: fewer than two pairs, or differences that do not vary.)",
    ]


# ---- records -----------------------------------------------------------------------------


def machine() -> str:
    """One line: CPU, cores, Python, torch, lipreg."""
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


def save_runs(runs: Sequence[Run], path: Path, meta: dict[str, Any] | None = None) -> None:
    """Every run's evaluation history as JSON, with ``meta`` (the command, machine, options),
    so the tables and plots can be redrawn from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"meta": meta or {}, "runs": [dataclasses.asdict(r) for r in runs]}
    path.write_text(json.dumps(record, indent=1) + "\n")


def load_runs(path: Path) -> tuple[list[Run], dict[str, Any]]:
    """The runs and ``meta`` of :func:`save_runs`' file ``path``."""
    record = json.loads(path.read_text())
    return [Run(**r) for r in record["runs"]], record["meta"]


# ---- the scripts' shared command line ----------------------------------------------------

PRESET = "bwgan-digits"
"""The task of every study: the README's main job, whose configuration the studies take."""

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


def base_config(**overrides: Any) -> TrainConfig:
    """The preset's configuration with ``overrides`` (the study's own choices), writing
    nothing but what the study reads."""
    from lipreg.train.config import PRESETS

    quiet = {"tensorboard": False, "progress": False, "checkpoint_every": 0, "inception": False}
    return TrainConfig.from_dict({**PRESETS[PRESET], **quiet, **overrides})


def parser(
    doc: str, steps: int, seeds: int, jobs: int, evals: int, out: str
) -> argparse.ArgumentParser:
    """The options every study script takes, with its defaults."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=steps, help="generator steps (%(default)s)")
    p.add_argument("--seeds", type=int, default=seeds, help="seeds 0..N-1 (%(default)s)")
    p.add_argument(
        "--jobs", type=int, default=jobs, help="runs at a time, one thread each (%(default)s)"
    )
    p.add_argument(
        "--evals", type=int, default=evals, help="evaluations per run after step 0 (%(default)s)"
    )
    p.add_argument("--out", type=Path, default=Path(out), help="output folder (%(default)s)")
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
        "--quick", action="store_true", help="a tiny version in seconds (2 steps, 2 seeds)"
    )
    return p
