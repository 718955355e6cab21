"""An Accelerate WGAN loop with a lipreg penalty on two CPU processes (used by a test).

Usage: python -m torch.distributed.run --nproc_per_node=2 accelerate_ddp.py OUT_DIR.
Every rank writes its parameters, the penalty's state and its reduced statistics.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from lipreg import BanachGP
from lipreg.integrations.accelerate import prepare_penalty, reduced_stats


def main(out: Path) -> None:
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    critic, opt = accelerator.prepare(critic, opt)
    penalty = prepare_penalty(accelerator, BanachGP("lp:p=3", lam="auto", gamma="auto"))
    rank = accelerator.process_index
    gen = torch.Generator().manual_seed(100 + rank)  # every rank sees different data
    stats = {}
    for _ in range(3):
        real = torch.randn(5, 4, generator=gen) + rank
        fake = torch.randn(5, 4, generator=gen)
        with accelerator.autocast():
            d_loss = critic(fake).mean() - critic(real).mean() + penalty(critic, real, fake)
        opt.zero_grad()
        accelerator.backward(d_loss)
        opt.step()
        stats = reduced_stats(accelerator, penalty)
    torch.save(
        {
            "world_size": accelerator.num_processes,
            "params": [p.detach().clone() for p in critic.parameters()],
            "penalty": penalty.state_dict(),
            "stats": stats,
            "local_stats": penalty.stats.as_dict() if penalty.stats else None,
        },
        out / f"rank{rank}.pt",
    )
    # Accelerate's documented shutdown. The DDP wrapper goes before the process group:
    # Gloo sometimes aborts a process whose DDP modules outlive the group.
    critic, opt = accelerator.free_memory(critic, opt)
    accelerator.end_training()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
