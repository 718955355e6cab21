"""lipreg.integrations.lightning: BanachWGAN and log_penalty with a real Lightning Trainer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from conftest import wgan_gp
from lipreg import BanachGP
from lipreg.integrations.lightning import log_penalty

pl = pytest.importorskip("lightning.pytorch")
from lipreg.integrations.lightning import BanachWGAN  # noqa: E402  (needs lightning)

STANDINS = Path(__file__).parent / "standins"


def nets() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2 * 4 * 4))
    generator.append(nn.Unflatten(1, (2, 4, 4)))
    critic = nn.Sequential(nn.Flatten(), nn.Linear(32, 8), nn.Softplus(), nn.Linear(8, 1))
    return generator, critic


def loader() -> DataLoader[Any]:
    data = torch.randn(24, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    return DataLoader(TensorDataset(data), batch_size=6)


def trainer(tmp_path: Path, **kw: Any) -> Any:
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        **kw,
    )


class HandWrittenWGANGP(pl.LightningModule):
    """The usual WGAN-GP LightningModule, without lipreg (the code lipreg replaces)."""

    def __init__(self, generator: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator, self.critic = generator, critic

    def configure_optimizers(self) -> Any:
        return [torch.optim.Adam(m.parameters(), lr=1e-4, betas=(0.5, 0.9))
                for m in (self.generator, self.critic)]  # fmt: skip

    def training_step(self, batch: Any, batch_idx: int) -> None:
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        fake = self.generator(torch.randn(real.shape[0], 3)).detach()
        gp = wgan_gp(self.critic, real, fake)
        d_loss = self.critic(fake).mean() - self.critic(real).mean() + gp
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        if batch_idx % 2 == 1:
            g_loss = -self.critic(self.generator(torch.randn(real.shape[0], 3))).mean()
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()


def test_l2_penalty_trains_exactly_like_hand_written_wgan_gp(tmp_path: Path) -> None:
    params = []
    for build in (
        lambda g, d: BanachWGAN(g, d, BanachGP("l2", lam=10.0, gamma=1.0), latent_dim=3,
                                n_critic=2),
        HandWrittenWGANGP,
    ):  # fmt: skip
        model = build(*nets())
        torch.manual_seed(5)
        trainer(tmp_path).fit(model, loader())
        params.append([p.detach().clone() for p in model.parameters()])
    assert len(params[0]) == len(params[1])
    start = [p for m in nets() for p in m.parameters()]
    for a, b, s in zip(*params, start, strict=True):
        torch.testing.assert_close(a, b)
        # both networks were trained (the critic's output bias cancels in WGAN losses)
        assert a.ndim == 1 or not torch.equal(a, s)


def test_penalty_statistics_are_logged(tmp_path: Path) -> None:
    model = BanachWGAN(*nets(), BanachGP("sobolev:s=-1", gamma="auto"), latent_dim=3)
    t = trainer(tmp_path)
    t.fit(model, loader())
    logged = t.callback_metrics
    assert {"d_loss", "penalty/dual_norm_mean", "penalty/gamma", "penalty/lam"} <= set(logged)
    assert model.penalty.stats is not None
    torch.testing.assert_close(logged["penalty/gamma"], model.penalty.stats.gamma)


def test_penalty_state_in_lightning_checkpoint(tmp_path: Path) -> None:
    model = BanachWGAN(*nets(), BanachGP("lp:p=3", lam="auto", gamma="auto"), latent_dim=3)
    t = trainer(tmp_path)
    t.fit(model, loader())
    path = tmp_path / "wgan.ckpt"
    t.save_checkpoint(path)
    resumed = BanachWGAN(*nets(), BanachGP("lp:p=3", lam="auto", gamma="auto"), latent_dim=3)
    trainer(tmp_path).fit(resumed, loader(), ckpt_path=str(path))  # restores, epoch already done
    assert int(resumed.penalty.calibration.count) == 24
    assert resumed.penalty.gamma == model.penalty.gamma and resumed.penalty.lam == model.penalty.lam
    other = BanachWGAN(*nets(), BanachGP("lp:p=4", lam="auto", gamma="auto"), latent_dim=3)
    with pytest.raises(RuntimeError, match="norm"):
        trainer(tmp_path).fit(other, loader(), ckpt_path=str(path))
    assert int(other.penalty.calibration.count) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_critic": 0}, "n_critic"), ({"latent_dim": 2.5}, "latent_dim"), ({"lr": -1.0}, "lr"),
     ({"betas": (0.5,)}, "betas")],
)  # fmt: skip
def test_bad_configuration_fails_at_construction(kwargs: dict[str, Any], match: str) -> None:
    config: dict[str, Any] = {"latent_dim": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        BanachWGAN(*nets(), BanachGP(), **config)
    with pytest.raises(TypeError, match=r"penalty must be an nn\.Module"):
        BanachWGAN(*nets(), lambda c, r, f: r.sum(), latent_dim=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown norm"):
        BanachWGAN(*nets(), BanachGP("sobolov:s=1"), latent_dim=3)


def test_log_penalty_before_any_call_is_explained() -> None:
    class Recorder:
        def log_dict(self, d: Any, **kw: Any) -> None:
            self.logged = (d, kw)

    rec = Recorder()
    penalty = BanachGP()
    with pytest.raises(RuntimeError, match="no statistics yet"):
        log_penalty(rec, penalty)
    penalty(nets()[1], torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4))
    log_penalty(rec, penalty, "gp/", prog_bar=True)
    d, kw = rec.logged
    assert kw == {"prog_bar": True} and set(d) == {f"gp/{k}" for k in penalty.stats.as_dict()}


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, str(STANDINS / "lightning_ddp.py"), str(tmp_path)],
                   check=True, env=env, cwd=tmp_path, timeout=120, capture_output=True)  # fmt: skip
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["world_size"] == 2
    for a, b in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        torch.testing.assert_close(a, b)  # DDP kept the replicas identical
    # the auto estimates are means over both ranks' real samples (32 in all)
    for r in ranks:
        assert int(r["penalty"]["calibration.count"]) == 32
    torch.testing.assert_close(ranks[0]["penalty"]["calibration.means"],
                               ranks[1]["penalty"]["calibration.means"])  # fmt: skip
