"""The tuned race: the fastest route to the published WGAN-GP's quality, every method on its
own best schedule, with the controls that say what the schedule and what the method buys.

Methods (MAIN): WGAN-GP, BWGAN W^{-3/2,2} (the preset) and W^{-1,2}, one-sided GP, R1 and R2
with the GAN loss, R1+R2 with RpGAN, SN (power iteration), each with the constants of
method_race.METHODS; and the derivative-free R1, R2, R1+R2 (method_race.DERIVATIVE_FREE).

Schedules (grid()): critic steps per generator step {1, 2, 5} x the penalty on every
{1, 4, 8, 16}th critic step (lazy, times the interval) x the learning-rate factors
(--lr-scales, default x1 only), and the penalty on a quarter of each batch at every step
(--penalty-fraction 0.25); SN, which has no penalty, gets critic steps x learning rate:
15 schedules a penalty and 3 for SN per factor. With --lr-scales 1 2 (30 and 6, 306 in all)
the race was estimated at 133 minutes on 2 quiet cores, over the 120 allowed: the factor x2
is the dimension left out, because it is the one that does not change what an iteration
costs, which is the question this race answers.

Budget T: the published WGAN-GP's training time for --steps generator steps (5 critic steps,
the penalty on every one, lr x1). Every reported run trains as long, its steps planned from a
fair probe (_study.probe_all), its learning rate decaying to zero over its own steps.

Selection, on seeds that are never reported (100, 101, 102), by successive halving on the
first --horizon (0.25) of the budget: every schedule of every method trains on seed 100
until its training clock reaches 0.25 T, with its learning rate decaying over the steps
planned for the whole of T: the same run as a full one up to there, at a quarter of the
cost. It is scored by the FID-like metric there; the --keep (3) best of each method train
the same on seeds 101 and 102, and the best mean over the three seeds is the method's
finalist. A quarter is what the goal asks about (the published WGAN-GP's final quality
within 0.25 T).

Report, on seeds 0..N-1: every finalist; the control, WGAN-GP on each finalist's schedule
(the difference to it is what the method itself buys on the same schedule, e.g. what the
norm buys); the published WGAN-GP. Tables, paired by seed with Holm's correction per metric:
the time to the published WGAN-GP's final FID of the same seed, the time to a fixed FID, the
final FID, classes and (when measured) spectral metric, against the published WGAN-GP and
against the control. The goals are printed, not asserted.

Outputs in --out (default runs/DATA/tuned-race): tuned_race.json and
tuned_race_generators.pt (the reported runs), tuned_race_selection.json (the selection
runs), tuned_race.md, and in --figures tuned_race.png (FID against training seconds:
finalists; controls) and, with the spectral metric, tuned_race_spectral.png.

    python benchmarks/tuned_race.py --dry-run                       # the grid and its estimate
    python benchmarks/tuned_race.py --out runs/digits/tuned-race    # the whole race
    python benchmarks/tuned_race.py --quick --out /tmp/tuned-quick  # a tiny version, seconds
    python benchmarks/tuned_race.py --plan runs/digits/tuned-race/tuned_race.json --out X
                                       # the report stage again with the same finalists, steps
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _options
import _records
import _samples
import _stats
import _study
import method_race
from _records import Run, machine
from _stats import HF_EXCESS, Metric
from method_race import METHODS

from lipreg.train.config import TrainConfig

MAIN: dict[str, dict[str, Any]] = {
    "WGAN-GP": METHODS["WGAN-GP"][0],
    "BWGAN W^{-3/2,2}": METHODS["BWGAN W^{-3/2,2}"][0],
    "BWGAN W^{-1,2}": {"norm": "sobolev:s=-1,p=2,c=5"},
    "one-sided GP": METHODS["one-sided GP"][0],
    "R1": METHODS["R1"][0],
    "R2": METHODS["R2"][0],
    "R1+R2": METHODS["R1+R2"][0],
    "SN (power)": METHODS["SN (power)"][0],
}
"""The main methods' changes to the preset (the published constants of method_race)."""

QUICK_METHODS = ("WGAN-GP", "BWGAN W^{-3/2,2}", "SN (power)")
STEPS, SEEDS, JOBS, EVALS, FID_THRESHOLD = 500, 5, 2, 16, 100.0
HORIZON, KEEP, SELECTION_SEEDS, GOAL = 0.25, 3, (100, 101, 102), 0.25
LR_SCALES = (1.0,)
SELECTION_TIMING = _study.Timing(iterations=4, warmup=2, rounds=1)
"""Selection runs stop on their clock, so their steps only set where the learning rate's
decay would end: a short probe suffices."""


@dataclass(frozen=True)
class Schedule:
    """How a method trains: critic steps per generator step, the penalty on every
    ``lazy_every``-th critic step (times the interval), the learning rate as a multiple of
    the preset's, the penalty on a fraction of each batch."""

    n_critic: int = 5
    lazy_every: int = 1
    lr_scale: float = 1.0
    penalty_fraction: float = 1.0

    @property
    def label(self) -> str:
        text = f"n_critic {self.n_critic}, lazy {self.lazy_every}, lr x{self.lr_scale:g}"
        return text + (
            "" if self.penalty_fraction == 1 else f", fraction {self.penalty_fraction:g}"
        )

    def overrides(self, lr: float) -> dict[str, Any]:
        """The configuration's values for a preset learning rate ``lr``."""
        out: dict[str, Any] = {
            "n_critic": self.n_critic,
            "lazy_every": self.lazy_every,
            "lr": lr * self.lr_scale,
        }
        if self.penalty_fraction != 1:
            out["penalty_fraction"] = self.penalty_fraction
        return out


PUBLISHED = Schedule()
"""WGAN-GP's published schedule: 5 critic steps, the penalty on every one, lr x1."""
REFERENCE = "WGAN-GP"


def grid(
    overrides: dict[str, Any], quick: bool = False, rates: Sequence[float] = LR_SCALES
) -> list[Schedule]:
    """A method's schedules (see the module docstring) at the learning-rate factors
    ``rates``; ``quick``: two, one critic step, x1."""
    penalised = overrides.get("penalty", "gp") != "none"
    critic = (1,) if quick else (1, 2, 5)
    rates = (1.0,) if quick else tuple(rates)
    lazy = ((1, 4) if quick else (1, 4, 8, 16)) if penalised else (1,)
    spread = [(every, 1.0) for every in lazy]
    if penalised and not quick:
        spread.append((1, 0.25))
    return [Schedule(n, every, r, f) for n in critic for every, f in spread for r in rates]


def name(method: str, schedule: Schedule) -> str:
    return f"{method} [{schedule.label}]"


def catalogue(quick: bool, chosen: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """The racing methods: MAIN and the derivative-free ones (``chosen`` only, if given;
    three in ``quick``)."""
    everything = MAIN | {n: o for n, (_, o) in method_race.DERIVATIVE_FREE.items()}
    names = chosen or (QUICK_METHODS if quick else list(everything))
    unknown = [n for n in names if n not in everything]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; known: {list(everything)}")
    if REFERENCE not in names:
        raise SystemExit(f"--methods must include {REFERENCE}, the reference and the controls")
    return {n: everything[n] for n in names}


def configure(
    dataset: str, overrides: dict[str, Any], schedule: Schedule, **study: Any
) -> TrainConfig:
    lr = _options.base_config(dataset).lr
    return _options.base_config(dataset, **{**study, **overrides, **schedule.overrides(lr)})


# ---- selection ----------------------------------------------------------------------------


def estimate(
    counts: dict[str, int],
    probe: _study.Probe,
    budget: float,
    horizon: float,
    evals: int,
    seeds: int,
    workers: int,
) -> list[tuple[str, float]]:
    """Minutes of each stage on ``workers`` cores, from the published WGAN-GP's ``probe``
    and ``budget`` T (seconds): timing the grid (``counts["grid"]`` settings, at its time
    per iteration, the dearest schedule), the selection's two rungs (prefixes of ``horizon``
    T and one evaluation), timing the reported settings (``counts["report"]``, at most) and
    the report (``seeds`` runs each of T and ``evals + 1`` evaluations)."""
    t, s = SELECTION_TIMING, _study.Timing()
    per_probe = (t.warmup + t.iterations) * probe.cpu + probe.build
    fair = s.rounds * ((s.warmup + s.iterations) * probe.cpu + probe.build) + probe.evaluation
    prefix = probe.build + horizon * budget + probe.evaluation
    full = probe.build + budget + (evals + 1) * probe.evaluation
    seconds = [
        ("timing the grid", counts["grid"] * per_probe),
        ("selection, seed 100", counts["grid"] * prefix),
        ("selection, the best on 2 more seeds", counts["rung1"] * prefix),
        ("timing the reported settings", counts["report"] * fair),
        (f"report, {seeds} seeds", counts["report"] * seeds * full),
    ]
    return [(stage, value / workers / 60) for stage, value in seconds]


def select(
    methods: dict[str, dict[str, Any]],
    schedules: dict[str, list[Schedule]],
    dataset: str,
    study: dict[str, Any],
    budget: float,
    horizon: float,
    keep: int,
    seeds: Sequence[int],
    jobs: int,
    timing: _study.Timing,
) -> tuple[dict[str, Schedule], list[Run], dict[str, Any]]:
    """Every method's finalist schedule by successive halving on prefixes (module
    docstring); returns the finalists, the selection runs and a summary per method."""
    fid = _options.DATASETS[dataset].fid
    configs = {
        name(m, s): configure(dataset, o, s, **study)
        for m, o in methods.items()
        for s in schedules[m]
    }
    probes = _study.probe_all(configs, jobs, timing)
    plan = {n: max(1, round(budget / p.cpu)) for n, p in probes.items()}

    def job(n: str, seed: int) -> _study.Job:
        config = dataclasses.replace(configs[n], steps=plan[n], eval_every=0, log_every=plan[n])
        return _study.Job(n, seed, config, seconds=horizon * budget, initial=False)

    print(f"selection: {len(configs)} schedules on seed {seeds[0]}, {horizon:g} of {budget:.0f} s")
    first = _study.train_all([job(n, seeds[0]) for n in configs], jobs)
    score = {r.name: _finite(r.final(fid)) for r in first}
    best = {
        m: sorted((s for s in schedules[m]), key=lambda s: score[name(m, s)])[:keep]
        for m in methods
    }
    print(f"selection: the best {keep} of each method on seeds {list(seeds[1:])}", flush=True)
    more = [job(name(m, s), seed) for m in methods for s in best[m] for seed in seeds[1:]]
    second = _study.train_all(more, jobs)
    fids: dict[str, list[float]] = {}
    for r in [*first, *second]:
        fids.setdefault(r.name, []).append(_finite(r.final(fid)))
    finalists, summary = {}, {}
    for m in methods:
        ranked = sorted(best[m], key=lambda s: statistics.fmean(fids[name(m, s)]))
        finalists[m] = ranked[0]
        summary[m] = {
            "tried": len(schedules[m]),
            "ranking": [[s.label, fids[name(m, s)]] for s in ranked],
            "finalist": dataclasses.asdict(ranked[0]),
        }
    return finalists, [*first, *second], {"plan": plan, "summary": summary}


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def reported(
    finalists: dict[str, Schedule],
) -> tuple[dict[str, tuple[str, Schedule]], dict[str, str]]:
    """The reported settings by run name, ``(method, schedule)``: every finalist, WGAN-GP on
    every finalist's schedule, the published WGAN-GP (each once); and each finalist's
    control (a finalist that is WGAN-GP has none)."""
    settings = {name(m, s): (m, s) for m, s in finalists.items()}
    controls = {}
    for m, s in finalists.items():
        control = name(REFERENCE, s)
        settings.setdefault(control, (REFERENCE, s))
        if m != REFERENCE:
            controls[name(m, s)] = control
    settings.setdefault(name(REFERENCE, PUBLISHED), (REFERENCE, PUBLISHED))
    return settings, controls


# ---- report -------------------------------------------------------------------------------


def report(runs: list[Run], meta: dict[str, Any]) -> str:
    """The Markdown tables, the selection and the goals."""
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    metrics = _stats.present(runs, data.metrics)
    published = meta["published"]
    base = {r.seed: r for r in groups[published]}
    goal = float(meta.get("goal", GOAL))

    def target(run: Run) -> float:
        return base[run.seed].final(data.fid)

    def limit(run: Run) -> float:
        return goal * base[run.seed].seconds

    def to_target(run: Run) -> float:  # never: the whole budget (a lower bound)
        reached = _stats.time_to(run, data.fid, target(run))
        return run.seconds if reached is None else reached

    threshold = float(meta.get("fid_threshold", FID_THRESHOLD))

    def to_threshold(run: Run) -> float:
        reached = _stats.time_to(run, data.fid, threshold)
        return run.seconds if reached is None else reached

    times = [
        (Metric("time/target", "seconds to the published WGAN-GP's final FID", "lower"), to_target),
        (Metric("time/threshold", f"seconds to FID <= {threshold:g}", "lower"), to_threshold),
    ]
    thresholds = {
        f"FID <= {threshold:g}": method_race.constant(threshold),
        "the published WGAN-GP's final FID (same seed)": target,
    }
    finalists = [name(m, Schedule(**s)) for m, s in meta["finalists"].items()]
    controls: dict[str, str] = meta["controls"]
    seeds = len(groups[published])
    lines = [
        f"# Tuned race on {data.title}",
        "",
        f"`{meta.get('command', '')}`",
        "",
        f"Machine: {meta.get('machine', '?')}. Preset `{data.preset}`. Budget: the published "
        f"WGAN-GP's {meta.get('steps', '?')} generator steps ({meta.get('budget', math.nan):.0f} "
        f"s of training); {seeds} seeds, {meta.get('jobs', '?')} run(s) at a time, one thread "
        f"each. Schedules selected on seeds {meta.get('selection_seeds')} (never reported) on "
        f"the first {meta.get('horizon', HORIZON):g} of the budget.",
        "",
        *goals(groups, data.quality, metrics, published, finalists, controls, goal, to_target),
        "",
        "## Selection (FID-like metric at the end of the selection prefix, per selection seed)",
        "",
        "| method | schedules tried | finalist | the best schedules: FID per seed |",
        "| --- | ---: | --- | --- |",
    ]
    for method, summary in meta.get("selection", {}).items():
        ranking = "; ".join(
            f"{label}: {', '.join(f'{f:.1f}' for f in fids)}" for label, fids in summary["ranking"]
        )
        finalist = Schedule(**summary["finalist"]).label
        lines.append(f"| {method} | {summary['tried']} | {finalist} | {ranking} |")
    lines += [
        "",
        "## Every reported setting",
        "",
        *method_race.race_table(
            groups,
            metrics,
            published,
            thresholds,
            (f"within {goal:g}x its time", limit),
            "the published WGAN-GP",
        ),
        "",
        "Times: training seconds at the first evaluation at or below the FID, mean ± 95 % t "
        "interval over the seeds that reach it (k/n); the published WGAN-GP's final FID and "
        "time are those of the same seed. Final values: mean ± 95 % t interval over seeds. "
        "Time (x ...): the budget each setting achieved.",
    ]
    others = [n for n in groups if n != published]
    for metric, value in [*((m, None) for m in metrics), *times]:
        title = f"{metric.label}: difference to the published WGAN-GP, paired by seed"
        pairs = [(n, published) for n in others]
        lines += ["", *_stats.pairs_table(groups, metric, pairs, title, "setting", value)]
    if controls:
        pairs = list(controls.items())
        for metric, value in [*((m, None) for m in metrics), *times]:
            title = f"what the method buys on its schedule: {metric.label}, finalist - control"
            lines += [
                "",
                *_stats.pairs_table(groups, metric, pairs, title, "finalist - control", value),
            ]
    lines += [
        "",
        "Seconds to a FID: a seed that never reaches it counts as its whole budget (a lower "
        "bound of its time).",
    ]
    return "\n".join(lines) + "\n"


def goals(
    groups: dict[str, list[Run]],
    quality: Metric,
    metrics: Sequence[Metric],
    published: str,
    finalists: Sequence[str],
    controls: dict[str, str],
    goal: float,
    to_target: _stats.Value,
) -> list[str]:
    """The goals' plain answers (printed, not asserted): the best finalist's seeds that reach
    the published WGAN-GP's final FID within ``goal`` of its time, its high-frequency excess
    against the published WGAN-GP's, and against its control what the method buys."""
    base = {r.seed: r.seconds for r in groups[published]}
    scored = []
    for finalist in finalists:
        ratios = [to_target(r) / base[r.seed] for r in groups[finalist]]
        within = sum(x <= goal for x in ratios)
        scored.append((within, -statistics.fmean(ratios), finalist, ratios))
    within, _, best, ratios = max(scored)
    n = len(ratios)
    verdict = "met" if within == n else "not met"
    lines = [
        f"**Goal 1** (the published WGAN-GP's final {quality.label} in every seed within "
        f"{goal:g}x its training time): {verdict}. The best finalist is {best}: {within}/{n} "
        f"seeds within {goal:g}x, {statistics.fmean(ratios):.2f}x of the published time on "
        "average (a seed that never reaches counts as its whole budget).",
        "",
    ]
    if HF_EXCESS in metrics:
        d, half, p = _stats.compare(groups, HF_EXCESS.key, [(best, published)])[best, published]
        said = "met" if d <= 0 else "not met"
        lines.append(
            f"**Goal 2** (no more high-frequency excess than the published WGAN-GP): {said}: "
            f"{best} differs by {_stats.fmt(d, half, 2)} dB, paired by seed (p = {p:.3g})."
        )
    else:
        lines.append("**Goal 2** (high-frequency excess): not measured in this record.")
    lines.append("")
    if best in controls:
        control = controls[best]
        d, half, p = _stats.compare(groups, quality.key, [(best, control)])[best, control]
        t, t_half, t_p = _stats.compare(groups, "", [(best, control)], to_target)[best, control]
        lines.append(
            f"**What the method buys** on {best}'s schedule, against {control}: final "
            f"{quality.label} {_stats.fmt(d, half, 2)} (p = {p:.3g}), seconds to the published "
            f"WGAN-GP's final FID {_stats.fmt(t, t_half, 1)} (p = {t_p:.3g}); paired by seed."
        )
    else:
        lines.append(f"**What the method buys**: the best finalist is {REFERENCE} itself.")
    return lines


def plot(runs: list[Run], meta: dict[str, Any], out: Path, saved: Path | None = None) -> list[Path]:
    """FID-like metric against training seconds, mean and 95 % band: the finalists (left)
    and the controls, WGAN-GP on their schedules (right), the published WGAN-GP in both;
    with the spectral metric also the trade-off figure; with the race ``saved`` (its kept
    generators), the samples of the published WGAN-GP and every finalist side by side
    (``tuned_race_samples.png``). Returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    published = meta["published"]
    goal = float(meta.get("goal", GOAL))
    target = statistics.fmean(r.final(data.fid) for r in groups[published])
    limit = goal * statistics.fmean(r.seconds for r in groups[published])
    curves = {n: _stats.by_step(g, data.fid) for n, g in groups.items()}
    means = [y for c in curves.values() for _, y, _ in c if math.isfinite(y)]
    finalists = [name(m, Schedule(**s)) for m, s in meta["finalists"].items()]
    panels = {
        "finalists": [n for n in finalists if n != published],
        "controls: WGAN-GP on each finalist's schedule": [
            n for n in groups if n not in finalists and n != published
        ],
    }
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, (title, names) in zip(axes, panels.items(), strict=True):
        shown = {published: curves[published]} | {n: curves[n] for n in names}
        method_race.draw_curves(ax, shown, published, min(means) / 2)
        ax.axhline(target, color="0.3", lw=0.8, ls="--")
        ax.axvline(limit, color="0.3", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_ylim(0.8 * min(means), 1.25 * max(means))
        ax.set_xlabel(
            "training seconds (dashed: the published WGAN-GP's final FID; dotted: "
            f"{goal:g}x its time)"
        )
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(f"{data.label} (lower is better)")
    fig.suptitle(f"{data.heading}: tuned schedules, mean over seeds with 95 % band")
    fig.tight_layout()
    path = out / "tuned_race.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    spectral = method_race.plot_tradeoff(
        groups, data.quality, published, out / "tuned_race_spectral.png"
    )
    samples = None
    if saved is not None:
        shown = [published, *(n for n in finalists if n != published)]
        samples = _samples.draw(saved, runs, data, shown, out / "tuned_race_samples.png")
    return [f for f in (path, spectral, samples) if f is not None]


# ---- the script ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = _options.parser(__doc__ or "", STEPS, SEEDS, JOBS, EVALS, "tuned-race")
    p.add_argument(
        "--horizon", type=float, default=HORIZON, help="selection prefix, of T (%(default)s)"
    )
    p.add_argument(
        "--keep", type=int, default=KEEP, help="schedules per method on more seeds (%(default)s)"
    )
    p.add_argument("--methods", nargs="+", help="race only these methods (WGAN-GP among them)")
    p.add_argument(
        "--lr-scales",
        type=float,
        nargs="+",
        default=list(LR_SCALES),
        help="learning-rate factors of the grid (%(default)s; 1 2 doubles the selection)",
    )
    p.add_argument(
        "--fid-threshold", type=float, default=FID_THRESHOLD, help="the fixed FID (%(default)s)"
    )
    p.add_argument(
        "--plan",
        type=Path,
        help="a saved tuned race's JSON: its finalists and planned steps, without selecting or "
        "timing again (the report stage only)",
    )
    args = _options.parse(p, argv)
    saved: Path = args.out / "tuned_race.json"

    def train_study() -> _study.Study | None:
        steps, seeds, jobs = _options.size(args)
        selection_seeds = SELECTION_SEEDS[:2] if args.quick else SELECTION_SEEDS
        methods = catalogue(args.quick, args.methods)
        study = _options.study_overrides(steps, args.evals, args.quick)
        published = name(REFERENCE, PUBLISHED)
        timing = _study.QUICK_TIMING if args.quick else _study.Timing()
        print(f"tuned race: {len(methods)} methods, {jobs} job(s); machine: {machine()}")
        if args.plan is not None:
            plan, probes = _study.saved_plan(args.plan)
            old = _records.load_runs(args.plan)[1]
            finalists = {m: Schedule(**s) for m, s in old["finalists"].items()}
            methods = old["methods"]
            budget, summary = old["budget"], old["selection"]
            selection_seeds = tuple(old["selection_seeds"])
        else:
            schedules = {m: grid(o, args.quick, args.lr_scales) for m, o in methods.items()}
            reference = configure(args.data, MAIN[REFERENCE], PUBLISHED, **study)
            probe = _study.probe_all({published: reference}, jobs, timing)[published]
            budget = steps * probe.cpu
            counts = {
                "grid": sum(map(len, schedules.values())),
                "rung1": sum(min(args.keep, len(s)) for s in schedules.values())
                * (len(selection_seeds) - 1),
                "report": 2 * len(methods),
            }
            print(
                f"grid: {counts['grid']} schedules ("
                + ", ".join(f"{m} {len(s)}" for m, s in schedules.items())
                + f"); budget T = {budget:.0f} s of training ({steps} steps of the published "
                f"WGAN-GP at {1e3 * probe.cpu:.0f} ms CPU)"
            )
            stages = estimate(counts, probe, budget, args.horizon, args.evals, seeds, jobs)
            for stage, minutes in stages:
                print(f"  {stage}: {minutes:.0f} min")
            print(
                f"estimated duration: {sum(m for _, m in stages):.0f} min on a quiet machine "
                f"(at most {counts['report']} reported settings)",
                flush=True,
            )
            if args.dry_run:
                return None
            finalists, selection, details = select(
                methods,
                schedules,
                args.data,
                study,
                budget,
                args.horizon,
                args.keep,
                selection_seeds,
                jobs,
                _study.QUICK_TIMING if args.quick else SELECTION_TIMING,
            )
            summary = details["summary"]
            _records.save_runs(
                selection,
                args.out / "tuned_race_selection.json",
                {
                    "budget": budget,
                    "horizon": args.horizon,
                    "seeds": list(selection_seeds),
                    "plan": details["plan"],
                    "summary": summary,
                },
            )
        settings, controls = reported(finalists)
        lr = _options.base_config(args.data).lr
        overrides = {n: {**methods[m], **s.overrides(lr)} for n, (m, s) in settings.items()}
        if args.plan is None:
            common = dict.fromkeys(overrides, steps)
            configs = _options.planned(args.data, overrides, common, args.evals, args.quick)
            probes = _study.probe_all(configs, jobs, timing)
            plan = _study.plan_steps(steps, probes, published)
        configs = _options.planned(args.data, overrides, plan, args.evals, args.quick)
        return _study.execute(
            "tuned_race.py",
            argv,
            _study.work(configs, seeds),
            {n: probes[n] for n in configs},
            jobs,
            saved,
            False,
            {n: plan[n] for n in configs},
            data=args.data,
            steps=steps,
            seeds=seeds,
            budget=budget,
            horizon=args.horizon,
            goal=GOAL,
            selection_seeds=list(selection_seeds),
            fid_threshold=args.fid_threshold,
            published=published,
            finalists={m: dataclasses.asdict(s) for m, s in finalists.items()},
            controls=controls,
            selection=summary,
            methods=methods,
        )

    return _study.conclude(args, saved, train_study, report, functools.partial(plot, saved=saved))


if __name__ == "__main__":
    sys.exit(main())
