"""What works with a ``torch.compile``-d critic (the default backend, inductor): the exact
gradient penalties and the derivative-free ones, on this torch.

For every penalty, a copy of a small DCGAN critic takes ``--steps`` critic steps (WGAN loss
plus the penalty, backward) next to an eager copy on the same batches, compiled in two ways:
``critic`` compiles the critic module (``torch.compile(critic)``), ``step`` the whole loss
computation, penalty included (``torch.compile(loss_fn)``). The script reports whether the
step ran (or the error it raised, and where: at the call or at ``backward()``), the largest
relative difference of the parameter gradients to the eager copy's, and torch._dynamo's
counters (graphs compiled, graph breaks and their reasons). Both copies draw the same
perturbations (the global generator is reseeded before each step).

    python benchmarks/compiled_critic.py            # a few minutes (inductor compiles on CPU)
    python benchmarks/compiled_critic.py --steps 1 --only ApproxR1  # one row
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import time
from collections.abc import Callable
from typing import cast

import torch
import torch._dynamo
import torch._inductor.config
from torch import Tensor, nn

import lipreg
from lipreg import ApproxR1, ApproxR1R2, BanachGP, BanachR1, BanachR1R2, Sobolev
from lipreg.train.models import DCGANCritic

PENALTIES: dict[str, Callable[[], nn.Module]] = {
    "BanachR1 (engine='func')": lambda: BanachR1(gamma=1.0),
    "BanachR1 (engine='autograd')": lambda: BanachR1(gamma=1.0, engine="autograd"),
    "BanachGP (engine='func')": lambda: BanachGP(),
    "BanachR1R2 (engine='autograd')": lambda: BanachR1R2(gamma=1.0, engine="autograd"),
    "ApproxR1": lambda: ApproxR1(gamma=1.0),
    "ApproxR1 (check_finite=False)": lambda: ApproxR1(gamma=1.0, check_finite=False),
    "ApproxR1 (W^{-3/2,2}, antithetic)": lambda: ApproxR1(
        Sobolev(s=-1.5), gamma=1.0, antithetic=True
    ),
    "ApproxR1R2 (W^{-3/2,2})": lambda: ApproxR1R2(Sobolev(s=-1.5), gamma=1.0),
}


def loss(critic: nn.Module, penalty: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """The WGAN critic loss plus the penalty (reusing the loss's scores on real where the
    penalty takes them)."""
    d_real, d_fake = critic(real), critic(fake)
    reuse = {"d_real": d_real} if "Approx" in type(penalty).__name__ else {}
    value: Tensor = d_fake.mean() - d_real.mean() + penalty(critic, real, fake, **reuse)
    return value


def brief(error: Exception) -> str:
    """The error's type and the start of its first line, fit for a table cell."""
    text = str(error).splitlines()[0].replace("|", "/")
    return f"{type(error).__name__}: {text[:110]}{'...' if len(text) > 110 else ''}"


def step(compute: Callable[[Tensor, Tensor], Tensor], real: Tensor, fake: Tensor, seed: int) -> str:
    """One critic loss and backward; ``""`` or where it failed and why."""
    torch.manual_seed(seed)
    try:
        value = compute(real, fake)
    except Exception as e:  # the point is to report every failure
        return f"at the call: {brief(e)}"
    try:
        value.backward()  # type: ignore[no-untyped-call]
    except Exception as e:
        return f"at backward(): {brief(e)}"
    return ""


def largest_difference(a: nn.Module, b: nn.Module) -> float:
    """The largest difference of ``a``'s parameter gradients to ``b``'s, relative to the
    largest entry of ``b``'s, over the parameters (inf if one has a gradient the other lacks)."""
    worst = 0.0
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        if p.grad is None or q.grad is None:
            worst = worst if p.grad is None and q.grad is None else math.inf
            continue
        scale = float(q.grad.abs().max()) or 1.0
        worst = max(worst, float((p.grad - q.grad).abs().max()) / scale)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2, help="critic steps (%(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="(%(default)s)")
    parser.add_argument("--only", help="run the rows whose name contains this text")
    parser.add_argument(
        "--modes", nargs="+", default=["critic", "step"], choices=["critic", "step"]
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    base = DCGANCritic(in_channels=3, channels=16, image_size=16)
    batches = [
        (torch.rand(args.batch, 3, 16, 16) * 2 - 1, torch.randn(args.batch, 3, 16, 16))
        for _ in range(args.steps)
    ]
    print(
        f"lipreg {lipreg.__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, torch.compile(critic) with the default "
        f"backend; DCGAN critic 3x16x16, batch {args.batch}, {args.steps} steps\n"
    )
    print(
        "| penalty | compiled | outcome | max rel. grad difference to eager | graphs | "
        "graph breaks | their reasons | seconds |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | --- | ---: |")
    # Compiled code then draws the same random numbers as eager code (interpolation weights,
    # perturbations), so that gradients can be compared.
    torch._inductor.config.fallback_random = True
    for mode in args.modes:
        for name, make in PENALTIES.items():
            if args.only and args.only not in name:
                continue
            print(row(mode, name, make, base, batches), flush=True)


def row(
    mode: str,
    name: str,
    make: Callable[[], nn.Module],
    base: nn.Module,
    batches: list[tuple[Tensor, Tensor]],
) -> str:
    """Compile the critic (``mode="critic"``) or the whole loss computation (``"step"``),
    take the steps beside an eager copy, and describe the outcome as a table row."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager, copied = copy.deepcopy(base), copy.deepcopy(base)
    penalty, twin = make(), make()
    critic = cast(nn.Module, torch.compile(copied)) if mode == "critic" else copied

    def compute(r: Tensor, f: Tensor) -> Tensor:
        return loss(critic, penalty, r, f)

    if mode == "step":
        compute = torch.compile(compute)
    outcome, difference = "", 0.0
    started = time.perf_counter()
    for i, (real, fake) in enumerate(batches):
        for c in (eager, copied):
            c.zero_grad(set_to_none=True)
        expected = step(lambda r, f: loss(eager, twin, r, f), real, fake, seed=i)
        outcome = step(compute, real, fake, seed=i)
        if outcome:
            if expected:
                outcome += f" (eager too: {expected})"
            break
        difference = max(difference, largest_difference(copied, eager))
    seconds = time.perf_counter() - started
    counters = torch._dynamo.utils.counters
    graphs = counters["stats"]["unique_graphs"]
    breaks = sum(counters["graph_break"].values())
    firsts = {reason.splitlines()[0].replace("|", "/") for reason in counters["graph_break"]}
    reasons = "; ".join(sorted(firsts))
    result = f"fails {outcome}" if outcome else "works"
    shown = "" if outcome else f"{difference:.1e}"
    return (
        f"| {name} | {mode} | {result} | {shown} | {graphs} | {breaks} "
        f"| {reasons} | {seconds:.0f} |"
    )


if __name__ == "__main__":
    main()
