"""Shared machinery of the quality studies (norm_study.py, method_race.py, tuned_race.py,
dfree_race.py, gamma_parametrisation.py): train configurations of ``lipreg train`` over
seeds, time them fairly, keep their generators and re-score them. Statistics and tables are
in ``_stats.py``, what is kept and how in ``_records.py``, the data sets, configurations and
command line in ``_options.py``.

Every run is single-threaded. ``--jobs 2`` runs two at a time in worker processes (on two
cores, two single-threaded runs of these small models finish sooner than one after the
other with two threads each); ``--jobs 1`` runs them one after the other in this process.

The clock of a run counts its training iterations only: building the trainer (including
the estimate of lam and gamma from the data) and every evaluation are outside it. On digits
an evaluation is the digits quality metric and the spectral metric
(lipreg.train.metrics.digits and .spectral, the evaluator's ``scores``) of ``eval_samples``
samples from the weight average, without writing sample grids.

**Fair clock.** A study that gives every setting the same time plans each setting's steps
from :func:`probe_all`: every setting is timed in the same worker processes, as many at a
time and single-threaded as the runs will be, after a warm-up of each worker and of each
trainer, in ``rounds`` rounds of a seeded shuffled order so that each setting is timed beside
different neighbours. Planning steps (rather than stopping each run on its clock) keeps the
learning-rate decay ending at each run's end and makes a rerun from the saved plan train the
same steps; the report states the budgets the runs achieved.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from _records import (
    Run,
    generators_path,
    load_generators,
    load_runs,
    machine,
    save_generators,
    save_runs,
)

from lipreg.train.config import TrainConfig

FID = "metric/digits_fid"
CLASSES = "metric/digits_classes"


# ---- one run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One run of a study: the setting ``name`` of ``config`` with ``seed``."""

    name: str
    seed: int
    config: TrainConfig
    #: called with the trainer before training (e.g. to log more scalars)
    setup: Callable[[Any], None] | None = None
    #: stop once the training clock reaches this many seconds (at most ``config.steps``
    #: steps); the learning rate still decays over the configuration's steps
    seconds: float | None = None
    initial: bool = True  #: evaluate at step 0 too


def evaluate(trainer: Any, evaluator: Any) -> dict[str, float]:
    """The quick quality metrics of ``trainer``'s sampler now
    (:meth:`~lipreg.train.evaluate.Evaluator.scores`: the classifier metric of the studies'
    data sets, digits and Fashion-MNIST, and the spectral metric); a generator whose samples
    are not finite scores FID ``inf`` and 0 classes."""
    fake = evaluator.generate(trainer.sampler)
    if not bool(torch.isfinite(fake).all()):
        prefix = evaluator.quality.scores_type.PREFIX  # metric/digits_, metric/fashion_
        return {prefix + "fid": math.inf, prefix + "classes": 0.0}
    return dict(evaluator.scores(fake))


def train(job: Job) -> Run:
    """Train ``job``'s configuration; the clock counts training iterations only, in CPU
    seconds of this (single-threaded) process: two runs side by side on two cores, or other
    load, do not inflate it as they would wall time. The run keeps its final generator (the
    weight average, float32) and its configuration in ``run.generator``."""
    from lipreg.train.loop import Trainer

    with tempfile.TemporaryDirectory() as out:
        config = dataclasses.replace(job.config, out=out, seed=job.seed, progress=False)
        trainer = Trainer(config)
        if job.setup is not None:
            job.setup(trainer)
        evaluator = trainer.evaluator(Path(out))
        evals: list[dict[str, float]] = []
        clock = 0.0

        def record() -> None:
            evals.append({"step": trainer.step, "seconds": clock, **evaluate(trainer, evaluator)})

        def running() -> bool:
            return trainer.step < config.steps and (job.seconds is None or clock < job.seconds)

        if job.initial:
            record()
        rows: list[dict[str, float]] = []
        every = config.eval_every
        while running():
            started = time.process_time()
            trainer.iteration()
            clock += time.process_time() - started
            if trainer.step % config.log_every == 0:
                rows.append({"step": trainer.step, **trainer.scalars()})
            if (every and trainer.step % every == 0) or not running():
                record()
        state = {k: v.detach().cpu().clone() for k, v in trainer.sampler.state_dict().items()}
        trainer.close()
    generator = {"config": config.to_dict(), "state": state}
    return Run(job.name, job.seed, clock, evals, rows, trainer.step, generator)


# ---- worker processes ---------------------------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")


def _warm(config: TrainConfig | None, iterations: int) -> None:
    """One thread, and ``iterations`` iterations of ``config`` if given: a worker's first
    trainer pays one-time costs (imports, allocations, kernel selection) that a timed one
    should not."""
    torch.set_num_threads(1)
    if config is None or iterations < 1:
        return
    from lipreg.train.loop import Trainer

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(dataclasses.replace(config, out=out, progress=False))
        for _ in range(iterations):
            trainer.iteration()
        trainer.close()


def pool_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int,
    done: Callable[[R], None] | None = None,
    warm: TrainConfig | None = None,
    warmup: int = 2,
) -> list[R]:
    """``[fn(item) for item in items]``, single-threaded, ``workers`` at a time (in this
    process for one), each worker warmed up first with ``warmup`` iterations of ``warm``;
    ``done`` sees every result in order as it is ready."""
    if workers == 1:
        threads = torch.get_num_threads()
        try:
            _warm(warm, warmup)
            out = []
            for item in items:
                out.append(fn(item))
                if done is not None:
                    done(out[-1])
            return out
        finally:
            torch.set_num_threads(threads)
    with ProcessPoolExecutor(workers, initializer=_warm, initargs=(warm, warmup)) as pool:
        futures = [pool.submit(fn, item) for item in items]
        for f in futures:
            if done is not None:
                done(f.result())
        return [f.result() for f in futures]


def train_all(jobs: Sequence[Job], workers: int) -> list[Run]:
    """:func:`train` every job single-threaded, ``workers`` at a time, printing one line per
    finished run; results in the order of ``jobs``."""
    warm = jobs[0].config if jobs else None
    return pool_map(train, jobs, workers, _report, warm)


def _report(run: Run) -> None:
    last = run.evals[-1]
    metrics = ", ".join(f"{k[7:]} {v:.4g}" for k, v in last.items() if k.startswith("metric/"))
    print(f"  {run.name} seed {run.seed}: {run.seconds:.0f} s; {metrics}", flush=True)


# ---- timing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What one configuration costs here, single-threaded."""

    build: float  #: seconds to build the trainer (data, models, lam/gamma estimates)
    iteration: float  #: wall seconds per training iteration
    cpu: float  #: CPU seconds of this process per iteration (a quiet machine's wall time)
    evaluation: float  #: seconds per evaluation
    iterations: int = 0  #: timed iterations behind ``iteration`` and ``cpu``, over all rounds


@dataclass(frozen=True)
class Timing:
    """How :func:`probe_all` times: ``iterations`` after ``warmup`` ones, in ``rounds``."""

    iterations: int = 16
    warmup: int = 3
    rounds: int = 2


QUICK_TIMING = Timing(iterations=1, warmup=1, rounds=1)


def _time(task: tuple[str, TrainConfig, Timing, bool]) -> tuple[str, float, float, float, float]:
    """``(name, build, wall, cpu, evaluation)`` seconds of one timing of a configuration:
    ``timing.iterations`` iterations after ``timing.warmup`` ones (and one evaluation if
    asked, else 0)."""
    from lipreg.train.loop import Trainer

    name, config, timing, evaluation = task
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        trainer = Trainer(dataclasses.replace(config, out=out, progress=False))
        build = time.perf_counter() - started
        for _ in range(timing.warmup):
            trainer.iteration()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(timing.iterations):
            trainer.iteration()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        seconds = 0.0
        if evaluation:
            evaluator = trainer.evaluator(Path(out))
            started = time.perf_counter()
            evaluate(trainer, evaluator)
            seconds = time.perf_counter() - started
        trainer.close()
    return name, build, wall, cpu, seconds


def probe_order(names: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """``(round, name)``: every name once per round, each round in its own seeded shuffled
    order, so that a name is timed beside different neighbours (two workers take the tasks
    in this order)."""
    for r in range(rounds):
        order = list(names)
        random.Random(r).shuffle(order)
        yield from ((r, name) for name in order)


def probe_all(configs: dict[str, TrainConfig], workers: int, timing: Timing) -> dict[str, Probe]:
    """Time every configuration as the runs will run: single-threaded, ``workers`` at a
    time in warmed-up worker processes, ``timing.rounds`` times in :func:`probe_order`, each
    after ``timing.warmup`` iterations; one evaluation is timed in the first round. The
    probe of a setting pools its rounds (total seconds over total iterations)."""
    order = probe_order(list(configs), timing.rounds)
    tasks = [(name, configs[name], timing, r == 0) for r, name in order]
    warm = next(iter(configs.values()), None)
    started = time.perf_counter()
    results = pool_map(_time, tasks, workers, warm=warm, warmup=timing.warmup)
    print(
        f"timed {len(configs)} setting(s) in {time.perf_counter() - started:.0f} s: "
        f"{timing.rounds} round(s) of {timing.iterations} iterations after {timing.warmup}, "
        f"{workers} at a time",
        flush=True,
    )
    probes = {}
    for name in configs:
        mine = [r for r in results if r[0] == name]
        n = timing.iterations * len(mine)
        probes[name] = Probe(
            build=statistics.fmean(r[1] for r in mine),
            iteration=sum(r[2] for r in mine) / n,
            cpu=sum(r[3] for r in mine) / n,
            evaluation=sum(r[4] for r in mine),
            iterations=n,
        )
    return probes


def plan_steps(
    steps: int, probes: dict[str, Probe], reference: str, budget: str = "wall"
) -> dict[str, int]:
    """Every setting's generator steps: ``steps`` for all (``budget="steps"``), or as many
    as fit in ``reference``'s time for ``steps`` at each setting's CPU time per iteration."""
    if budget == "steps":
        return dict.fromkeys(probes, steps)
    seconds = steps * probes[reference].cpu
    return {name: max(1, round(seconds / p.cpu)) for name, p in probes.items()}


def saved_plan(path: Path) -> tuple[dict[str, int], dict[str, Probe]]:
    """The plan of steps and the probes of a study saved at ``path`` (its JSON), to rerun
    it with the same steps (``--plan``)."""
    _, meta = load_runs(path)
    if "plan" not in meta:
        raise ValueError(f"--plan {path}: the record has no plan of steps")
    probes = {n: Probe(**p) for n, p in meta["probes"].items()}
    return {n: int(s) for n, s in meta["plan"].items()}, probes


def estimate(jobs: Sequence[Job], probes: dict[str, Probe], workers: int) -> tuple[float, float]:
    """Minutes the ``jobs`` take on ``workers`` cores: ``(from CPU times, from wall times)``
    of the ``probes`` (by job name): steps (or the job's seconds) times the time per
    iteration, plus the build and every evaluation, divided among the workers."""
    totals = [0.0, 0.0]
    for job in jobs:
        c, p = job.config, probes[job.name]
        steps = c.steps if job.seconds is None else min(c.steps, job.seconds / p.cpu)
        evals = 1 + math.ceil(steps / c.eval_every) if c.eval_every else 2
        fixed = p.build + (evals - (not job.initial)) * p.evaluation
        totals[0] += fixed + steps * p.cpu
        totals[1] += fixed + steps * p.iteration
    return totals[0] / workers / 60, totals[1] / workers / 60


def announce(
    jobs: Sequence[Job], probes: dict[str, Probe], workers: int, plan: dict[str, int] | None = None
) -> None:
    """Print every setting's measured times (and its steps in ``plan``) and the estimated
    duration of ``jobs`` on ``workers`` cores."""
    for name, p in probes.items():
        steps = "" if plan is None or name not in plan else f" -> {plan[name]} steps"
        print(
            f"  {name}: {1e3 * p.iteration:.0f} ms per iteration ({1e3 * p.cpu:.0f} ms CPU, "
            f"{p.iterations} iterations), evaluation {p.evaluation:.1f} s, build "
            f"{p.build:.1f} s{steps}"
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
    ``details`` (data, steps, seeds, settings, ...)."""
    return {
        "command": f"python benchmarks/{script} " + shlex.join(argv),
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
    of steps if one is given) and their generators beside it; returns the runs and the
    meta, or ``None`` for a dry run."""
    announce(work, probes, jobs, plan)
    if dry_run:
        return None
    runs = train_all(work, jobs)
    details = {**details, "jobs": jobs, **({} if plan is None else {"plan": plan})}
    meta = record(script, sys.argv[1:] if argv is None else argv, probes, **details)
    save_runs(runs, saved, meta)
    save_generators(runs, generators_path(saved))
    return runs, meta


# ---- re-scoring kept generators -----------------------------------------------------------


@contextmanager
def restored(kept: dict[str, Any], dtype: torch.dtype | None = None) -> Iterator[Any]:
    """The trainer of a kept generator's run (``{"config", "state"}``) with that generator
    loaded, in a temporary folder: its evaluator has the run's fixed noise (seeded by the
    run's seed), sample count and real reference. ``dtype`` rounds the state through that
    precision first."""
    from lipreg.train.loop import Trainer

    state = kept["state"]
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig.from_dict({**kept["config"], "out": out, "progress": False})
        trainer = Trainer(config)
        trainer.sampler.load_state_dict(state)
        try:
            yield trainer
        finally:
            trainer.close()


def score(kept: dict[str, Any], dtype: torch.dtype | None = None) -> dict[str, float]:
    """The current metrics of a kept generator (``{"config", "state"}``), evaluated as its
    run evaluated it (:func:`restored`). ``dtype`` rounds the state through that precision
    first (to measure what keeping it so costs)."""
    with restored(kept, dtype) as trainer:
        return evaluate(trainer, trainer.evaluator(Path(trainer.config.out)))


def rescore(saved: Path, workers: int) -> tuple[list[Run], dict[str, Any]]:
    """Re-evaluate every kept generator of the study saved at ``saved`` with the current
    metrics, write their values into each run's final evaluation row (new keys added,
    existing ones replaced; earlier rows keep what training measured) and save the record;
    returns the runs and the meta (``meta["rescored"]`` says when, how and which keys)."""
    runs, meta = load_runs(saved)
    kept_path = generators_path(saved)
    if not kept_path.exists():
        raise FileNotFoundError(
            f"--rescore: {kept_path} does not exist; the runs of {saved} kept no generators"
        )
    kept = load_generators(kept_path)
    missing = [f"{r.name} seed {r.seed}" for r in runs if (r.name, r.seed) not in kept]
    if missing:
        raise ValueError(f"--rescore: {kept_path} lacks the generators of {', '.join(missing[:3])}")
    print(f"re-scoring {len(runs)} kept generators of {saved}, {workers} at a time", flush=True)
    scores = pool_map(score, [kept[r.name, r.seed] for r in runs], workers)
    for run, new in zip(runs, scores, strict=True):
        run.evals[-1].update(new)
    keys = sorted(set().union(*scores))
    meta["rescored"] = {"machine": machine(), "kept": kept_path.name, "keys": keys}
    save_runs(runs, saved, meta)
    return runs, meta


Study = tuple[list[Run], dict[str, Any]]
"""A study's runs and the meta of its record."""


def kept_or_trained(
    args: argparse.Namespace, saved: Path, train_study: Callable[[], Study | None]
) -> Study | None:
    """The runs and meta a script reports: read from ``saved`` (``--redraw``), re-scored
    there (``--rescore``), or trained by ``train_study`` (``None`` after a dry run)."""
    if args.rescore:
        return rescore(saved, 1 if args.quick else args.jobs)
    if args.redraw:
        return load_runs(saved)
    return train_study()


def conclude(
    args: argparse.Namespace,
    saved: Path,
    train_study: Callable[[], Study | None],
    report: Callable[[list[Run], dict[str, Any]], str],
    plot: Callable[[list[Run], dict[str, Any], Path], list[Path]] | None = None,
    adjust: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """A study script's end: its runs (:func:`kept_or_trained`), the meta ``adjust``-ed (e.g.
    by options of ``--redraw``; a changed meta is saved back to ``saved``, so that the record
    always reports the tables written beside it), the ``report`` printed and written beside
    ``saved`` (as ``.md``), the figures of ``plot`` in ``--figures`` (default: ``saved``'s
    folder)."""
    done = kept_or_trained(args, saved, train_study)
    if done is None:
        return 0
    runs, meta = done
    before = json.dumps(meta, sort_keys=True)
    if adjust is not None:
        adjust(meta)
    changed = json.dumps(meta, sort_keys=True) != before
    if changed:
        save_runs(runs, saved, meta)
    text = report(runs, meta)
    table = saved.with_suffix(".md")
    table.write_text(text)
    files = [] if plot is None else plot(runs, meta, args.figures or saved.parent)
    print(text)
    record = [saved] if changed or not args.redraw else []
    print("wrote " + ", ".join(str(f) for f in [*record, table, *files]))
    return 0


def work(configs: dict[str, TrainConfig], seeds: int) -> list[Job]:
    """Every configuration (by setting name) on seeds ``0..seeds-1``, seed by seed."""
    return [Job(name, seed, c) for seed in range(seeds) for name, c in configs.items()]
