"""What the exact and the derivative-free penalties do with a distributed critic: DDP and
FSDP2's ``fully_shard``, on CPU processes (gloo).

Run with two processes:

    torchrun --nproc_per_node 2 benchmarks/distributed_penalties.py     # about a minute

Every rank builds the same small DCGAN critic, wraps it (``DistributedDataParallel``, or
``fully_shard`` on a one-dimensional device mesh), and takes one critic step (WGAN loss plus
the penalty, backward) on its half of a global batch of 8. The gradients, averaged across
ranks by the wrapper (gathered from the shards under FSDP2), are compared with a reference
computed in the same process without any wrapper: the mean over ranks of the gradient on
each rank's half, with each rank's perturbations (the derivative-free penalties reseed the
generator with the rank before the call, and the reference does the same per half). Rank 0
prints one row per wrapper and penalty: whether the step ran (or the error, and where it was
raised), and the largest relative difference to the reference.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from compiled_critic import PENALTIES  # the same rows as the compile probe
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from lipreg.train.models import DCGANCritic

GLOBAL_BATCH = 8


def loss(critic: nn.Module, penalty: nn.Module, real: Tensor, fake: Tensor, seed: int) -> Tensor:
    """The WGAN critic loss plus the penalty; the perturbations drawn after seeding ``seed``."""
    d_real, d_fake = critic(real), critic(fake)
    torch.manual_seed(seed)
    value: Tensor = d_fake.mean() - d_real.mean() + penalty(critic, real, fake)
    return value


def full_gradients(critic: nn.Module) -> list[Tensor]:
    """The parameters' gradients as plain tensors (DTensor shards gathered)."""
    grads = []
    for p in critic.parameters():
        g = p.grad
        assert g is not None
        grads.append(g.full_tensor() if hasattr(g, "full_tensor") else g)
    return grads


def wrap(kind: str, critic: nn.Module) -> nn.Module:
    if kind == "DDP":
        return DistributedDataParallel(critic)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    fully_shard(critic, mesh=init_device_mesh("cpu", (dist.get_world_size(),)))
    return critic


def attempt(kind: str, make: Callable[[], nn.Module], rank: int, world: int) -> str:
    """One row: ``works`` with the largest relative difference, or where and why it failed."""
    torch.manual_seed(0)
    base = DCGANCritic(in_channels=3, channels=8, image_size=16)
    gen = torch.Generator().manual_seed(1)
    real = torch.rand(GLOBAL_BATCH, 3, 16, 16, generator=gen) * 2 - 1
    fake = torch.randn(GLOBAL_BATCH, 3, 16, 16, generator=gen)
    half = GLOBAL_BATCH // world
    parts = [slice(r * half, (r + 1) * half) for r in range(world)]
    reference = copy.deepcopy(base)
    for r, part in enumerate(parts):
        (loss(reference, make(), real[part], fake[part], seed=r) / world).backward()  # type: ignore[no-untyped-call]
    expected = [p.grad for p in reference.parameters()]
    try:
        critic = wrap(kind, copy.deepcopy(base))
    except Exception as e:  # report every failure
        return f"wrapping fails: {type(e).__name__}: {str(e).splitlines()[0][:140]}"
    mine = parts[rank]
    try:
        value = loss(critic, make(), real[mine], fake[mine], seed=rank)
    except Exception as e:
        return f"fails at the call: {type(e).__name__}: {str(e).splitlines()[0][:140]}"
    try:
        value.backward()  # type: ignore[no-untyped-call]
        got = full_gradients(critic)
    except Exception as e:
        return f"fails at backward(): {type(e).__name__}: {str(e).splitlines()[0][:140]}"
    worst = max(
        float((g - e).abs().max()) / (float(e.abs().max()) or 1.0)
        for g, e in zip(got, expected, strict=True)
        if e is not None
    )
    verdict = "works" if worst < 1e-4 else "runs, wrong gradients"
    return f"{verdict} (max rel. difference {worst:.1e})"


def main() -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        rows = []
        for kind in ("DDP", "FSDP2"):
            for name, make in PENALTIES.items():
                outcome = attempt(kind, make, rank, world)
                outcomes: list[str | None] = [None] * world
                dist.all_gather_object(outcomes, outcome)
                shown = outcomes[0] if len(set(outcomes)) == 1 else " / ".join(map(str, outcomes))
                rows.append(f"| {kind} | {name} | {shown} |")
        if rank == 0:
            print(
                f"torch {torch.__version__}, {world} CPU processes (gloo), "
                f"DCGAN critic 3x16x16, global batch {GLOBAL_BATCH}\n"
            )
            print("| wrapper | penalty | outcome |\n| --- | --- | --- |")
            print("\n".join(rows))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
