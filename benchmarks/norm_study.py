"""The paper's norm study on the digits: which Banach space suits the data.

Banach Wasserstein GAN (Adler & Lunz 2018) sweeps the norm of the critic's penalty: W^{s,2}
for s in [-2, 2] and L^p for p in (1, 10], and reports quality curves on CIFAR-10 and
CelebA. This script runs the same sweep on the main job on the papers' schedule (the preset
bwgan-digits-paper: scikit-learn's digits at 16x16, the DCGAN pair, BanachGP with lam and
gamma estimated from the data, the critic as D = gamma * f), each norm over the same seeds,
steps and models, plus WGAN-GP (L^2, lam 10, gamma 1) as the baseline, and scores every run
with the digits quality metric (digits FID, classes reached; docs/metrics.md) and, where the
trainer measures it, the spectral metric (distance of the power spectra, high-frequency
excess in dB). ``--data fashion-mnist`` runs the same study on Fashion-MNIST (its preset and
metric).

Every setting is the preset with its norm (and lam, gamma) changed; the study's own choices
(steps, evaluations) come from ``_study.study_overrides``. Runs with the same seed share
the data order, the initial weights and the noise, so the differences to WGAN-GP are paired
by seed: the table gives their mean with a 95 % t interval and the p-value of the paired t-test, and
Holm's correction across the 12 comparisons of each metric says which differences are
significant at the 5 % level (one family per metric).

Outputs in --out (default runs/DATA/norm): norm_study.json (every run's evaluation history;
--redraw reads it back), norm_study_generators.pt (every run's final generator in float16;
--rescore evaluates them again with the current metrics and rewrites the JSON's final
evaluations), norm_study.md (the tables), and in --figures (default: --out)
norm_study_sobolev.png and norm_study_lp.png (the metrics against s and p: mean with 95 %
interval bars, WGAN-GP as a horizontal band). --dry-run measures the time per iteration and
prints the estimated duration only.

    python benchmarks/norm_study.py --out runs/digits/norm           # the full study
    python benchmarks/norm_study.py --quick --out /tmp/norm-quick    # a tiny version, seconds
    python benchmarks/norm_study.py --redraw --out runs/digits/norm  # tables and plots again
    python benchmarks/norm_study.py --rescore --out runs/digits/norm # new metrics, kept runs
"""

from __future__ import annotations

import functools
import math
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _options
import _samples
import _stats
import _study
from _records import Run, machine
from _stats import HF_EXCESS

SOBOLEV_S = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
LP_P = (1.3, 2.0, 4.0, 10.0)
BASELINE = "WGAN-GP"

STEPS, SEEDS, JOBS, EVALS = 400, 5, 2, 10
"""Defaults: 65 runs of 400 steps, two at a time, take about 61 minutes on 2 quiet cores at the
per-iteration times measured for docs/studies.md (the budget is 90; the preset's own 600
steps would take about 90, and 500 about 80)."""


def sobolev(s: float) -> str:
    return f"W^{{{s:g},2}}"


def lebesgue(p: float) -> str:
    return f"L^{p:g}"


def settings() -> dict[str, dict[str, Any]]:
    """Every setting's changes to the preset: WGAN-GP, then the W^{s,2} and L^p sweeps."""
    auto = {"lam": "auto", "gamma": "auto"}
    out: dict[str, dict[str, Any]] = {BASELINE: {"norm": "l2", "lam": 10.0, "gamma": 1.0}}
    out |= {sobolev(s): {"norm": f"sobolev:s={s:g},p=2,c=5", **auto} for s in SOBOLEV_S}
    out |= {lebesgue(p): {"norm": f"lp:p={p:g}", **auto} for p in LP_P}
    return out


# ---- report ------------------------------------------------------------------------------


def report(runs: list[Run], meta: dict[str, Any]) -> str:
    """The Markdown tables of ``runs``: the final values of every metric the runs measured,
    and per metric the paired differences to WGAN-GP with Holm's correction."""
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    metrics = _stats.present(runs, data.metrics)
    seeds = len(groups[BASELINE])
    lines = [
        f"# Norm study on {data.title}",
        "",
        f"`{meta.get('command', '')}`",
        "",
        f"Machine: {meta.get('machine', '?')}. Preset `{data.preset}`, "
        f"{meta.get('steps', '?')} generator steps, {seeds} seeds, {data.metric} on "
        f"{meta.get('eval_samples', '?')} samples of the weight average at the last step.",
        "",
        "## Quality at the last step (mean ± 95 % t interval over seeds)",
        "",
        "| setting | lam | gamma | " + " | ".join(m.label for m in metrics) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(metrics),
    ]
    for name, group in groups.items():
        constants = []
        for key in ("lam", "gamma"):
            values = [r.train[-1][key] for r in group if r.train and key in r.train[-1]]
            constants.append(f"{sum(values) / len(values):.3g}" if values else "")
        quality = [_stats.cell([r.final(m.key) for r in group]) for m in metrics]
        lines.append(f"| {name} | {' | '.join(constants)} | {' | '.join(quality)} |")
    for m in metrics:
        lines += ["", *_stats.paired_table(groups, m, BASELINE)]
    return "\n".join(lines) + "\n"


SAMPLES = "norm_study_samples.png"
"""The samples figure (:mod:`_samples`): WGAN-GP, then s from low to high, then two p."""


def shown() -> list[str]:
    """The settings of :data:`SAMPLES`."""
    return [BASELINE, *(sobolev(s) for s in (-1.5, -1, 0, 1)), lebesgue(10), lebesgue(1.3)]


def plot(runs: list[Run], meta: dict[str, Any], out: Path, saved: Path | None = None) -> list[Path]:
    """The metrics against s and against p, WGAN-GP as a band: the FID-like metric, the
    classes reached and, when measured, the high-frequency excess; with the study ``saved``
    (its kept generators), the samples of :func:`shown` side by side. Returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    metrics = _stats.present(runs, [*data.metrics[:2], HF_EXCESS])
    files = []
    sweeps = (
        ("norm_study_sobolev.png", "s in $W^{s,2}$", SOBOLEV_S, sobolev, False),
        ("norm_study_lp.png", "p in $L^p$", LP_P, lebesgue, True),
    )
    for filename, xlabel, xs, name_of, log in sweeps:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            base = _stats.finite([r.final(metric.key) for r in groups[BASELINE]])
            if base:
                mean, half = _stats.mean_ci(base)
                half = 0.0 if math.isnan(half) else half
                ax.axhspan(mean - half, mean + half, color="0.85")
                ax.axhline(mean, color="0.4", lw=1, label=f"{BASELINE} ($L^2$, lam 10, gamma 1)")
            values = [
                _stats.finite([r.final(metric.key) for r in groups.get(name_of(x), [])]) for x in xs
            ]
            points = [(x, _stats.mean_ci(v)) for x, v in zip(xs, values, strict=True) if v]
            if points:
                px = [x for x, _ in points]
                py = [m for _, (m, _) in points]
                err = [0.0 if math.isnan(h) else h for _, (_, h) in points]
                ax.errorbar(px, py, yerr=err, fmt="o-", capsize=3, label="lam, gamma auto")
            if metric is HF_EXCESS:
                ax.axhline(0.0, color="tab:green", lw=1, ls="--", label="real images")
            if log:
                ax.set_xscale("log")
            ax.set_xticks(list(xs), [f"{x:g}" for x in xs])
            ax.minorticks_off()
            ax.set_xlabel(xlabel)
            ax.set_ylabel("\n".join(textwrap.wrap(f"{metric.label} ({metric.how()})", 32)))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{data.heading}: the norm of the penalty, mean and 95 % interval")
        fig.tight_layout()
        path = out / filename
        fig.savefig(path, dpi=120)
        plt.close(fig)
        files.append(path)
    if saved is not None:
        drawn = _samples.draw(saved, runs, data, shown(), out / SAMPLES)
        files += [] if drawn is None else [drawn]
    return files


def main(argv: Sequence[str] | None = None) -> int:
    args = _options.parse(_options.parser(__doc__ or "", STEPS, SEEDS, JOBS, EVALS, "norm"), argv)
    saved: Path = args.out / "norm_study.json"

    def train_study() -> _study.Study | None:
        steps, seeds, jobs = _options.size(args)
        study = _options.study_overrides(steps, args.evals, args.quick)
        configs = {
            name: _options.base_config(args.data, **study, **c) for name, c in settings().items()
        }
        print(f"norm study: {len(configs)} settings x {seeds} seeds, {steps} steps, {jobs} jobs")
        print(f"machine: {machine()}")
        timing = _study.Timing(3, 1, 1) if not args.quick else _study.QUICK_TIMING
        probes = _study.probe_all(configs, jobs, timing)
        return _study.execute(
            "norm_study.py",
            argv,
            _study.work(configs, seeds),
            probes,
            jobs,
            saved,
            args.dry_run,
            data=args.data,
            steps=steps,
            seeds=seeds,
            eval_samples=configs[BASELINE].eval_samples,
            settings=settings(),
            study=study,
        )

    return _study.conclude(args, saved, train_study, report, functools.partial(plot, saved=saved))


if __name__ == "__main__":
    sys.exit(main())
