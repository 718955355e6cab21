"""Run BanachWGAN under Lightning's DDP strategy on two CPU processes (used by a test).

Usage: python lightning_ddp.py OUT_DIR. Every rank writes its final parameters and the
penalty's state to OUT_DIR/rank{r}.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lipreg import BanachGP
from lipreg.integrations.lightning import BanachWGAN


def main(out: Path) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 2) * 0.5 + 1.0)
    generator = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    critic = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    model = BanachWGAN(generator, critic, BanachGP("lp:p=4", lam="auto", gamma="auto"),
                       latent_dim=2, n_critic=2)  # fmt: skip
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        # Manual optimisation: the critic step leaves the generator unused, and vice versa.
        strategy="ddp_find_unused_parameters_true",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(out),
    )
    trainer.fit(model, DataLoader(data, batch_size=4))
    state = {
        "params": [p.detach().clone() for p in model.parameters()],
        "penalty": model.penalty.state_dict(),
        "world_size": trainer.world_size,
    }
    torch.save(state, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
