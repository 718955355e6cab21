"""Time one critic step of every lipreg method against a hand-written WGAN-GP, in one run.

A critic step is: forward real and fake, the method's loss (penalty, constraint or
c-transform), backward, Adam (and, for weight clipping, the clamp). The critic is the
paper's CIFAR-10 ResNet (4 residual blocks, 128 channels) on 3x32x32 inputs. The variants
are timed interleaved, in a fresh random order every round, each with its own copy of the
critic and optimiser; the ratio of a variant is the median over rounds of its time divided
by its group's reference time in the same round, so slow drifts of the machine cancel. A
second copy of the hand-written baseline ("control") shows the noise floor of the ratios;
the interquartile range of the per-round ratios is printed beside each.

Groups (the first row of each is its reference):

- main: every method at ``--batch``, against the hand-written l2 GP. The project's targets:
  Wasserstein-2 penalty <= 1.10, finite-difference penalty <= 0.75. A second table gives
  the derivative-free R1's (``ApproxR1``) extra cost over a step without penalty as a
  fraction of the exact R1's (``BanachR1``) extra cost, per round; target <= 0.45; beside
  it the same for the derivative-free R1 written by hand in a few lines (one extra forward
  of the real batch, nothing else), the floor that lipreg's overhead is measured from.
- lazy: ``Lazy(..., every=16)`` against a step with no penalty, both timed over 16
  consecutive steps per round (the amortised cost; target <= 1.15), and the eager
  hand-written GP over the same 16 steps for scale.
- per_sample: ``per_sample=True`` at ``--per-sample-batch`` against the hand-written GP at
  that batch (it performs one backward pass per sample).

    python benchmarks/critic_step.py                 # the full table (several minutes on CPU)
    python benchmarks/critic_step.py --rounds 3 --batch 16 --per-sample-batch 4   # quick look
    python benchmarks/critic_step.py --groups main --rounds 12   # the main group alone
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
from lipreg import (
    L2,
    ApproxR1,
    BanachGP,
    BanachR1,
    CTransformLoss,
    FiniteDifferenceGP,
    Lazy,
    Lp,
    Sobolev,
    WeightClip,
    spectral_normalize,
)
from lipreg.norms import Wasserstein2
from lipreg.train.models import ResNetCritic

Loss = Callable[[nn.Module, Tensor, Tensor], Tensor]


def hand_written_gp(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP as written in most codebases (lam = 10)."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out: Tensor = critic(x_hat)
    (g,) = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)
    penalty: Tensor = ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean() * 10
    return penalty


def wgan(penalty: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None) -> Loss:
    """The WGAN critic loss ``E D(fake) - E D(real)`` plus ``penalty(critic, real, fake)``."""

    def loss(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        value: Tensor = critic(fake).mean() - critic(real).mean()
        return value if penalty is None else value + penalty(critic, real, fake)

    return loss


def reusing_scores(penalty: nn.Module) -> Loss:
    """The WGAN loss with a penalty that takes the loss's scores ``d_real`` / ``d_fake``
    (the finite-difference and the derivative-free penalties), so it runs no forward pass
    at the unperturbed points."""

    def loss(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        d_real: Tensor = critic(real)
        d_fake: Tensor = critic(fake)
        value: Tensor = (
            d_fake.mean()
            - d_real.mean()
            + penalty(critic, real, fake, d_real=d_real, d_fake=d_fake)
        )
        return value

    return loss


def hand_written_approx_r1(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """The derivative-free R1 as a codebase would write it in L2 (APT's
    ``E[(D(x) - D(x + sigma eps))^2]`` with the loss's own ``D(real)``, gamma 10, sigma 0.03):
    the floor of what one extra forward and backward pass of the real batch costs."""
    d_real: Tensor = critic(real)
    h = 0.03 * torch.randn_like(real)
    estimate = (critic(real + h) - d_real).flatten().square() / 0.03**2
    value: Tensor = critic(fake).mean() - d_real.mean() + 5.0 * estimate.mean()
    return value


def c_transform_loss(loss_module: CTransformLoss) -> Loss:
    """The c-transform WGAN critic loss (it replaces the WGAN loss; no penalty)."""

    def loss(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        value: Tensor = loss_module(critic, real, fake)
        return value

    return loss


class Variant:
    """One row: a critic copy, its optimiser, and how a step is taken.

    ``transform`` changes the critic copy (e.g. spectral normalisation); ``after_step``
    builds a callable run after every optimiser step (e.g. weight clipping); a timed
    measurement runs ``steps`` consecutive critic steps and records their mean time.
    """

    def __init__(
        self,
        name: str,
        loss: Loss,
        critic: nn.Module,
        real: Tensor,
        fake: Tensor,
        *,
        transform: Callable[[nn.Module], nn.Module] | None = None,
        after_step: Callable[[nn.Module], Callable[[], None]] | None = None,
        steps: int = 1,
    ) -> None:
        self.name, self.loss, self.real, self.fake, self.steps = name, loss, real, fake, steps
        self.critic = copy.deepcopy(critic)
        if transform is not None:
            self.critic = transform(self.critic)
        self.opt = torch.optim.Adam(self.critic.parameters(), lr=2e-4, betas=(0.0, 0.9))
        self.after = after_step(self.critic) if after_step is not None else None
        self.times: list[float] = []

    def step(self) -> float:
        start = time.perf_counter()
        for _ in range(self.steps):
            d_loss = self.loss(self.critic, self.real, self.fake)
            self.opt.zero_grad(set_to_none=True)
            d_loss.backward()  # type: ignore[no-untyped-call]
            self.opt.step()
            if self.after is not None:
                self.after()
        if self.real.is_cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / self.steps


def run(groups: list[list[Variant]], rounds: int, warmup: int) -> None:
    everything = [v for group in groups for v in group]
    for _ in range(warmup):
        for v in everything:
            v.step()
    for _ in range(rounds):
        random.shuffle(everything)
        for v in everything:
            v.times.append(v.step())


def spread(ratios: list[float]) -> str:
    """The interquartile range of per-round ratios as text (``-`` for a single round)."""
    if len(ratios) < 2:
        return "-"
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{q1:.3f} - {q3:.3f}"


def report(groups: list[list[Variant]]) -> str:
    lines = [
        "| variant | batch | steps per round | median step (s) | ratio to reference "
        "| IQR of ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for reference, *others in groups:
        for v in (reference, *others):
            ratios = [t / b for t, b in zip(v.times, reference.times, strict=True)]
            lines.append(
                f"| {v.name} | {v.real.shape[0]} | {v.steps} | {statistics.median(v.times):.3f} "
                f"| {statistics.median(ratios):.3f} | {spread(ratios)} |"
            )
    return "\n".join(lines)


PLAIN = "no penalty (plain WGAN loss)"
HAND_APPROX = "hand-written approx R1 (L2, one extra forward)"
EXACT_R1 = "BanachR1(L2, gamma=10)"


def extra_costs(group: list[Variant]) -> str:
    """The derivative-free penalties' extra cost over a step without penalty, as a fraction
    of the exact R1's extra cost: per round ``(t - t_plain) / (t_R1 - t_plain)``, the median
    over rounds (target <= 0.45)."""
    by_name = {v.name: v for v in group}
    plain, exact = by_name[PLAIN], by_name[EXACT_R1]
    lines = [
        f"| variant | extra cost / {EXACT_R1}'s extra cost | IQR |",
        "| --- | ---: | ---: |",
    ]
    for v in group:
        if not (v.name.startswith("ApproxR1") or v.name == HAND_APPROX):
            continue
        ratios = [
            (t - p) / (e - p)
            for t, p, e in zip(v.times, plain.times, exact.times, strict=True)
            if e > p
        ]
        if not ratios:
            lines.append(f"| {v.name} | n/a (R1 was never slower than no penalty) | - |")
            continue
        lines.append(f"| {v.name} | {statistics.median(ratios):.3f} | {spread(ratios)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64, help="critic batch (%(default)s)")
    parser.add_argument("--per-sample-batch", type=int, default=8, help="(%(default)s)")
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds (%(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (%(default)s)")
    parser.add_argument("--lazy-every", type=int, default=16, help="(%(default)s)")
    parser.add_argument(
        "--fft",
        action="store_true",
        help="also time spectral_normalize(conv='fft') (exact FFT operator norms in every "
        "forward: far slower than the rest on CPU, about 80 GP steps in a smoke run)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--groups",
        nargs="+",
        choices=("main", "lazy", "per_sample"),
        default=["main", "lazy", "per_sample"],
        help="the groups to time (all; the lazy group's rounds are 16 steps per variant and "
        "take the longest)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    critic = ResNetCritic().to(device)
    shape = (3, 32, 32)

    def data(batch: int) -> tuple[Tensor, Tensor]:
        real = torch.rand(batch, *shape, device=device) * 2 - 1
        return real, torch.tanh(torch.randn(batch, *shape, device=device))

    real, fake = data(args.batch)

    def row(name: str, loss: Loss, **kwargs: object) -> Variant:
        return Variant(name, loss, critic, real, fake, **kwargs)  # type: ignore[arg-type]

    main_group = [
        row("hand-written WGAN-GP", wgan(hand_written_gp)),
        row("hand-written WGAN-GP (control copy)", wgan(hand_written_gp)),
        row("BanachGP(L2), lam=10, gamma=1", wgan(BanachGP(L2()))),
        row(
            "BanachGP(Sobolev(s=-1.5)), auto",
            wgan(BanachGP(Sobolev(s=-1.5), lam="auto", gamma="auto")),
        ),
        row("BanachGP(Lp(10)), auto", wgan(BanachGP(Lp(10), lam="auto", gamma="auto"))),
        row("BanachGP(L2, one_sided=True) (WGAN-LP)", wgan(BanachGP(L2(), one_sided=True))),
        row("BanachGP(L2, sampling='dragan') (DRAGAN)", wgan(BanachGP(L2(), sampling="dragan"))),
        row(EXACT_R1, wgan(BanachR1(L2(), gamma=10.0))),
        row("ApproxR1(L2, gamma=10), scores reused", reusing_scores(ApproxR1(L2(), 10.0))),
        row(HAND_APPROX, hand_written_approx_r1),
        row(
            "ApproxR1(Sobolev(s=-1.5), gamma=10), scores reused",
            reusing_scores(ApproxR1(Sobolev(s=-1.5), 10.0)),
        ),
        row(
            "ApproxR1(L2, gamma=10, antithetic=True)",
            reusing_scores(ApproxR1(L2(), 10.0, antithetic=True)),
        ),
        row("BanachGP(Wasserstein2()), lam=10, gamma=1", wgan(BanachGP(Wasserstein2()))),
        row(
            "FiniteDifferenceGP(L2), real-fake, scores reused",
            reusing_scores(FiniteDifferenceGP(L2())),
        ),
        row("CTransformLoss(L2)", c_transform_loss(CTransformLoss(L2()))),
        row(PLAIN, wgan()),
        row("WeightClip(c=0.01)", wgan(), after_step=lambda c: WeightClip(c, 0.01).clip),
        row("spectral_normalize(conv='power')", wgan(), transform=spectral_normalize),
    ]
    if args.fft:
        main_group.append(
            row(
                "spectral_normalize(conv='fft')",
                wgan(),
                transform=lambda c: spectral_normalize(c, conv="fft", input_shape=shape),
            )
        )
    k = args.lazy_every
    lazy_group = [
        row(PLAIN, wgan(), steps=k),
        row(f"Lazy(BanachGP(L2), every={k})", wgan(Lazy(BanachGP(L2()), every=k)), steps=k),
        row(f"Lazy(BanachR1(L2), every={k})", wgan(Lazy(BanachR1(L2()), every=k)), steps=k),
        row("hand-written WGAN-GP (eager)", wgan(hand_written_gp), steps=k),
    ]
    small_real, small_fake = data(args.per_sample_batch)
    per_sample_group = [
        Variant("hand-written WGAN-GP", wgan(hand_written_gp), critic, small_real, small_fake),
        Variant(
            "BanachGP(L2, per_sample=True)",
            wgan(BanachGP(per_sample=True)),
            critic,
            small_real,
            small_fake,
        ),
    ]
    named = {"main": main_group, "lazy": lazy_group, "per_sample": per_sample_group}
    groups = [named[g] for g in named if g in args.groups]
    run(groups, args.rounds, args.warmup)
    cpu = platform.processor() or platform.machine()
    print(
        f"lipreg {lipreg.__version__}, torch {torch.__version__}, {device}"
        f" ({cpu}, {torch.get_num_threads()} threads), {args.rounds} rounds\n"
    )
    print(report(groups))
    if "main" in args.groups:
        print()
        print(extra_costs(main_group))


if __name__ == "__main__":
    main()
