"""Processes and devices: one process per device under ``torchrun``, or a single process.

``torchrun --nproc_per_node N -m lipreg.train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address; :func:`setup` then joins the process group (NCCL
on CUDA, Gloo on CPU) and picks ``cuda:LOCAL_RANK`` or the CPU. Models are wrapped in
``DistributedDataParallel``, which averages gradients over processes; gradient penalties
take the input gradient with ``torch.func``/``autograd.grad`` and then run an ordinary
backward, the double-backward pattern DDP supports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """Where this process runs: its ``rank`` among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device
    owns_group: bool  # whether setup() created the process group (and teardown ends it)

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def _device(option: str, local_rank: int, distributed: bool) -> torch.device:
    if option == "auto":
        option = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(option)
    except RuntimeError as e:
        raise ValueError(
            f"--device: {option!r} is not a device ({e}); use cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {option}: CUDA is not available here; use --device cpu")
        if distributed:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def launched_world() -> int:
    """The number of processes a run started here would span: the size of the process group
    if one is initialised, else ``WORLD_SIZE`` (set by ``torchrun``; 1 without it)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str) -> Context:
    """Join the process group that ``torchrun`` describes (if any) and choose the device."""
    world = launched_world()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _device(device, local_rank, world > 1)
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        owns = True
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return Context(rank=rank, world=world, device=dev, owns_group=owns)


def teardown(ctx: Context) -> None:
    """Leave the process group if :func:`setup` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, ctx: Context) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` when there are several processes."""
    if not ctx.distributed:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def any_rank(flag: bool, ctx: Context) -> bool:
    """Whether ``flag`` is set on any process (every process must call this)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([float(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(obj: Any, ctx: Context) -> list[Any]:
    """``obj`` from every process, indexed by rank (every process must call this)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


@contextmanager
def main_first(ctx: Context) -> Iterator[None]:
    """Rank 0 runs the block first while the other processes wait at a barrier, then they run
    it: a download into a shared cache happens once, and the others find it there. If rank 0
    fails inside, ``torchrun`` stops the waiting processes."""
    if ctx.distributed and not ctx.main:
        dist.barrier()
    yield
    if ctx.distributed and ctx.main:
        dist.barrier()
