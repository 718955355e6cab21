"""Why gamma = E||X||_B* trains slowly, measured: gamma = 1, gamma = auto with the network as
the critic (D = f, the reference code's parametrisation), and gamma = auto with D = gamma f
(``--critic-scale gamma``), on the same seeds, steps and models (the ``bwgan-digits`` preset).

For each setting and seed it records the digits FID and classes reached at every evaluation,
and the critic's slope relative to its target, ``E||dD(x_hat)||_B* / gamma`` (1 when the
penalty is satisfied), at every logged step. Prints a Markdown table (final FID and classes,
mean and 95 % interval over seeds; paired differences to gamma = 1) and draws both curves.

    python benchmarks/gamma_parametrisation.py                 # the full study (3 seeds)
    python benchmarks/gamma_parametrisation.py --quick         # seconds: a smoke test
    python benchmarks/gamma_parametrisation.py --redraw OUT    # tables and plots from OUT/runs.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import torch
from _study import Job, Run, machine, mean_ci, paired, save_runs, train_all

from lipreg.train.config import PRESETS, TrainConfig
from lipreg.train.loop import Trainer

SETTINGS = {
    "gamma = 1": {"gamma": 1.0},
    "gamma = auto, D = f": {"gamma": "auto", "critic_scale": "none"},
    "gamma = auto, D = gamma f": {"gamma": "auto", "critic_scale": "gamma"},
}
"""The three runs compared, as overrides of the bwgan-digits preset."""

FIGURE = "gamma_parametrisation.png"


def base(steps: int | None, quick: bool) -> TrainConfig:
    values = dict(PRESETS["bwgan-digits"], tensorboard=False)
    if quick:
        values |= {
            "steps": 4,
            "eval_every": 2,
            "eval_samples": 64,
            "batch_size": 16,
            "gen_batch_size": 16,
            "log_every": 1,
            "data_size": 128,
        }
    if steps is not None:
        values["steps"] = steps
    return TrainConfig.from_dict(values)


def probe_weights(trainer: Trainer) -> None:
    """Log the critic's weight norm ``||theta||`` and its relative change since the last log,
    ``||theta_t - theta_{t-k}|| / ||theta_t||`` (how far Adam moves it relative to its size)."""
    scalars = trainer.scalars
    last: list[torch.Tensor] = [torch.cat([p.detach().flatten() for p in trainer.d.parameters()])]

    def with_weights() -> dict[str, float]:
        theta = torch.cat([p.detach().flatten() for p in trainer.d.parameters()])
        moved = float((theta - last[0]).norm() / theta.norm())
        last[0] = theta.clone()
        return {**scalars(), "critic_weight_norm": float(theta.norm()), "critic_moved": moved}

    trainer.scalars = with_weights  # type: ignore[method-assign]


def jobs(config: TrainConfig, seeds: list[int]) -> list[Job]:
    return [
        (name, seed, dataclasses.replace(config, **overrides).checked(), probe_weights)
        for name, overrides in SETTINGS.items()
        for seed in seeds
    ]


def report(runs: list[Run], out: Path) -> None:
    by = {name: [r for r in runs if r.name == name] for name in SETTINGS}
    reference = by["gamma = 1"]
    print(
        "\n| setting | digits FID | classes reached | FID - (gamma = 1), paired | "
        "critic ||theta|| | relative change per 10 steps |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, group in by.items():
        fid, fid_ci = mean_ci([r.final("metric/digits_fid") for r in group])
        cls, cls_ci = mean_ci([r.final("metric/digits_classes") for r in group])
        if group is reference:
            diff = "-"
        else:
            d, half, p = paired(
                [r.final("metric/digits_fid") for r in group],
                [r.final("metric/digits_fid") for r in reference],
            )
            diff = f"{d:+.1f} ± {half:.1f} (p = {p:.2g})"
        norm, norm_ci = mean_ci([r.train[-1]["critic_weight_norm"] for r in group])
        # the second half of the run, when the slope has settled
        moved, moved_ci = mean_ci(
            [
                statistics.fmean(row["critic_moved"] for row in r.train[len(r.train) // 2 :])
                for r in group
            ]
        )
        print(
            f"| {name} | {fid:.1f} ± {fid_ci:.1f} | {cls:.1f} ± {cls_ci:.1f} | {diff} | "
            f"{norm:.1f} ± {norm_ci:.1f} | {moved:.2e} ± {moved_ci:.1e} |"
        )
    print(f"\n{len(reference)} seeds; ± is the half-width of the 95 % t interval; {machine()}")
    plot(by, out / FIGURE)
    print(f"wrote {out / FIGURE}")


def plot(by: dict[str, list[Run]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for name, group in by.items():
        steps = [e["step"] for e in group[0].evals]
        fids = np.array([[e["metric/digits_fid"] for e in r.evals] for r in group])
        line = ax1.plot(steps, fids.mean(0), marker=".", label=name)[0]
        ax1.fill_between(steps, fids.min(0), fids.max(0), color=line.get_color(), alpha=0.2)
        tsteps = [row["step"] for row in group[0].train]
        slope = np.array([[row["dual_norm_mean"] / row["gamma"] for row in r.train] for r in group])
        ax2.plot(tsteps, slope.mean(0), color=line.get_color(), label=name)
        ax2.fill_between(tsteps, slope.min(0), slope.max(0), color=line.get_color(), alpha=0.2)
        moved = np.array([[row["critic_moved"] for row in r.train] for r in group])
        ax3.plot(tsteps, moved.mean(0), color=line.get_color(), label=name)
    ax1.set(
        xlabel="generator step",
        ylabel="digits FID (lower is better)",
        yscale="log",
        title="sample quality (mean; band: min-max over seeds)",
    )
    ax2.set(
        xlabel="generator step",
        ylabel="E ||dD(x_hat)||_B* / gamma",
        title="the critic's slope relative to its target 1",
    )
    ax2.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax3.set(
        xlabel="generator step",
        ylabel="||theta_t - theta_(t-10)|| / ||theta_t||",
        yscale="log",
        title="relative change of the critic's weights per 10 steps",
    )
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    parser.add_argument("--steps", type=int, help="generator steps (default: the preset's)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gamma"))
    parser.add_argument("--quick", action="store_true", help="a tiny version, for smoke tests")
    parser.add_argument("--redraw", action="store_true", help="tables and plots from OUT/runs.json")
    args = parser.parse_args()
    if args.redraw:
        runs = [Run(**r) for r in json.loads((args.out / "runs.json").read_text())]
    else:
        config = base(args.steps, args.quick)
        seeds = list(range(1 if args.quick else args.seeds))
        print(f"{len(SETTINGS)} settings x {len(seeds)} seeds x {config.steps} steps; {machine()}")
        runs = train_all(jobs(config, seeds), args.jobs)
        save_runs(runs, args.out / "runs.json")
    report(runs, args.out)


if __name__ == "__main__":
    main()
