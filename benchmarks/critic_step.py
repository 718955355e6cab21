"""Time one critic step with lipreg's BanachGP against a hand-written WGAN-GP, in one run.

A critic step is: forward real and fake, the gradient penalty, backward, Adam. The critic
is the paper's CIFAR-10 ResNet (4 residual blocks, 128 channels) on 3x32x32 inputs. The
variants are timed interleaved, in a fresh random order every round, each with its own copy
of the critic and optimiser; the ratio of a variant is the median over rounds of its time
divided by the baseline's time in the same round, so slow drifts of the machine cancel. A
second copy of the hand-written baseline ("control") shows the noise floor of the ratios;
the interquartile range of the per-round ratios is printed beside each.

    python benchmarks/critic_step.py                 # the full table (a few minutes on CPU)
    python benchmarks/critic_step.py --rounds 3 --batch 16 --per-sample-batch 4   # quick look

per_sample is timed at a smaller batch (``--per-sample-batch``) against the hand-written
penalty at that same batch: it performs one backward pass per sample.
"""

from __future__ import annotations

import argparse
import copy
import platform
import random
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

import lipreg
from lipreg import L2, BanachGP, Lp, Sobolev
from lipreg.train.models import ResNetCritic

Penalty = Callable[[nn.Module, Tensor, Tensor], Tensor]


def hand_written_gp(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP as written in most codebases (lam = 10)."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(x_hat)
    (g,) = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)
    return ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean() * 10


class Variant:
    def __init__(self, name: str, penalty: Penalty, critic: nn.Module, real: Tensor, fake: Tensor):
        self.name, self.penalty, self.real, self.fake = name, penalty, real, fake
        self.critic = copy.deepcopy(critic)
        self.opt = torch.optim.Adam(self.critic.parameters(), lr=2e-4, betas=(0.0, 0.9))
        self.times: list[float] = []

    def step(self) -> float:
        start = time.perf_counter()
        d_loss = (
            self.critic(self.fake).mean()
            - self.critic(self.real).mean()
            + self.penalty(self.critic, self.real, self.fake)
        )
        self.opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt.step()
        if self.real.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start


def run(groups: list[list[Variant]], rounds: int, warmup: int) -> None:
    everything = [v for group in groups for v in group]
    for _ in range(warmup):
        for v in everything:
            v.step()
    for _ in range(rounds):
        random.shuffle(everything)
        for v in everything:
            v.times.append(v.step())


def report(groups: list[list[Variant]]) -> str:
    lines = [
        "| variant | batch | median step (s) | ratio to hand-written | IQR of ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for baseline, *others in groups:
        for v in (baseline, *others):
            ratios = [t / b for t, b in zip(v.times, baseline.times, strict=True)]
            q1, median, q3 = statistics.quantiles(ratios, n=4)
            lines.append(
                f"| {v.name} | {v.real.shape[0]} | {statistics.median(v.times):.3f} "
                f"| {median:.3f} | {q1:.3f} - {q3:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64, help="critic batch (%(default)s)")
    parser.add_argument("--per-sample-batch", type=int, default=8, help="(%(default)s)")
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds (%(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (%(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    critic = ResNetCritic().to(device)

    def data(batch: int) -> tuple[Tensor, Tensor]:
        real = torch.rand(batch, 3, 32, 32, device=device) * 2 - 1
        return real, torch.tanh(torch.randn(batch, 3, 32, 32, device=device))

    real, fake = data(args.batch)
    main_group = [
        Variant("hand-written WGAN-GP", hand_written_gp, critic, real, fake),
        Variant("hand-written WGAN-GP (control copy)", hand_written_gp, critic, real, fake),
        Variant("BanachGP(L2), lam=10, gamma=1", BanachGP(L2()), critic, real, fake),
        Variant(
            "BanachGP(Sobolev(s=-1.5)), auto",
            BanachGP(Sobolev(s=-1.5), lam="auto", gamma="auto"),
            critic,
            real,
            fake,
        ),
        Variant(
            "BanachGP(Lp(10)), auto", BanachGP(Lp(10), lam="auto", gamma="auto"), critic, real, fake
        ),
    ]
    small_real, small_fake = data(args.per_sample_batch)
    per_sample_group = [
        Variant("hand-written WGAN-GP", hand_written_gp, critic, small_real, small_fake),
        Variant(
            "BanachGP(L2, per_sample=True)",
            BanachGP(per_sample=True),
            critic,
            small_real,
            small_fake,
        ),
    ]
    groups = [main_group, per_sample_group]
    run(groups, args.rounds, args.warmup)
    cpu = platform.processor() or platform.machine()
    print(
        f"lipreg {lipreg.__version__}, torch {torch.__version__}, {device}"
        f" ({cpu}, {torch.get_num_threads()} threads), {args.rounds} rounds\n"
    )
    print(report(groups))


if __name__ == "__main__":
    main()
