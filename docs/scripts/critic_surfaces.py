"""docs/img/critic_surfaces.png: critics trained with BanachGP under L^1, L^2 and L^inf.

Real data: WGAN-GP's 8 Gaussians on a circle; fake data: a fixed Gaussian blob (no
generator). For each norm a small MLP critic is trained with

    d_loss = D(fake).mean() - D(real).mean() + penalty(D, real, fake)

and ``BanachGP(norm, lam="auto", gamma="auto")``. The panels show its value surface
``D(x) / gamma`` with the data. The critic learns roughly the distance in ``B`` to the fake
mass, so its level sets take the shape of the unit ball of ``B``: diamonds under ``L^1``,
circles under ``L^2``, squares under ``L^inf`` (its gradient has dual norm about gamma,
measured in ``L^inf``, ``L^2`` and ``L^1`` respectively). About 15 s on two idle CPU cores.

    python docs/scripts/critic_surfaces.py [--out docs/img] [--steps 1500]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from _common import IMG  # first: selects matplotlib's Agg backend
from matplotlib import pyplot as plt
from torch import Tensor, nn

from lipreg import BanachGP, Lp

P_VALUES = (1.0, 2.0, math.inf)


def eight_gaussians(n: int, gen: torch.Generator) -> Tensor:
    """``[n, 2]``: 8 Gaussians (std 0.02) on a circle of radius 2, divided by 1.414."""
    angles = torch.randint(0, 8, (n,), generator=gen) * (2 * math.pi / 8)
    centres = 2 * torch.stack([angles.cos(), angles.sin()], dim=1)
    return (centres + 0.02 * torch.randn(n, 2, generator=gen)) / 1.414


def blob(n: int, gen: torch.Generator) -> Tensor:
    """``[n, 2]``: the untrained generator's stand-in, a Gaussian of std 0.3 off centre."""
    return 0.3 * torch.randn(n, 2, generator=gen) + torch.tensor([0.3, 0.2])


def train(p: float, steps: int, gen: torch.Generator) -> tuple[nn.Module, BanachGP]:
    torch.manual_seed(0)
    critic = nn.Sequential(
        nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1)
    )
    penalty = BanachGP(norm=Lp(p), lam="auto", gamma="auto")
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(steps):
        real, fake = eight_gaussians(256, gen), blob(256, gen)
        d_loss = critic(fake).mean() - critic(real).mean() + penalty(critic, real, fake)
        opt.zero_grad(set_to_none=True)
        d_loss.backward()
        opt.step()
    return critic, penalty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=IMG, help="folder for the PNG (docs/img)")
    parser.add_argument("--steps", type=int, default=1500, help="critic steps per norm")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    axis = torch.linspace(-2, 2, 161)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    real, fake = eight_gaussians(512, gen), blob(512, gen)
    fig, axes = plt.subplots(1, len(P_VALUES), figsize=(12, 4.1), constrained_layout=True)
    for ax, p in zip(axes, P_VALUES, strict=True):
        critic, penalty = train(p, args.steps, gen)
        with torch.no_grad():
            values = (critic(grid) / penalty.gamma).reshape(len(axis), len(axis))
            values -= values.mean()
        ax.contourf(axis, axis, values, levels=30, cmap="viridis")
        ax.contour(axis, axis, values, levels=15, colors="white", linewidths=0.4)
        ax.scatter(*real.T, s=2, c="orange", label="real")
        ax.scatter(*fake.T, s=2, c="red", alpha=0.4, label="fake")
        name = "\\infty" if math.isinf(p) else f"{p:g}"
        ax.set_title(f"$D / \\gamma$ under $L^{{{name}}}$ ($\\gamma$ = {penalty.gamma:.2f})")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="lower left", markerscale=4, fontsize=8)
    fig.savefig(args.out / "critic_surfaces.png", dpi=110)


if __name__ == "__main__":
    main()
