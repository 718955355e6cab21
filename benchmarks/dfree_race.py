"""Derivative-free against exact zero-centred penalties (issue 19): R1, R2 and R1+R2 from one
extra forward pass (method_race.DERIVATIVE_FREE) against the exact ones they approximate,
with the same losses, weights and schedule (method_race.METHODS: R1 and R2 with the GAN
loss and gamma 10, R1+R2 with RpGAN and gamma 0.05) on the preset's task, over the same
seeds.

The question is whether dropping the second derivative costs quality, so by default every
method trains the same --steps (--budget wall gives each as many as fit in the exact
method's time instead, from the fair probe of _study.probe_all); the time per step is
reported as the ratio derivative-free / exact, per seed. Tables: every method's final
metrics; per pair, paired by seed with Holm's correction across the pairs (one family per
metric): the FID-like metric, the classes and (when measured) the spectral metric. The goal
(printed, not asserted): quality not worse, i.e. the paired interval of the FID difference
includes 0 or lies below it.

    python benchmarks/dfree_race.py --out runs/digits/dfree          # 6 methods x 5 seeds
    python benchmarks/dfree_race.py --quick --out /tmp/dfree-quick   # a tiny version, seconds
    python benchmarks/dfree_race.py --redraw --out runs/digits/dfree # tables again
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _options
import _stats
import _study
import method_race
from _records import Run, machine

STEPS, SEEDS, JOBS, EVALS = 500, 5, 2, 10


def pairs() -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every derivative-free method: the exact method it approximates and both their changes
    to the preset."""
    return {
        name: (exact, overrides, method_race.METHODS[exact][0])
        for name, (exact, overrides) in method_race.DERIVATIVE_FREE.items()
    }


def step_ratios(groups: dict[str, list[Run]], name: str, exact: str) -> list[float]:
    """Per seed both ran: ``name``'s training seconds per step over ``exact``'s."""
    per_step = {r.seed: r.seconds / max(r.steps, 1) for r in groups[exact]}
    return [
        r.seconds / max(r.steps, 1) / per_step[r.seed] for r in groups[name] if r.seed in per_step
    ]


def report(runs: list[Run], meta: dict[str, Any]) -> str:
    """The Markdown tables and the goal per pair."""
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    metrics = _stats.present(runs, data.metrics)
    compared = [(n, exact) for n, exact in meta["pairs"].items() if n in groups and exact in groups]
    lines = [
        f"# Derivative-free against exact penalties on {data.title}",
        "",
        f"`{meta.get('command', '')}`",
        "",
        f"Machine: {meta.get('machine', '?')}. Preset `{data.preset}`, budget "
        f"{meta.get('budget', '?')} ({meta.get('steps', '?')} steps), "
        f"{len(groups[compared[0][1]]) if compared else 0} seeds, {meta.get('jobs', '?')} "
        "run(s) at a time, one thread each.",
        "",
        "| method | steps | ms per step | "
        + " | ".join(f"{m.label} at the end" for m in metrics)
        + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(metrics),
    ]
    for name, group in groups.items():
        per_step = statistics.fmean(1e3 * r.seconds / max(r.steps, 1) for r in group)
        finals = [_stats.cell([r.final(m.key) for r in group]) for m in metrics]
        lines.append(f"| {name} | {group[0].steps} | {per_step:.0f} | " + " | ".join(finals) + " |")
    lines += [
        "",
        "## Goal: quality not worse (the paired 95 % interval of the FID difference includes 0 "
        "or lies below it)",
        "",
        "| derivative-free - exact | time per step (ratio) | FID difference | goal |",
        "| --- | ---: | ---: | --- |",
    ]
    diffs = _stats.compare(groups, data.fid, compared)
    for pair in compared:
        ratio = _stats.fmt(*_stats.mean_ci(step_ratios(groups, *pair)), 2)
        d, half, _ = diffs[pair]
        met = (
            "unknown (too few seeds)"
            if math.isnan(half)
            else ("met" if d - half <= 0 else "not met")
        )
        lines.append(f"| {pair[0]} - {pair[1]} | {ratio} | {_stats.fmt(d, half, 2)} | {met} |")
    for metric in metrics:
        title = f"{metric.label}: derivative-free - exact, paired by seed"
        lines += ["", *_stats.pairs_table(groups, metric, compared, title, "pair")]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = _options.parser(__doc__ or "", STEPS, SEEDS, JOBS, EVALS, "dfree")
    p.add_argument(
        "--budget",
        choices=("steps", "wall"),
        default="steps",
        help="steps: every method --steps; wall: as long as its exact method's --steps "
        "(%(default)s)",
    )
    args = _options.parse(p, argv)
    saved: Path = args.out / "dfree_race.json"

    def train_study() -> _study.Study | None:
        compared = pairs()
        steps, seeds, jobs = _options.size(args)
        methods = {exact: o for _, (exact, _, o) in compared.items()}
        methods |= {name: o for name, (_, o, _) in compared.items()}
        configs = _options.planned(
            args.data, methods, dict.fromkeys(methods, steps), args.evals, args.quick
        )
        print(f"derivative-free race: {len(compared)} pairs x {seeds} seeds; machine: {machine()}")
        timing = _study.QUICK_TIMING if args.quick else _study.Timing()
        probes = _study.probe_all(configs, jobs, timing)
        plan = {n: steps for n in configs}
        if args.budget == "wall":
            for name, (exact, _, _) in compared.items():
                plan[name] = _study.plan_steps(steps, probes, exact)[name]
        configs = _options.planned(args.data, methods, plan, args.evals, args.quick)
        return _study.execute(
            "dfree_race.py",
            argv,
            _study.work(configs, seeds),
            probes,
            jobs,
            saved,
            args.dry_run,
            plan,
            data=args.data,
            steps=steps,
            seeds=seeds,
            budget=args.budget,
            pairs={name: exact for name, (exact, _, _) in compared.items()},
            methods=methods,
        )

    return _study.conclude(args, saved, train_study, report)


if __name__ == "__main__":
    sys.exit(main())
