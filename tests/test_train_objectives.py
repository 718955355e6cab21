"""The trainer's --loss and schedules: defaults per penalty, the pairing warning, the losses
each step computes, R3GAN's cosine schedules, the r3gan-cifar10 preset, old checkpoints."""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import pytest
import torch
from train_helpers import one_thread, restore_threads, toy_config, usage_error

from lipreg import rpgan_generator_loss
from lipreg.losses import LOSSES
from lipreg.train import checkpoint
from lipreg.train.batches import Batches
from lipreg.train.cli import main, parse_command
from lipreg.train.config import TrainConfig
from lipreg.train.loop import Trainer
from lipreg.train.objectives import PairingWarning
from lipreg.train.penalties import PENALTIES
from lipreg.train.runner import Runner
from lipreg.train.schedules import Schedule, cosine

setup_module, teardown_module = one_thread, restore_threads

ZERO_CENTRED = ("r1", "r2", "r1r2", "approx-r1", "approx-r2", "approx-r1r2")


def r3gan_cosine(cur_nimg: float, base: float, final: float, total_nimg: float) -> float:
    """R3GAN's cosine_decay_with_warmup without warm-up (training/training_loop.py), written
    from its formula: decay = (1 + cos(pi n / N)) / 2, value = base + (1 - decay)(final -
    base), and final after N."""
    if cur_nimg > total_nimg:
        return final
    decay = 0.5 * (1 + math.cos(math.pi * cur_nimg / total_nimg))
    return base + (1 - decay) * (final - base)


@pytest.mark.parametrize("penalty", list(PENALTIES))
def test_auto_loss_follows_the_penalty(tmp_path: Path, penalty: str) -> None:
    gamma = {"gamma": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error", PairingWarning)  # the defaults never warn
        trainer = Trainer(toy_config(tmp_path, penalty=penalty, **gamma))
    # no penalty and no constraint: a plain GAN, whose loss is the logistic one
    assert trainer.config.loss == ("ns" if penalty in (*ZERO_CENTRED, "none") else "wgan")
    assert trainer.loss is LOSSES[trainer.config.loss]


@pytest.mark.parametrize("penalty", ZERO_CENTRED)
def test_wasserstein_loss_with_a_zero_centred_penalty_warns(tmp_path: Path, penalty: str) -> None:
    with pytest.warns(PairingWarning, match=f"--penalty {penalty}: .* nothing bounds the critic"):
        Trainer(toy_config(tmp_path, loss="wgan", penalty=penalty, gamma=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PairingWarning)
        for loss in ("ns", "hinge", "rpgan"):
            Trainer(toy_config(tmp_path, loss=loss, penalty=penalty, gamma=1.0))
        Trainer(toy_config(tmp_path, loss="wgan", penalty="gp"))


@pytest.mark.parametrize("loss", list(LOSSES))
def test_the_critic_step_minimises_the_chosen_loss(tmp_path: Path, loss: str) -> None:
    """loss/critic is the loss of the chosen objective on D(real), D(fake), plus the penalty
    (lam 0 here) and the drift; the gap is logged for every loss, W1 only for WGAN."""
    trainer = Trainer(toy_config(tmp_path, loss=loss, lam=0.0, drift=0.5))
    d = copy.deepcopy(trainer.d)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    trainer.critic_backward(real, fake)
    d_real, d_fake = d(real), d(fake)
    expected = LOSSES[loss].critic(d_real, d_fake) + 0.5 * d_real.square().mean()
    torch.testing.assert_close(trainer.last["loss/critic"], expected.detach())
    trainer.generator_step()
    values = trainer.scalars()
    assert values["critic_gap"] == pytest.approx((d_real.mean() - d_fake.mean()).item())
    assert ("wasserstein" in values) == (loss == "wgan")


def test_the_rpgan_generator_step_pairs_fakes_with_fresh_real_batches(tmp_path: Path) -> None:
    trainer = Trainer(toy_config(tmp_path, loss="rpgan", batch_size=8, gen_batch_size=16))
    g, d = copy.deepcopy(trainer.g), copy.deepcopy(trainer.d)
    stream = Batches(trainer.data, 8, seed=trainer.config.seed)
    stream.load_state_dict(trainer.batches.state_dict())
    torch.manual_seed(5)
    trainer.generator_step()
    assert trainer.batches.state_dict()["position"] == stream.position + 2  # two real batches
    torch.manual_seed(5)
    z = torch.randn(16, trainer.z_dim)
    real = torch.cat([next(stream), next(stream)])
    expected = rpgan_generator_loss(d(real), d(g(z)))
    torch.testing.assert_close(trainer.last["loss/generator"], expected.detach())
    assert all(
        torch.equal(a, b) for a, b in zip(d.parameters(), trainer.d.parameters(), strict=True)
    )


def test_cosine_is_r3gans_schedule() -> None:
    for t in (0, 1, 17, 999, 1000, 1500):
        # R3GAN counts images: 512 per step, horizon 512000 images = 1000 steps
        expected = r3gan_cosine(t * 512, 0.05, 0.005, 512_000)
        assert cosine(0.05, 0.005, t, 1000) == pytest.approx(expected, rel=1e-14, abs=0)
    assert cosine(2e-4, 5e-5, 0, 10) == 2e-4 and cosine(2e-4, 5e-5, 10, 10) == 5e-5


def test_r3gans_ema_half_life() -> None:
    """ema_beta = 0.5 ** (batch / half_life_in_images), the half-life a cosine from 0."""
    config = toy_config(Path("unused"), ema_half_life=250.0, decay_steps=1000, steps=2000)
    decay = Schedule(config).ema_decay()
    for t in (0, 1, 10, 500, 1000, 1999):
        half_life = r3gan_cosine(t * 512, 0.0, 250.0 * 512, 1000 * 512)
        expected = 0.5 ** (512 / max(half_life, 1e-8))
        assert decay(t) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    default = Schedule(toy_config(Path("unused"), ema=0.99)).ema_decay()
    assert [default(t) for t in (0, 10, 10_000)] == [0.1, 11 / 20, 0.99]


def test_the_schedules_drive_lr_beta2_gamma_and_the_weight_average(tmp_path: Path) -> None:
    config = toy_config(
        tmp_path,
        loss="rpgan",
        penalty="r1r2",
        gamma=1.0,
        gamma_final=0.1,
        lr=1e-3,
        lr_decay="cosine",
        lr_final=1e-4,
        betas=(0.0, 0.9),
        beta2_final=0.99,
        ema_half_life=2.0,
        decay_steps=4,
        steps=6,
        n_critic=1,
    )
    trainer = Trainer(config)
    seen = []
    original = trainer.critic_step

    def critic_step() -> None:
        group = trainer.opt_d.param_groups[0]
        seen.append((group["lr"], group["betas"][1], trainer.penalty.gamma))
        original()

    trainer.critic_step = critic_step  # type: ignore[method-assign]
    for _ in range(6):
        trainer.iteration()
    expected = [
        (
            r3gan_cosine(t, 1e-3, 1e-4, 4),
            r3gan_cosine(t, 0.9, 0.99, 4),
            r3gan_cosine(t, 1.0, 0.1, 4),
        )
        for t in range(6)
    ]
    assert seen == [pytest.approx(e, rel=1e-12) for e in expected]
    assert trainer.opt_g.param_groups[0]["betas"] == trainer.opt_d.param_groups[0]["betas"]
    # the weight average: w_ema <- d w_ema + (1 - d) w with d = 0.5 ** (1 / half-life)
    assert trainer.ema is not None
    a, b = [torch.zeros(3)], [torch.ones(3)]
    trainer.ema.multi_avg_fn(a, b, 2)  # type: ignore[misc]
    d = 0.5 ** (1 / r3gan_cosine(2, 0.0, 2.0, 4))
    torch.testing.assert_close(a[0], torch.full((3,), 1 - d))


def test_a_gamma_schedule_needs_a_zero_centred_penalty(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--gamma-final schedules the weight"):
        Trainer(toy_config(tmp_path, penalty="gp", gamma_final=0.1))
    Trainer(toy_config(tmp_path, penalty="r1", gamma=1.0, gamma_final=0.1, lazy_every=2))


def test_checkpoints_from_before_the_loss_option_trained_wgan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    with pytest.warns(PairingWarning):
        Runner(Trainer(toy_config(run, loss="wgan", penalty="r1", gamma=1.0, steps=1))).run()
    state = checkpoint.load(run)
    del state["config"]["loss"]  # as written before --loss existed
    checkpoint.save(run / "checkpoint.pt", state)
    assert TrainConfig.from_saved(checkpoint.load(run)["config"]).loss == "wgan"
    err = usage_error(capsys, lambda: main(["--resume", str(run), "--loss", "ns"]))
    assert "--loss 'wgan' (this run: 'ns')" in err, err


def test_the_r3gan_preset_holds_the_published_numbers() -> None:
    """R3GAN's CIFAR10 preset (train.py of brownvc/R3GAN at 19a7ddf, and the README's
    --batch=512): every number in one place, so a typo in the preset cannot pass."""
    c = parse_command(["--preset", "r3gan-cifar10"]).config
    assert (c.loss, c.penalty, c.norm, c.data, c.z_dim) == ("rpgan", "r1r2", "l2", "cifar10", 64)
    assert (c.gamma, c.gamma_final) == (0.05, 0.005)
    assert (c.lr, c.lr_final, c.lr_decay) == (2e-4, 5e-5, "cosine")
    assert (c.betas, c.beta2_final) == ((0.0, 0.9), 0.99)
    assert (c.batch_size, c.gen_batch_size, c.n_critic) == (512, 512, 1)
    assert c.decay_steps == c.steps == 39063  # 2e7 images / 512, rounded up
    assert c.ema_half_life == 5e6 / 512 and c.ema > 0
    assert (c.drift, c.lazy_every) == (0.0, 1)


@pytest.mark.slow
def test_the_r3gan_objective_and_the_rpgan_command_run_on_digits(tmp_path: Path) -> None:
    tiny = ["--model", "dcgan", "--width", "4", "--eval-samples", "64", "--no-progress"]
    tiny += ["--batch-size", "16", "--gen-batch-size", "32", "--steps", "2"]
    out = tmp_path / "rpgan"
    assert main(["--data", "digits", "--loss", "rpgan", "--penalty", "r1r2", *tiny,
                 "--norm", "sobolev:s=1", "--out", str(out)]) == 0  # fmt: skip
    assert checkpoint.load(out)["config"]["loss"] == "rpgan"
    out = tmp_path / "preset"
    assert main(["--preset", "r3gan-cifar10", "--data", "digits", *tiny, "--out", str(out)]) == 0
    saved = checkpoint.load(out)["config"]
    assert (saved["gamma_final"], saved["decay_steps"]) == (0.005, 39063)
