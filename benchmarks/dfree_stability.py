"""Does the derivative-free R2 fail more often than the exact R2, and why? (The derivative-free
race's approx R2 ran away in one of its five seeds.)

R2 and approx R2 of the derivative-free race (dfree_race.pairs(): the GAN loss, gamma 10, L^2,
sigma 0.03, one draw, the loss's own scores) on more seeds, every run watched: at each
critic step, before the update, the exact squared input-gradient norm of the critic at the
step's generated batch (what R2 penalises, ``mean_b ||dD(fake_b)||_2^2``) and at its real
batch, from one first-order backward pass that draws no random numbers, so the watched run
trains exactly as the race's run of the same seed (the race's seeds 0..4 reproduce its
final FIDs). Logged with the penalty's own estimate at the same batch (``dual_squared_mean``
of ApproxStats) and the critic's gap ``E D(real) - E D(fake)``.

A run has run away when its final digits FID is above 100 (the race's others end below 60).
Tables: per seed the final FID of both; for every run that ran away, its trajectory (gap,
the estimate and the exact value at fakes, the exact value at reals); over all runs, the
estimate against the exact value at the same batch (their ratio's median per run), which
says whether the estimator misjudged the critic it trained.

    python benchmarks/dfree_stability.py --out runs/digits/dfree-stability   # 2 x 10 seeds
    python benchmarks/dfree_stability.py --quick --out /tmp/stability-quick   # seconds
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _options
import _stats
import _study
import dfree_race
import torch
from _records import Run, machine

STEPS, SEEDS, JOBS, EVALS = 500, 10, 2, 10
EXACT, APPROX = "R2", "approx R2"
RUNAWAY_FID = 100.0
#: watched scalars: the exact mean squared input-gradient norm at the step's fakes and reals
AT_FAKE, AT_REAL = "watch/exact_fake", "watch/exact_real"


def mean_squared_gradient(critic: Any, x: torch.Tensor) -> float:
    """``mean_b ||dD(x_b)||_2^2`` of ``critic`` at ``x`` ``[B, ...]``, first order (no graph is
    kept and no parameter gradient is touched)."""
    point = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(point).sum(), point)
    return float(g.flatten(1).square().sum(1).mean())


def watch(trainer: Any) -> None:
    """Make ``trainer`` measure :func:`mean_squared_gradient` at each critic step's batches
    before its update and log the last step's values with its scalars."""
    seen: dict[str, float] = {}
    backward, scalars = trainer.critic_backward, trainer.scalars

    def watched_backward(real: torch.Tensor, fake: torch.Tensor) -> None:
        seen[AT_FAKE] = mean_squared_gradient(trainer.critic, fake)
        seen[AT_REAL] = mean_squared_gradient(trainer.critic, real)
        backward(real, fake)

    trainer.critic_backward = watched_backward
    trainer.scalars = lambda: {**scalars(), **seen}


def runaway(run: Run, fid: str) -> bool:
    value = run.final(fid)
    return not math.isfinite(value) or value > RUNAWAY_FID


def estimate_ratios(run: Run) -> list[float]:
    """The penalty's estimate over the exact value at the same generated batch, per log row."""
    return [
        row["dual_squared_mean"] / row[AT_FAKE]
        for row in run.train
        if "dual_squared_mean" in row and row.get(AT_FAKE, 0.0) > 0
    ]


def report(runs: list[Run], meta: dict[str, Any]) -> str:
    """Final FIDs per seed, the runaway runs' trajectories, the estimate against the exact."""
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    fid = data.fid
    lines = [
        f"# Derivative-free R2: runaway runs on {data.title}",
        "",
        f"`{meta.get('command', '')}`",
        "",
        f"Machine: {meta.get('machine', '?')}. Preset `{data.preset}`, {meta.get('steps', '?')} "
        f"steps, the race's {EXACT} and {APPROX} settings, seeds 0..{meta.get('seeds', 0) - 1}.",
        "",
        f"| seed | {EXACT} final FID | {APPROX} final FID |",
        "| ---: | ---: | ---: |",
    ]
    by_seed = {name: {r.seed: r for r in group} for name, group in groups.items()}
    seeds = sorted(set().union(*(s.keys() for s in by_seed.values())))
    for seed in seeds:
        cells = [
            f"{by_seed[n][seed].final(fid):.1f}" if seed in by_seed.get(n, {}) else "-"
            for n in (EXACT, APPROX)
        ]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", f"Runs that ran away (final FID above {RUNAWAY_FID:g}):"]
    for name in (EXACT, APPROX):
        group = groups.get(name, [])
        away = [r.seed for r in group if runaway(r, fid)]
        lines.append(
            f"- {name}: {len(away)} of {len(group)}" + (f" (seeds {away})" if away else "")
        )
    for run in (r for r in runs if runaway(r, fid)):
        lines += [
            "",
            f"## {run.name}, seed {run.seed}",
            "",
            "| step | critic gap | estimate at fakes | exact at fakes | exact at reals |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in run.train:
            estimate = row.get("dual_squared_mean", math.nan)
            lines.append(
                f"| {row['step']:.0f} | {row['critic_gap']:.2f} | {estimate:.2e} | "
                f"{row.get(AT_FAKE, math.nan):.2e} | {row.get(AT_REAL, math.nan):.2e} |"
            )
    lines += [
        "",
        "## The estimate against the exact value at the same batch",
        "",
        "| run | median ratio estimate / exact at fakes | rows |",
        "| --- | ---: | ---: |",
    ]
    for run in groups.get(APPROX, []):
        ratios = estimate_ratios(run)
        median = statistics.median(ratios) if ratios else math.nan
        lines.append(f"| seed {run.seed} | {median:.2f} | {len(ratios)} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = _options.parser(__doc__ or "", STEPS, SEEDS, JOBS, EVALS, "dfree-stability")
    args = _options.parse(p, argv)
    saved: Path = args.out / "dfree_stability.json"

    def train_study() -> _study.Study | None:
        exact, overrides, exact_overrides = dfree_race.pairs()[APPROX]
        assert exact == EXACT
        methods = {EXACT: exact_overrides, APPROX: overrides}
        steps, seeds, jobs = _options.size(args)
        configs = _options.planned(
            args.data, methods, dict.fromkeys(methods, steps), args.evals, args.quick
        )
        print(f"R2 stability: 2 settings x {seeds} seeds; machine: {machine()}")
        timing = _study.QUICK_TIMING if args.quick else _study.Timing()
        probes = _study.probe_all(configs, jobs, timing)
        work = [dataclasses.replace(job, setup=watch) for job in _study.work(configs, seeds)]
        return _study.execute(
            "dfree_stability.py",
            argv,
            work,
            probes,
            jobs,
            saved,
            args.dry_run,
            data=args.data,
            steps=steps,
            seeds=seeds,
        )

    return _study.conclude(args, saved, train_study, report)


if __name__ == "__main__":
    sys.exit(main())
