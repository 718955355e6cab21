"""Images per second of one training iteration of ``lipreg train`` against a bare, hand-written
loop with the same models and penalty, in one run.

An iteration is ``n_critic`` critic steps (fresh real batch, fresh fakes, the critic loss with
the penalty and the drift term, backward, Adam) and one generator step (backward, Adam, weight
average, learning-rate decay). The trainer's side is :meth:`Trainer.iteration` plus its
logging read-out every ``log_every`` iterations (evaluations and checkpoints are periodic and
left out). The bare loop is what one writes by hand: real batches indexed from a tensor, the
one line, ``torch._foreach_lerp_`` for the average, the learning rate set by hand.

Both sides start from the same weights; they are timed interleaved, ``--iterations`` at a time,
in a fresh random order every round, and the overhead is the median over rounds of the
trainer's time divided by the bare loop's in the same round (so slow drifts of a shared
machine cancel). A second copy of the bare loop (the control) shows the noise floor.

    python benchmarks/train_step.py                       # paper's ResNet pair, a few minutes
    python benchmarks/train_step.py --model dcgan --width 16 --rounds 3 --iterations 1   # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

import lipreg
from lipreg.train.config import TrainConfig
from lipreg.train.loop import Trainer
from lipreg.train.penalties import build_penalty


class BareLoop:
    """A hand-written WGAN loop with the trainer's models, penalty and hyper-parameters."""

    def __init__(self, trainer: Trainer) -> None:
        c = trainer.config
        self.c, self.z_dim, self.device = c, trainer.z_dim, trainer.device
        self.g, self.d = copy.deepcopy(trainer.g), copy.deepcopy(trainer.d)
        self.penalty = build_penalty(c, trainer.plan.norm, None, "func").to(self.device)
        self.data = torch.stack([trainer.data[i] for i in range(len(trainer.data))])
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=c.lr, betas=c.betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=c.lr, betas=c.betas)
        self.ema = [p.detach().clone() for p in self.g.parameters()]
        self.step = 0

    def iteration(self) -> None:
        c = self.c
        for _ in range(c.n_critic):
            real = self.data[torch.randint(len(self.data), (c.batch_size,))].to(self.device)
            with torch.no_grad():
                fake = self.g(torch.randn(c.batch_size, self.z_dim, device=self.device))
            d_real, d_fake = self.d(real), self.d(fake)
            d_loss = d_fake.mean() - d_real.mean() + self.penalty(self.d, real, fake)
            d_loss = d_loss + c.drift * d_real.square().mean()
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        for p in self.d.parameters():
            p.requires_grad_(False)
        g_loss = -self.d(self.g(torch.randn(c.gen_batch_size, self.z_dim, device=self.device)))
        g_loss = g_loss.mean()
        for p in self.d.parameters():
            p.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        torch._foreach_lerp_(self.ema, [p.detach() for p in self.g.parameters()], 1 - c.ema)
        self.step += 1
        for opt in (self.opt_g, self.opt_d):
            opt.param_groups[0]["lr"] = c.lr * max(0.0, 1 - self.step / c.steps)
        if self.step % c.log_every == 0:
            float(d_loss), float(g_loss)  # what a hand-written loop prints


def trainer_iteration(trainer: Trainer) -> Callable[[], None]:
    def step() -> None:
        trainer.iteration()
        if trainer.step % trainer.config.log_every == 0:
            trainer.scalars()

    return step


def timed(step: Callable[[], None], iterations: int, device: torch.device) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet", choices=("resnet", "dcgan"))
    parser.add_argument("--width", type=int, default=128, help="(%(default)s)")
    parser.add_argument("--norm", default="sobolev:s=-1.5", help="(%(default)s)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (%(default)s)")
    parser.add_argument("--iterations", type=int, default=2, help="per round (%(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (%(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        config = TrainConfig(
            model=args.model,
            width=args.width,
            norm=args.norm,
            lam="auto",
            gamma="auto",
            drift=1e-5,
            data_size=2048,
            steps=100_000,
            device=args.device,
            eval_every=0,
            checkpoint_every=0,
            tensorboard=False,
            progress=False,
            out=out,
        ).checked()
        trainer = Trainer(config)
    device = trainer.device
    variants: dict[str, Callable[[], None]] = {
        "bare": BareLoop(trainer).iteration,
        "bare (control copy)": BareLoop(trainer).iteration,
        "lipreg train": trainer_iteration(trainer),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for round_ in range(args.warmup + args.rounds):
        random.shuffle(order)
        for name in order:
            t = timed(variants[name], args.iterations, device)
            if round_ >= args.warmup:
                times[name].append(t)
    images = args.iterations * config.n_critic * config.batch_size
    cpu = platform.processor() or platform.machine()
    print(
        f"lipreg {lipreg.__version__}, torch {torch.__version__}, {device} ({cpu}, "
        f"{torch.get_num_threads()} threads); {args.model} width {args.width}, {args.norm}, "
        f"batch {config.batch_size} x {config.n_critic} critic steps; {args.rounds} rounds of "
        f"{args.iterations} iterations\n"
    )
    print("| loop | images/s (median) | time ratio to bare | IQR of ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times["bare"], strict=True)]
        q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        rate = images / statistics.median(ts)
        print(f"| {name} | {rate:.1f} | {median:.3f} | {q1:.3f} - {q3:.3f} |")


if __name__ == "__main__":
    main()
