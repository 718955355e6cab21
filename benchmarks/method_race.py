"""A race of lipreg's Lipschitz methods on the digits: quality against wall-clock time.

Every method trains the main job on the papers' schedule (the preset bwgan-digits-paper:
scikit-learn's digits at 16x16, the DCGAN pair, Adam, 5 critic steps per generator step, the
drift term, the weight average, the digits quality metric) with its own regulariser, loss
and constants as published (the table METHODS, with sources); nothing else differs. ``--data
fashion-mnist`` races on Fashion-MNIST (its preset and metric). The questions: which method
gives the best quality per second, and does one reach WGAN-GP's final quality in at most
half of WGAN-GP's wall time?

The budget ("--budget wall", the default) is a common wall-clock budget: WGAN-GP trains
--steps generator steps, and every other method as many steps as fit in the same time,
from the time per iteration of each method measured before the race in the race's own
conditions (_study.probe_all: the same worker processes, as many at a time, after a
warm-up, in two rounds of shuffled order); its learning-rate decay spans its own steps, so
every run ends its schedule. A common number of steps would cut the cheap methods (weight
clipping, spectral normalisation, the c-transform: about a third of a gradient penalty's
step) off at a third of WGAN-GP's time, before the half of it that the goal asks about; a
common time asks what a user with a time budget gets. "--budget steps" gives every method
--steps steps instead. The table states the budget each method achieved (its mean training
seconds over WGAN-GP's); --plan FILE reruns the steps planned in a saved race (its JSON), so
a rerun trains the same steps.

Time is measured fairly: every run is single-threaded and its clock counts the CPU seconds
of its training iterations only (building the trainer, with the estimate of lam and gamma,
and every evaluation are outside it): the wall time of the run on a quiet core, which
another run on the other core (--jobs 2, the default) or other load does not inflate as it
would the wall time. (Two runs side by side still share the caches and memory bandwidth;
--jobs 1 avoids even that, at twice the duration.)

Outputs in --out (default runs/DATA/race): method_race.json (every run's evaluation history;
--redraw reads it back), method_race_generators.pt (every run's final generator; --rescore),
method_race.md (the tables and the answer to the goal), and in --figures (default: --out)
method_race.png (digits FID against training seconds, mean over seeds with a 95 % band)
and, when the spectral metric was measured, method_race_spectral.png (final FID against
final high-frequency excess). --dry-run measures the time per iteration and prints the
estimated duration only.

    python benchmarks/method_race.py --out runs/digits/race           # the full race
    python benchmarks/method_race.py --quick --out /tmp/race-quick    # a tiny version, seconds
    python benchmarks/method_race.py --redraw --out runs/digits/race  # tables and plot again
    python benchmarks/method_race.py --rescore --out runs/digits/race # new metrics, kept runs
"""

from __future__ import annotations

import functools
import math
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _options
import _samples
import _stats
import _study
from _records import Run, machine
from _stats import HF_EXCESS, Metric

from lipreg.train.presets import TUNED_SCHEDULE

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

# The fastest recipe of the tuned race (docs/studies.md, "The tuned race"): R2 with its
# published constants on the schedule that race selected for it. The one method here whose
# schedule is not the papers': it shows what a user who takes that advice gets on new data.
METHODS["R2 tuned"] = (
    {**METHODS["R2"][0], **TUNED_SCHEDULE},
    "the tuned race's fastest recipe: R2 as above, one critic step per generator step, "
    "the penalty on a seeded quarter of each batch",
)

# The derivative-free penalties (issue 19): each is the exact method's configuration with the
# penalty swapped, so that the two differ in the derivative alone (same loss, same gamma);
# sigma is the library's default (lipreg.derivative_free.DEFAULT_SIGMA, measured on this
# preset's critic).
DERIVATIVE_FREE: dict[str, tuple[str, dict[str, Any]]] = {
    "approx R1": ("R1", {**METHODS["R1"][0], "penalty": "approx-r1"}),
    "approx R2": ("R2", {**METHODS["R2"][0], "penalty": "approx-r2"}),
    "approx R1+R2": ("R1+R2", {**METHODS["R1+R2"][0], "penalty": "approx-r1r2"}),
}
"""Every derivative-free method: the exact method it approximates and its changes to the
preset."""


STEPS, SEEDS, JOBS, EVALS, FID_THRESHOLD = 500, 5, 2, 20, 100.0
"""Defaults: 14 methods x 5 seeds, two at a time, each as long as 500 WGAN-GP steps: about 80
minutes on 2 quiet cores at the per-iteration times measured for docs/studies.md (the kept
digits race ran the 13 before R2 tuned)."""


# ---- report ------------------------------------------------------------------------------


def times_to(runs: Sequence[Run], key: str, threshold: float) -> list[float | None]:
    return [_stats.time_to(r, key, threshold) for r in runs]


def reach(times: Sequence[float | None]) -> str:
    """Mean ± 95 % half-width of the times of the seeds that reach, and how many do."""
    got = [t for t in times if t is not None]
    if not got:
        return f"never (0/{len(times)})"
    return f"{_stats.fmt(*_stats.mean_ci(got), 0)} s ({len(got)}/{len(times)})"


def goal(groups: dict[str, list[Run]], quality: Metric) -> tuple[str, float, float]:
    """The plain answer to the goal, WGAN-GP's mean final ``quality`` (the FID-like metric)
    and half its mean time."""
    base = groups[BASELINE]
    target = statistics.fmean(r.final(quality.key) for r in base)
    half = statistics.fmean(r.seconds for r in base) / 2
    results = []  # (name, seeds within half the time, seeds reaching, mean time to reach)
    for name, runs in groups.items():
        if name == BASELINE:
            continue
        times = times_to(runs, quality.key, target)
        got = [t for t in times if t is not None]
        within = sum(t <= half for t in got)
        results.append((name, within, len(got), statistics.fmean(got) if got else math.inf))
    results.sort(key=lambda r: (-r[1], -r[2], r[3]))
    n = len(base)
    if not math.isfinite(target):
        return "WGAN-GP diverged (FID inf at the end): there is no quality to reach.", target, half
    head = (
        f"WGAN-GP ends at {quality.label} {target:.1f} (mean of {n} seeds) after "
        f"{2 * half:.0f} s of training on average; half of that is {half:.0f} s. "
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


Threshold = Callable[[Run], float]
"""A run's threshold (the same for every run, or e.g. its seed's reference value)."""


def constant(value: float) -> Threshold:
    return lambda run: value


def race_table(
    groups: dict[str, list[Run]],
    metrics: Sequence[Metric],
    reference: str,
    thresholds: dict[str, Threshold],
    within: tuple[str, Threshold],
    called: str | None = None,
) -> list[str]:
    """Markdown lines: per setting its steps, ms per step, the budget it achieved (its mean
    training seconds over ``reference``'s, which the header calls ``called``), every metric
    at the end, the time to each of ``thresholds`` of the FID-like metric ``metrics[0]`` (by
    column title), and how many seeds reach the last threshold within ``within``'s seconds
    (column title, seconds)."""
    quality = metrics[0]
    budget = _stats.budgets(groups, reference)
    title, limit = within
    lines = [
        f"| method | steps | ms per step | time (x {called or reference}'s) | "
        + " | ".join(f"{m.label} at the end" for m in metrics)
        + " | "
        + " | ".join(f"time to {name}" for name in thresholds)
        + f" | {title} |",
        "| --- |" + " ---: |" * (4 + len(metrics) + len(thresholds)),
    ]
    for name, group in groups.items():
        per_step = statistics.fmean(1e3 * r.seconds / max(r.steps, 1) for r in group)
        finals = [_stats.cell([r.final(m.key) for r in group]) for m in metrics]
        times = [[_stats.time_to(r, quality.key, t(r)) for r in group] for t in thresholds.values()]
        inside = sum(t is not None and t <= limit(r) for t, r in zip(times[-1], group, strict=True))
        lines.append(
            f"| {name} | {group[0].steps} | {per_step:.0f} | {budget[name]:.2f} | "
            + " | ".join(finals)
            + " | "
            + " | ".join(reach(t) for t in times)
            + f" | {inside}/{len(group)} |"
        )
    return lines


def report(runs: list[Run], meta: dict[str, Any]) -> str:
    """The Markdown tables and the goal's answer."""
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    metrics = _stats.present(runs, data.metrics)
    threshold = float(meta.get("fid_threshold", FID_THRESHOLD))
    answer, target, half = goal(groups, data.quality)
    seeds = len(groups[BASELINE])
    thresholds = {
        f"FID <= {threshold:g}": constant(threshold),
        f"FID <= {target:.1f} (WGAN-GP's)": constant(target),
    }
    lines = [
        f"# Method race on {data.title}",
        "",
        f"`{meta.get('command', '')}`",
        "",
        f"Machine: {meta.get('machine', '?')}. Preset `{data.preset}`, budget "
        f"{meta.get('budget', '?')}: WGAN-GP trains {meta.get('steps', '?')} generator steps, "
        f"{seeds} seeds, {meta.get('jobs', '?')} run(s) at a time, one thread each; times "
        "count training iterations only.",
        "",
        f"**Goal.** {answer}",
        "",
        *race_table(
            groups, metrics, BASELINE, thresholds, (f"within {half:.0f} s", constant(half))
        ),
        "",
        "Times are the training seconds at the first evaluation at or below the FID, mean ± "
        "95 % t interval over the seeds that reach it (k/n: how many do); 'never' when none "
        "does within the budget. Final values: mean ± 95 % t interval over seeds. The "
        f"budget achieved is a method's mean training seconds over {BASELINE}'s.",
        "",
        "At the end of the common budget, every method against WGAN-GP, paired by seed:",
    ]
    for m in metrics:
        lines += ["", *_stats.paired_table(groups, m, BASELINE)]
    lines += [
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


def mathtext(name: str) -> str:
    """``name`` with W^{-3/2,2} as mathtext, for a legend."""
    return re.sub(r"(\w\^\{[^}]*\})", r"$\1$", name)


SAMPLES = "method_race_samples.png"
"""The samples figure (:mod:`_samples`) of :data:`SHOWN`."""
SHOWN = (
    "WGAN-GP",
    "BWGAN W^{-3/2,2}",
    "lazy GP /16",
    "R1",
    "R2",
    "R2 tuned",
    "SN (power)",
    "c-transform",
)


def plot(runs: list[Run], meta: dict[str, Any], out: Path, saved: Path | None = None) -> list[Path]:
    """The FID-like metric against training seconds for every method: the mean over seeds
    at each evaluation (and the mean time of it), with a 95 % band; gradient penalties on
    the left, constraints and the c-transform on the right, WGAN-GP in both. With the
    spectral metric, also :func:`plot_tradeoff`; with the race ``saved`` (its kept
    generators), the samples of :data:`SHOWN` side by side. Returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    _, target, half = goal(groups, data.quality)
    curves = {name: _stats.by_step(group, data.fid) for name, group in groups.items()}
    means = [y for curve in curves.values() for _, y, _ in curve if math.isfinite(y)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, (title, shows) in zip(axes, PANELS.items(), strict=True):
        names = [BASELINE] + [n for n in groups if n != BASELINE and shows(METHODS[n][0])]
        draw_curves(ax, {n: curves[n] for n in names}, BASELINE, min(means) / 2)
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
    axes[0].set_ylabel(f"{data.label} (lower is better)")
    fig.suptitle(
        f"{data.heading}: quality against training time (budget {meta.get('budget', '?')}; "
        "mean over seeds, 95 % band)"
    )
    fig.tight_layout()
    path = out / "method_race.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    spectral = plot_tradeoff(groups, data.quality, BASELINE, out / "method_race_spectral.png")
    samples = None if saved is None else _samples.draw(saved, runs, data, SHOWN, out / SAMPLES)
    return [f for f in (path, spectral, samples) if f is not None]


Curve = list[tuple[float, float, float]]


def draw_curves(ax: Any, curves: dict[str, Curve], reference: str, floor: float) -> None:
    """Each setting's curve ``(mean seconds, mean value, half-width)`` with its 95 % band on
    ``ax``, ``reference`` in black and thicker; bands are clipped below at ``floor`` (early
    evaluations spread widely between seeds)."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors
    styles = ("-", "--", "-.", ":")
    for i, (name, curve) in enumerate(curves.items()):
        xs = [x for x, _, _ in curve]
        ys = [y for _, y, _ in curve]
        hs = [0.0 if math.isnan(h) else h for _, _, h in curve]
        colour = "black" if name == reference else colours[(i - 1) % 10]
        width = 2 if name == reference else 1.3
        ax.plot(xs, ys, styles[i % 4], color=colour, lw=width, label=mathtext(name))
        low = [max(y - h, floor) for y, h in zip(ys, hs, strict=True)]
        high = [y + h for y, h in zip(ys, hs, strict=True)]
        ax.fill_between(xs, low, high, color=colour, alpha=0.12, lw=0)


def plot_tradeoff(
    groups: dict[str, list[Run]], quality: Metric, reference: str, path: Path
) -> Path | None:
    """Every setting's final ``quality`` (the FID-like metric) against its final
    high-frequency excess, means with 95 % intervals both ways, ``reference`` in black; the
    dashed line is real images' spectrum (excess 0). ``None`` (nothing drawn) when the runs
    did not measure the excess."""
    runs = [r for group in groups.values() for r in group]
    if not _stats.present(runs, [HF_EXCESS]):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    colours = plt.get_cmap("tab20").colors
    for i, (name, group) in enumerate(groups.items()):
        x = _stats.finite([r.final(HF_EXCESS.key) for r in group])
        y = _stats.finite([r.final(quality.key) for r in group])
        if not x or not y:
            continue
        (mx, hx), (my, hy) = _stats.mean_ci(x), _stats.mean_ci(y)
        colour = "black" if name == reference else colours[i % 20]
        ax.errorbar(
            mx,
            my,
            xerr=0.0 if math.isnan(hx) else hx,
            yerr=0.0 if math.isnan(hy) else hy,
            fmt="o",
            color=colour,
            capsize=3,
            label=mathtext(name),
        )
    ax.axvline(0.0, color="tab:green", lw=1, ls="--", label="real images' spectrum")
    ax.set_xlabel(f"{HF_EXCESS.label} at the end (+: more high-frequency power than real images)")
    ax.set_ylabel(f"{quality.label} at the end (lower is better)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Coarse quality against pixel-level noise (mean, 95 % intervals)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = _options.parser(__doc__ or "", STEPS, SEEDS, JOBS, EVALS, "race")
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
        help=f"the fixed FID of the time-to-quality table (default: {FID_THRESHOLD:g}; "
        "with --redraw, the one saved with the runs)",
    )
    p.add_argument(
        "--plan",
        type=Path,
        help="a saved race's JSON: train the steps it planned (and report its timings) "
        "instead of timing the methods again",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        metavar="NAME",
        help=f"race only these methods of METHODS (all); {BASELINE}, whose time is the "
        "budget, always runs. E.g. --methods R2 'lazy GP /16'",
    )
    args = _options.parse(p, argv)
    saved: Path = args.out / "method_race.json"
    chosen = {
        name: value
        for name, value in METHODS.items()
        if args.methods is None or name in args.methods or name == BASELINE
    }

    def train_study() -> _study.Study | None:
        steps, seeds, jobs = _options.size(args)
        print(
            f"method race: {len(chosen)} methods x {seeds} seeds, {jobs} job(s), budget "
            f"{args.budget} of WGAN-GP's {steps} steps"
        )
        print(f"machine: {machine()}")
        study = _options.study_overrides(steps, args.evals, args.quick)
        if args.plan is not None:
            plan, probes = _study.saved_plan(args.plan)
        else:
            probe_configs = {
                name: _options.base_config(args.data, **study, **o)
                for name, (o, _) in chosen.items()
            }
            timing = _study.QUICK_TIMING if args.quick else _study.Timing()
            probes = _study.probe_all(probe_configs, jobs, timing)
            plan = _study.plan_steps(steps, probes, BASELINE, args.budget)
        overrides = {name: o for name, (o, _) in chosen.items()}
        configs = _options.planned(args.data, overrides, plan, args.evals, args.quick)
        return _study.execute(
            "method_race.py",
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
            fid_threshold=FID_THRESHOLD if args.fid_threshold is None else args.fid_threshold,
            methods={n: {"overrides": o, "source": s} for n, (o, s) in chosen.items()},
        )

    def threshold(meta: dict[str, Any]) -> None:
        if args.redraw and args.fid_threshold is not None:
            meta["fid_threshold"] = args.fid_threshold

    figures = functools.partial(plot, saved=saved)
    return _study.conclude(args, saved, train_study, report, figures, threshold)


if __name__ == "__main__":
    sys.exit(main())
