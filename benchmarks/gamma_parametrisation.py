"""Why gamma = E||X||_B* trains slowly, measured: gamma = 1; gamma = auto with the network as
the critic (D = f, the reference code's parametrisation); gamma = auto with D = gamma f
(``--critic-scale gamma``); the same seeds, steps and models (the main job on the papers'
schedule, the preset bwgan-digits-paper).

For each setting and seed it records the digits FID and classes reached at every evaluation,
and at every logged step the critic's slope relative to its target,
``E||dD(x_hat)||_B* / gamma`` (1 when the penalty is met), its weight norm ``||theta||`` and
how far Adam moved its weights since the last log, ``||theta_t - theta_{t-k}|| /
||theta_t||``. Writes gamma_parametrisation.md (the table: final quality, mean and 95 % t
interval over seeds, paired differences to gamma = 1) and gamma_parametrisation.png (the
curves over the run).

    python benchmarks/gamma_parametrisation.py --out runs/digits/gamma --figures docs/img
    python benchmarks/gamma_parametrisation.py --quick --out /tmp/gamma-quick  # seconds
    python benchmarks/gamma_parametrisation.py --redraw --out runs/digits/gamma  # again

(the first about 30 minutes on 2 quiet cores).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _options
import _stats
import _study
import torch
from _records import Run, machine

SETTINGS: dict[str, dict[str, Any]] = {
    "gamma = 1": {"gamma": 1.0},
    "gamma = auto, D = f": {"gamma": "auto", "critic_scale": "none"},
    "gamma = auto, D = gamma f": {"gamma": "auto", "critic_scale": "gamma"},
}
"""The three settings, as changes to the preset."""

REFERENCE = "gamma = 1"
FIGURE = "gamma_parametrisation.png"
STEPS, SEEDS, JOBS, EVALS = 600, 3, 2, 6


def probe_weights(trainer: Any) -> None:
    """Log the critic's weight norm and its relative change since the previous log."""
    scalars = trainer.scalars
    last = [torch.cat([p.detach().flatten() for p in trainer.d.parameters()])]

    def with_weights() -> dict[str, float]:
        theta = torch.cat([p.detach().flatten() for p in trainer.d.parameters()])
        moved = float((theta - last[0]).norm() / theta.norm())
        last[0] = theta.clone()
        return {**scalars(), "critic_weight_norm": float(theta.norm()), "critic_moved": moved}

    trainer.scalars = with_weights


def report(runs: list[Run], meta: dict[str, Any]) -> str:
    groups = _stats.by_name(runs)
    data = _options.dataset_of(meta)
    fid, classes = data.fid, data.classes
    reference = groups[REFERENCE]
    lines = [
        f"Machine: {meta.get('machine', '?')}. Preset `{data.preset}`, "
        f"{meta.get('steps', '?')} generator steps, {len(reference)} seeds; ± is the half-width "
        "of the 95 % t interval over seeds; the weight statistics are means over the second "
        "half of the run.",
        "",
        f"| setting | gamma | {data.label} | classes reached | FID - FID(gamma = 1), paired "
        "| critic weight norm | relative change per log interval |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, group in groups.items():
        gamma = statistics.fmean(r.train[-1]["gamma"] for r in group)
        final = _stats.fmt(*_stats.mean_ci([r.final(fid) for r in group]))
        reached = _stats.fmt(*_stats.mean_ci([r.final(classes) for r in group]))
        if group is reference:
            diff = "-"
        else:
            d, half, p = _stats.paired(
                [r.final(fid) for r in group], [r.final(fid) for r in reference]
            )
            diff = f"{_stats.fmt(d, half)} (p = {p:.2g})"
        second_half = [r.train[len(r.train) // 2 :] for r in group]
        norm = _stats.fmt(
            *_stats.mean_ci(
                [statistics.fmean(x["critic_weight_norm"] for x in h) for h in second_half]
            )
        )
        moved = _stats.mean_ci(
            [statistics.fmean(x["critic_moved"] for x in h) for h in second_half]
        )
        lines.append(
            f"| {name} | {gamma:.3g} | {final} | {reached} | {diff} | {norm} | {moved[0]:.2e} |"
        )
    return "\n".join(lines) + "\n"


def plot(runs: list[Run], meta: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    data = _options.dataset_of(meta)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for name, group in _stats.by_name(runs).items():
        steps = [e["step"] for e in group[0].evals]
        fids = np.array([[e[data.fid] for e in r.evals] for r in group])
        line = axes[0].plot(steps, fids.mean(0), marker=".", label=name)[0]
        axes[0].fill_between(steps, fids.min(0), fids.max(0), color=line.get_color(), alpha=0.2)
        logged = [row["step"] for row in group[0].train]
        for ax, values in (
            (axes[1], [[x["dual_norm_mean"] / x["gamma"] for x in r.train] for r in group]),
            (axes[2], [[x["critic_moved"] for x in r.train] for r in group]),
        ):
            v = np.array(values)
            ax.plot(logged, v.mean(0), color=line.get_color(), label=name)
            ax.fill_between(logged, v.min(0), v.max(0), color=line.get_color(), alpha=0.2)
    axes[0].set(ylabel=f"{data.label} (lower is better)", yscale="log",
                title="sample quality (mean; band: min to max over seeds)")  # fmt: skip
    axes[1].set(ylabel="E ||dD(x_hat)||_B* / gamma", title="the critic's slope, target 1")
    axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[2].set(ylabel="||theta_t - theta_(t-k)|| / ||theta_t||", yscale="log",
                title="relative change of the critic's weights per log interval")  # fmt: skip
    for ax in axes:
        ax.set_xlabel("generator step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / FIGURE, dpi=110)
    plt.close(fig)
    return [out / FIGURE]


def main(argv: Sequence[str] | None = None) -> int:
    args = _options.parse(_options.parser(__doc__ or "", STEPS, SEEDS, JOBS, EVALS, "gamma"), argv)
    saved: Path = args.out / "gamma_parametrisation.json"

    def train_study() -> _study.Study | None:
        steps, seeds, jobs = _options.size(args)
        study = _options.study_overrides(
            steps, args.evals, args.quick, log_every=max(1, steps // 60)
        )
        configs = {
            name: _options.base_config(args.data, **study, **c) for name, c in SETTINGS.items()
        }
        work = [
            _study.Job(name, seed, config, probe_weights)
            for seed in range(seeds)
            for name, config in configs.items()
        ]
        print(f"gamma study: {len(configs)} settings x {seeds} seeds, {steps} steps, {jobs} jobs")
        print(f"machine: {machine()}")
        timing = _study.QUICK_TIMING if args.quick else _study.Timing(3, 1, 1)
        probes = _study.probe_all(configs, jobs, timing)
        return _study.execute(
            "gamma_parametrisation.py",
            argv,
            work,
            probes,
            jobs,
            saved,
            args.dry_run,
            data=args.data,
            steps=steps,
            seeds=seeds,
            settings=SETTINGS,
            study=study,
        )

    return _study.conclude(args, saved, train_study, report, plot)


if __name__ == "__main__":
    sys.exit(main())
