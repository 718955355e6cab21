"""A race of lipreg's Lipschitz methods on the digits: quality against wall-clock time.

Every method trains the README's main job (the preset bwgan-digits: scikit-learn's digits at
16x16, the DCGAN pair, Adam, 5 critic steps per generator step, the drift term, the weight
average, the digits quality metric) with its own regulariser, loss and constants as
published (the table METHODS, with sources); nothing else differs. The questions: which
method gives the best quality per second, and does one reach WGAN-GP's final
quality in at most half of WGAN-GP's wall time?

The budget ("--budget wall", the default) is a common wall-clock budget: WGAN-GP trains
--steps generator steps, and every other method as many steps as fit in the same time,
from the time per iteration of each method measured single-threaded here before the race
(its learning-rate decay spans its own steps, so every run ends its schedule). A common
number of steps would cut the cheap methods (weight clipping, spectral normalisation, the
c-transform: about a third of a gradient penalty's step) off at a third of WGAN-GP's time,
before the half of it that the goal asks about; a common time asks what a user with a time
budget gets. "--budget steps" gives every method --steps steps instead.

Time is measured fairly: every run is single-threaded and its clock counts the CPU seconds
of its training iterations only (building the trainer, with the estimate of lam and gamma,
and every evaluation are outside it): the wall time of the run on a quiet core, which
another run on the other core (--jobs 2, the default) or other load does not inflate as it
would the wall time. (Two runs side by side still share the caches and memory bandwidth;
--jobs 1 avoids even that, at twice the duration.)

Outputs in --out: method_race.json (every run's evaluation history; --redraw reads it back),
method_race.md (the tables and the answer to the goal), and in --figures (default: --out)
method_race.png (digits FID against training seconds, mean over seeds with a 95 % band).
--dry-run measures the time per iteration and prints the estimated duration only.

    python benchmarks/method_race.py --out runs/method-race          # the full race
    python benchmarks/method_race.py --quick --out /tmp/race-quick   # a tiny version, seconds
    python benchmarks/method_race.py --redraw --out runs/method-race # tables and plot again
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _study
from _study import CLASSES, FID, Run

BASELINE = "WGAN-GP"
PLAIN = {"norm": "l2", "lam": 10.0, "gamma": 1.0}

METHODS: dict[str, tuple[dict[str, Any], str]] = {
    BASELINE: ({**PLAIN, "penalty": "gp"}, "Gulrajani et al. 2017: lam 10, gamma 1"),
    "BWGAN W^{-3/2,2}": ({}, "the preset: Adler & Lunz 2018, lam and gamma from the data"),
    "one-sided GP": ({**PLAIN, "penalty": "lp"}, "WGAN-LP, Petzka et al. 2018: lam 10"),
    "DRAGAN": (
        {**PLAIN, "penalty": "dragan", "loss": "ns"},
        "Kodali et al. 2017: the GAN loss, lam 10, k 1",
    ),
    "finite differences": (
        {**PLAIN, "penalty": "fd"},
        "lipreg.FiniteDifferenceGP over real-fake pairs, lam 10",
    ),
    "lazy GP /16": (
        {**PLAIN, "penalty": "gp", "lazy_every": 16},
        "WGAN-GP's penalty on every 16th critic step, times 16 (StyleGAN2's schedule)",
    ),
    "R1": (
        {**PLAIN, "penalty": "r1", "loss": "ns", "gamma": 10.0},
        "Mescheder et al. 2018: the GAN loss, gamma 10",
    ),
    "R2": (
        {**PLAIN, "penalty": "r2", "loss": "ns", "gamma": 10.0},
        "Mescheder et al. 2018: the GAN loss, gamma 10",
    ),
    "R1+R2": (
        {**PLAIN, "penalty": "r1r2", "loss": "rpgan", "gamma": 0.05},
        "R3GAN, Huang et al. 2024: RpGAN loss, gamma 0.05 (its CIFAR-10 value)",
    ),
    "weight clipping": (
        {**PLAIN, "penalty": "none", "constraint": "clip:c=0.01"},
        "WGAN, Arjovsky et al. 2017: c 0.01 (with the preset's Adam, not RMSProp)",
    ),
    "SN (power)": (
        {**PLAIN, "penalty": "none", "constraint": "sn", "loss": "hinge"},
        "SNGAN, Miyato et al. 2018: hinge loss, one power iteration per forward",
    ),
    "SN (FFT)": (
        {**PLAIN, "penalty": "none", "constraint": "sn:conv=fft", "loss": "hinge"},
        "as SN (power), convolutions divided by their FFT operator-norm bound",
    ),
    "c-transform": (
        {**PLAIN, "penalty": "none", "loss": "ctransform"},
        "Mallasto et al. 2019: the c-transform over the real batch, L^2 cost",
    ),
}
"""Every method's changes to the preset and where its constants come from (not tuned here)."""

STEPS, SEEDS, JOBS, EVALS, FID_THRESHOLD = 500, 5, 2, 20, 100.0
"""Defaults: 13 methods x 5 seeds, two at a time, each as long as 500 WGAN-GP steps: about 75
minutes on 2 quiet cores at the per-iteration times measured for docs/studies.md."""


def budgeted(steps: int, probes: dict[str, _study.Probe], budget: str) -> dict[str, int]:
    """Every method's generator steps: ``steps`` for all (``budget="steps"``), or as many as
    fit in WGAN-GP's time for ``steps`` at each method's CPU time per iteration."""
    if budget == "steps":
        return dict.fromkeys(probes, steps)
    seconds = steps * probes[BASELINE].cpu
    return {name: max(1, round(seconds / p.cpu)) for name, p in probes.items()}


# ---- report ------------------------------------------------------------------------------


def times_to(runs: Sequence[Run], threshold: float) -> list[float | None]:
    return [_study.time_to(r, FID, threshold) for r in runs]


def reach(times: Sequence[float | None]) -> str:
    """Mean ± 95 % half-width of the times of the seeds that reach, and how many do."""
    got = [t for t in times if t is not None]
    if not got:
        return f"never (0/{len(times)})"
    return f"{_study.fmt(*_study.mean_ci(got), 0)} s ({len(got)}/{len(times)})"


def goal(groups: dict[str, list[Run]]) -> tuple[str, float, float]:
    """The plain answer to the goal, WGAN-GP's mean final FID and half its mean time."""
    base = groups[BASELINE]
    target = statistics.fmean(r.final(FID) for r in base)
    half = statistics.fmean(r.seconds for r in base) / 2
    results = []  # (name, seeds within half the time, seeds reaching, mean time to reach)
    for name, runs in groups.items():
        if name == BASELINE:
            continue
        times = times_to(runs, target)
        got = [t for t in times if t is not None]
        within = sum(t <= half for t in got)
        results.append((name, within, len(got), statistics.fmean(got) if got else math.inf))
    results.sort(key=lambda r: (-r[1], -r[2], r[3]))
    n = len(base)
    if not math.isfinite(target):
        return "WGAN-GP diverged (FID inf at the end): there is no quality to reach.", target, half
    head = (
        f"WGAN-GP ends at digits FID {target:.1f} (mean of {n} seeds) after {2 * half:.0f} s "
        f"of training on average; half of that is {half:.0f} s. "
    )
    winners = [f"{name} ({mean:.0f} s on average)" for name, w, _, mean in results if w == n]
    if winners:
        answer = f"Yes: in every seed, within {half:.0f} s: {'; '.join(winners)}."
    elif not results or results[0][2] == 0:
        answer = "No: no method reaches that FID in any seed."
    else:
        name, within, reached, mean = results[0]
        answer = (
            f"No method does so in every seed. The closest is {name}: it reaches that FID in "
            f"{reached}/{n} seeds, after {mean:.0f} s on average, within {half:.0f} s in "
            f"{within}/{n}."
        )
    return head + answer, target, half


def report(runs: list[Run], meta: dict[str, Any]) -> str:
    """The Markdown tables and the goal's answer."""
    groups = _study.by_name(runs)
    threshold = float(meta.get("fid_threshold", FID_THRESHOLD))
    answer, target, half = goal(groups)
    seeds = len(groups[BASELINE])
    lines = [
        "# Method race on the digits",
        "",
        f"`{meta.get('command', '')}`",
        "",
        f"Machine: {meta.get('machine', '?')}. Preset `{_study.PRESET}`, budget "
        f"{meta.get('budget', '?')}: WGAN-GP trains {meta.get('steps', '?')} generator steps, "
        f"{seeds} seeds, {meta.get('jobs', '?')} run(s) at a time, one thread each; times "
        "count training iterations only.",
        "",
        f"**Goal.** {answer}",
        "",
        "| method | steps | ms per step | digits FID at the end | classes at the end "
        f"| time to FID <= {threshold:g} | time to FID <= {target:.1f} (WGAN-GP's) "
        f"| within {half:.0f} s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, group in groups.items():
        steps = group[0].steps
        per_step = statistics.fmean(1e3 * r.seconds / max(r.steps, 1) for r in group)
        fid = _study.cell([r.final(FID) for r in group])
        classes = _study.cell([r.final(CLASSES) for r in group])
        to_goal = times_to(group, target)
        within = sum(t is not None and t <= half for t in to_goal)
        lines.append(
            f"| {name} | {steps} | {per_step:.0f} | {fid} | {classes} "
            f"| {reach(times_to(group, threshold))} | {reach(to_goal)} | {within}/{len(group)} |"
        )
    lines += [
        "",
        "Times are the training seconds at the first evaluation at or below the FID, mean ± "
        "95 % t interval over the seeds that reach it (k/n: how many do); 'never' when none "
        "does within the budget. Final values: mean ± 95 % t interval over seeds.",
        "",
        "At the end of the common budget, every method against WGAN-GP, paired by seed:",
        "",
        *_study.paired_table(groups, FID, "digits FID", "lower", BASELINE),
        "",
        *_study.paired_table(groups, CLASSES, "classes reached", "higher", BASELINE),
        "",
        "| method | settings and source |",
        "| --- | --- |",
    ]
    for name, method in meta.get("methods", {}).items():
        shown = ", ".join(f"{k} {v}" for k, v in method["overrides"].items()) or "the preset"
        lines.append(f"| {name} | {shown}; {method['source']} |")
    return "\n".join(lines) + "\n"


PANELS = {
    "gradient penalties": lambda overrides: overrides.get("penalty", "gp") != "none",
    "constraints and the c-transform": lambda overrides: overrides.get("penalty") == "none",
}
"""The figure's two panels and which methods each shows (WGAN-GP, the reference, in both)."""


def plot(runs: list[Run], meta: dict[str, Any], out: Path) -> Path:
    """Digits FID against training seconds for every method: the mean over seeds at each
    evaluation (and the mean time of it), with a 95 % band; gradient penalties on the left,
    constraints and the c-transform on the right, WGAN-GP in both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = _study.by_name(runs)
    _, target, half = goal(groups)
    curves = {name: _study.by_step(group, FID) for name, group in groups.items()}
    means = [y for curve in curves.values() for _, y, _ in curve if math.isfinite(y)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    colours = plt.get_cmap("tab10").colors
    styles = ("-", "--", "-.", ":")
    for ax, (title, shows) in zip(axes, PANELS.items(), strict=True):
        names = [BASELINE] + [n for n in groups if n != BASELINE and shows(METHODS[n][0])]
        for i, name in enumerate(names):
            xs = [x for x, _, _ in curves[name]]
            ys = [y for _, y, _ in curves[name]]
            hs = [0.0 if math.isnan(h) else h for _, _, h in curves[name]]
            colour = "black" if name == BASELINE else colours[(i - 1) % 10]
            label = re.sub(r"(\w\^\{[^}]*\})", r"$\1$", name)  # W^{-3/2,2} as mathtext
            width = 2 if name == BASELINE else 1.3
            ax.plot(xs, ys, styles[i % 4], color=colour, lw=width, label=label)
            # the band is clipped to the plot: early evaluations spread widely between seeds
            low = [max(y - h, min(means) / 2) for y, h in zip(ys, hs, strict=True)]
            high = [y + h for y, h in zip(ys, hs, strict=True)]
            ax.fill_between(xs, low, high, color=colour, alpha=0.12, lw=0)
        ax.axhline(target, color="0.3", lw=0.8, ls="--")
        ax.axvline(half, color="0.3", lw=0.8, ls=":")
        ax.annotate(
            "WGAN-GP's final FID",
            (0, target),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=8,
        )
        ax.annotate(
            "half its time",
            (half, 1),
            xycoords=("data", "axes fraction"),
            textcoords="offset points",
            xytext=(3, -12),
            fontsize=8,
        )
        ax.set_yscale("log")
        ax.set_ylim(0.8 * min(means), 1.25 * max(means))
        ax.set_xlabel("training seconds (one thread; evaluations excluded)")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("digits FID (lower is better)")
    fig.suptitle(
        f"Digits at 16x16: quality against training time (budget {meta.get('budget', '?')}; "
        "mean over seeds, 95 % band)"
    )
    fig.tight_layout()
    path = out / "method_race.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = _study.parser(__doc__ or "", STEPS, SEEDS, JOBS, EVALS, "runs/method-race")
    p.add_argument(
        "--budget",
        choices=("wall", "steps"),
        default="wall",
        help="wall: every method trains as long as WGAN-GP's --steps take; steps: every "
        "method --steps (%(default)s)",
    )
    p.add_argument(
        "--fid-threshold",
        type=float,
        help=f"the fixed digits FID of the time-to-quality table (default: {FID_THRESHOLD:g}; "
        "with --redraw, the one saved with the runs)",
    )
    args = p.parse_args(argv)
    out: Path = args.out
    saved = out / "method_race.json"
    if args.redraw:
        runs, meta = _study.load_runs(saved)
        if args.fid_threshold is not None:
            meta["fid_threshold"] = args.fid_threshold
    else:
        steps, seeds, jobs = (2, 2, 1) if args.quick else (args.steps, args.seeds, args.jobs)
        print(
            f"method race: {len(METHODS)} methods x {seeds} seeds, {jobs} job(s), budget "
            f"{args.budget} of WGAN-GP's {steps} steps"
        )
        print(f"machine: {_study.machine()}")
        probe_config = _study.base_config(**_study.study_overrides(steps, args.evals, args.quick))
        probes = {
            name: _study.probe(
                dataclasses.replace(probe_config, **overrides).checked(),
                iterations=1 if args.quick else 8,
            )
            for name, (overrides, _) in METHODS.items()
        }
        plan = budgeted(steps, probes, args.budget)
        configs = {
            name: _study.base_config(
                **_study.study_overrides(plan[name], args.evals, args.quick), **o
            )
            for name, (o, _) in METHODS.items()
        }
        work = [(n, seed, c, None) for seed in range(seeds) for n, c in configs.items()]
        done = _study.execute(
            "method_race.py",
            argv,
            work,
            probes,
            jobs,
            saved,
            args.dry_run,
            plan,
            steps=steps,
            seeds=seeds,
            budget=args.budget,
            fid_threshold=FID_THRESHOLD if args.fid_threshold is None else args.fid_threshold,
            methods={n: {"overrides": o, "source": s} for n, (o, s) in METHODS.items()},
        )
        if done is None:
            return 0
        runs, meta = done
    text = report(runs, meta)
    (out / "method_race.md").write_text(text)
    figure = plot(runs, meta, args.figures or out)
    print(text)
    print(f"wrote {saved}, {out / 'method_race.md'}, {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
