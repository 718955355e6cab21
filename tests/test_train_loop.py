"""The training loop: short CPU runs on toy and image data, and each ingredient of the loop
against an independent computation (the critic loss, EMA, learning-rate decay, batches)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler
from train_helpers import (
    fixed_batch,
    image_config,
    interpolate_fixed,
    one_thread,
    read_scalars,
    restore_threads,
    toy_config,
    training_rows,
)

from lipreg import Sobolev
from lipreg.train.batches import Batches
from lipreg.train.config import TrainConfig
from lipreg.train.data import load_dataset
from lipreg.train.loop import Trainer
from lipreg.train.penalties import PENALTIES
from lipreg.train.runner import Runner

TRAINING_KEYS = {
    "loss/critic",
    "loss/generator",
    "wasserstein",
    "penalty",
    "dual_norm_mean",
    "dual_norm_max",
    "lam",
    "gamma",
    "lr",
    "images_per_s",
}

setup_module, teardown_module = one_thread, restore_threads


def test_toy_run_logs_finite_scalars_and_writes_its_files(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run", steps=3, eval_every=3, tensorboard=True)
    summary = Runner(Trainer(config)).run()
    out = tmp_path / "run"
    assert summary.step == 3 and not summary.interrupted
    rows = read_scalars(out)
    steps = [r["step"] for r in rows if "loss/critic" in r]
    assert steps == [1, 2, 3]
    for row in rows:
        assert all(v is not None and math.isfinite(v) for v in row.values()), row
    assert set(rows[-2]) >= TRAINING_KEYS or set(rows[-1]) >= TRAINING_KEYS
    w1 = [r["metric/w1"] for r in rows if "metric/w1" in r]
    assert len(w1) == 2 and all(v > 0 for v in w1)  # step 0 and step 3
    assert summary.metrics == {"metric/w1": w1[-1]}
    for name in ("config.json", "checkpoint.pt", "critic_surface.png", "plots/losses.png"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))
    assert out / "critic_surface.png" in summary.files


@pytest.mark.parametrize("model", ["dcgan", "resnet"])
def test_image_run_writes_sample_grids_and_swd(tmp_path: Path, model: str) -> None:
    config = image_config(tmp_path / "run", steps=2, eval_every=2, model=model)
    Runner(Trainer(config)).run()
    out = tmp_path / "run"
    assert (out / "samples" / "step_000000.png").is_file()
    assert (out / "samples" / "step_000002.png").is_file()
    swd = [r["metric/swd"] for r in read_scalars(out) if "metric/swd" in r]
    assert len(swd) == 2 and all(math.isfinite(v) and v > 0 for v in swd)
    spectral = [r for r in read_scalars(out) if "metric/spectral_hf_excess" in r]
    assert len(spectral) == 2 and all(r["metric/spectral_distance"] > 0 for r in spectral)
    rows = training_rows(out)
    assert set(rows) == {1, 2}
    assert all(math.isfinite(v) for r in rows.values() for v in r.values())
    # lam and gamma are the paper's estimates E||X||_B and E||X||_B* of the data seen
    assert rows[2]["lam"] > 0 and rows[2]["gamma"] > 0 and rows[2]["lam"] != 10.0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_and_passes_the_scaler_to_the_penalty(
    tmp_path: Path, precision: str
) -> None:
    trainer = Trainer(toy_config(tmp_path / "run", precision=precision, steps=3))
    assert trainer.penalty.grad_scaler is trainer.scaler_d
    assert trainer.scaler_d.is_enabled() == (precision == "fp16")
    Runner(trainer).run()
    rows = training_rows(tmp_path / "run")
    assert all(math.isfinite(r["loss/generator"]) for r in rows.values())


def test_w1_falls_on_toy_data(tmp_path: Path) -> None:
    """A longer run (still seconds): the exact W1 between generated and real points falls."""
    config = toy_config(
        tmp_path / "run",
        width=64,
        data_size=2048,
        batch_size=128,
        gen_batch_size=128,
        lr=1e-3,
        betas=(0.5, 0.9),
        lam=0.1,  # WGAN-GP's toy experiments
        steps=60,
        eval_every=30,
        eval_samples=256,
        log_every=30,
    )
    Runner(Trainer(config)).run()
    w1 = [r["metric/w1"] for r in read_scalars(tmp_path / "run") if "metric/w1" in r]
    assert len(w1) == 3
    assert w1[-1] < 0.75 * w1[0], w1  # 1.39 -> 0.69 (seeds 1, 2: 1.41 -> 0.83, 1.39 -> 0.55)


def test_critic_loss_is_the_one_line_plus_drift(tmp_path: Path) -> None:
    """The critic's loss and gradients against WGAN-GP written out by hand (lam = 10,
    gamma = 1, L2) plus the drift term."""
    trainer = Trainer(toy_config(tmp_path / "run", drift=0.25))
    trainer.penalty.sampler = interpolate_fixed
    real, fake = fixed_batch(16, (2,), 1), fixed_batch(16, (2,), 2)
    trainer.opt_d.zero_grad()
    trainer.critic_backward(real, fake)
    got = [p.grad.clone() for p in trainer.d.parameters()]

    critic = trainer.d
    critic.zero_grad()
    x_hat = interpolate_fixed(real, fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    gp = 10 * ((g.norm(dim=1) - 1) ** 2).mean()
    d_real = critic(real)
    loss = critic(fake).mean() - d_real.mean() + gp + 0.25 * (d_real**2).mean()
    loss.backward()
    assert float(trainer.last["loss/critic"]) == pytest.approx(float(loss.detach()), rel=1e-6)
    for a, b in zip(got, (p.grad for p in critic.parameters()), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_generator_step_trains_the_generator_only(tmp_path: Path) -> None:
    trainer = Trainer(toy_config(tmp_path / "run"))
    critic_before = [p.detach().clone() for p in trainer.d.parameters()]
    generator_before = [p.detach().clone() for p in trainer.g.parameters()]
    trainer.opt_d.zero_grad(set_to_none=True)
    trainer.generator_step()
    assert all(p.grad is None and p.requires_grad for p in trainer.d.parameters())
    assert all(
        torch.equal(a, b) for a, b in zip(critic_before, trainer.d.parameters(), strict=True)
    )
    assert not all(
        torch.equal(a, b) for a, b in zip(generator_before, trainer.g.parameters(), strict=True)
    )


def test_adam_settings_and_linear_decay_to_zero(tmp_path: Path) -> None:
    trainer = Trainer(toy_config(tmp_path / "run", steps=4, n_critic=3))
    for opt in (trainer.opt_g, trainer.opt_d):
        group = opt.param_groups[0]
        assert group["betas"] == (0.0, 0.9) and all(type(b) is float for b in group["betas"])
        assert group["lr"] == 2e-4
    for k in range(1, 5):
        trainer.iteration()
        for opt in (trainer.opt_g, trainer.opt_d):
            assert opt.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - k / 4), abs=1e-15)
    assert trainer.batches.state_dict() == {"epoch": 0, "position": 12}  # 3 critic steps x 4


def test_a_skipped_first_fp16_step_still_advances_the_schedule_silently(tmp_path: Path) -> None:
    """A GradScaler that skips the generator's first step (overflow): the rate still decays
    with the iteration, and torch's warning about the scheduler stepping before the
    optimiser (deliberate here) is not shown."""
    trainer = Trainer(toy_config(tmp_path / "run", precision="fp16", steps=4))
    trainer.scaler_g = torch.amp.GradScaler("cpu", init_scale=math.inf)  # every step overflows
    before = [p.detach().clone() for p in trainer.g.parameters()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.iteration()
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.g.parameters(), strict=True))
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 3 / 4, abs=1e-15)


def _warn_here() -> None:
    warnings.warn("a warning shown once per location", UserWarning, stacklevel=1)


def test_iterations_leave_once_only_warnings_shown_once(tmp_path: Path) -> None:
    """Only a scheduler's first step enters ``catch_warnings`` (whose exit re-arms every
    warning already shown once): later iterations leave the warning registries alone."""
    trainer = Trainer(toy_config(tmp_path / "run", steps=4))
    trainer.iteration()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # once per location
        for _ in range(3):
            _warn_here()
            trainer.iteration()
    assert len(caught) == 1


def test_ema_is_the_warmed_up_exponential_average(tmp_path: Path) -> None:
    decay = 0.8
    trainer = Trainer(toy_config(tmp_path / "run", ema=decay))
    average = None
    for t in range(6):
        trainer.iteration()
        weights = [p.detach().clone().double() for p in trainer.g.parameters()]
        if average is None:
            average = weights
        else:
            d_t = min(decay, (1 + t) / (10 + t))
            average = [d_t * a + (1 - d_t) * w for a, w in zip(average, weights, strict=True)]
    assert trainer.ema is not None and int(trainer.ema.n_averaged) == 6
    for a, p in zip(average, trainer.ema.module.parameters(), strict=True):
        torch.testing.assert_close(p.double(), a, rtol=1e-6, atol=1e-7)


def test_no_ema_samples_from_the_generator(tmp_path: Path) -> None:
    trainer = Trainer(toy_config(tmp_path / "run", ema=0.0, eval_every=2, steps=2))
    assert trainer.ema is None
    Runner(trainer).run()
    assert any("metric/w1" in r for r in read_scalars(tmp_path / "run"))


def test_batches_cover_each_epoch_and_split_it_across_processes() -> None:
    data = load_dataset("8gaussians", size=40)
    stream = Batches(data, 8, seed=3)
    epoch = torch.cat([next(stream) for _ in range(5)])
    assert sorted(map(tuple, epoch.tolist())) == sorted(map(tuple, data.data.tolist()))
    shares = [Batches(data, 4, seed=3, rank=r, world=2) for r in range(2)]
    halves = [torch.cat([next(s) for _ in range(5)]) for s in shares]
    together = sorted(map(tuple, torch.cat(halves).tolist()))
    assert together == sorted(map(tuple, data.data.tolist()))


@pytest.mark.parametrize(("name", "world"), [("8gaussians", 1), ("patches", 2)])
def test_batches_draw_the_samplers_permutations_item_by_item(name: str, world: int) -> None:
    """The batches equal the items of each epoch's DistributedSampler permutation stacked one
    by one (the stream gathers whole batches at once; the samples drawn are the same). Patches
    are uint8, converted per batch."""
    data = load_dataset(name, size=24, image_size=4 if name == "patches" else None)
    batch = 3
    for rank in range(world):
        stream = Batches(data, batch, seed=11, rank=rank, world=world)
        sampler: DistributedSampler[int] = DistributedSampler(
            data, world, rank, shuffle=True, seed=11, drop_last=True
        )
        expected = []
        for epoch in range(3):
            sampler.set_epoch(epoch)
            order = list(sampler)
            for start in range(0, len(order) - batch + 1, batch):
                expected.append(torch.stack([data[i] for i in order[start : start + batch]]))
        for want in expected:
            got = next(stream)
            assert got.dtype == torch.float32 and torch.equal(got, want)


def test_batches_resume_where_they_stopped() -> None:
    data = load_dataset("8gaussians", size=30)
    stream = Batches(data, 7, seed=0)
    drawn = [next(stream) for _ in range(3)]  # 4 batches per epoch: this crosses none yet
    state = stream.state_dict()
    rest = [next(stream) for _ in range(6)]  # ... and this crosses into epochs 1 and 2
    resumed = Batches(data, 7, seed=0)
    resumed.load_state_dict(state)
    assert all(torch.equal(a, next(resumed)) for a in rest)
    assert not torch.equal(drawn[0], rest[3])  # a new permutation in the next epoch


def test_models_follow_the_config(tmp_path: Path) -> None:
    trainer = Trainer(toy_config(tmp_path / "run", width=32))
    linears = [m for m in trainer.d.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [32, 32, 32, 1]
    assert trainer.z_dim == 2
    trainer = Trainer(image_config(tmp_path / "img", model="auto", image_size=32, width=8))
    assert type(trainer.g).__name__ == "ResNetGenerator"
    cfg = dataclasses.replace(image_config(tmp_path / "img"), model="auto", image_size=16)
    assert type(Trainer(cfg).g).__name__ == "DCGANGenerator"


@pytest.mark.parametrize(
    ("penalty", "kind", "overrides"),
    [
        ("gp", "BanachGP", {}),
        ("lp", "BanachGP", {"lam": "auto", "gamma": "auto"}),
        ("dragan", "BanachGP", {}),
        ("fd", "FiniteDifferenceGP", {"norm": "lp:p=3"}),
        ("r1", "BanachR1", {"gamma": 10.0}),
        ("r2", "BanachR2", {"gamma": 10.0, "lazy_every": 2}),
        ("r1r2", "BanachR1R2", {"gamma": 10.0}),
        ("approx-r1", "ApproxR1", {"gamma": 10.0}),
        ("approx-r2", "ApproxR2", {"gamma": 10.0, "lazy_every": 2, "penalty_fraction": 0.5}),
        ("approx-r1r2", "ApproxR1R2", {"gamma": 10.0, "sigma": 0.1}),
        ("gp", "BanachGP", {"penalty_fraction": 0.25}),
    ],
)
def test_every_penalty_choice_trains(
    tmp_path: Path, penalty: str, kind: str, overrides: dict[str, object]
) -> None:
    trainer = Trainer(toy_config(tmp_path / "run", penalty=penalty, **overrides))
    assert type(trainer.inner_penalty).__name__ == kind
    for _ in range(2):
        trainer.iteration()
    values = trainer.scalars()
    assert all(math.isfinite(v) for v in values.values()), values
    if PENALTIES[penalty].zero_centred:  # the non-saturating loss: its gap estimates no W1
        assert trainer.config.loss == "ns" and "wasserstein" not in values
    else:
        assert trainer.config.loss == "wgan"
        assert values["wasserstein"] == pytest.approx(values["critic_gap"] / values["gamma"])


def test_zero_centred_penalties_need_a_fixed_weight(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--penalty r1 takes a fixed --gamma"):
        Trainer(toy_config(tmp_path / "run", penalty="r1", gamma="auto"))


def test_the_local_w2_norm_trains_on_images_with_fixed_lam_and_gamma(tmp_path: Path) -> None:
    """``--norm w2`` (a Riemannian metric: measured at a base point) builds and trains on
    images with fixed lam and gamma; the layout check needs no base point."""
    trainer = Trainer(image_config(tmp_path / "run", norm="w2", lam=10.0, gamma=1.0))
    assert type(trainer.penalty.norm).__name__ == "Wasserstein2"
    critic_before = [p.detach().clone() for p in trainer.d.parameters()]
    trainer.iteration()
    values = trainer.scalars()
    assert all(math.isfinite(v) for v in values.values()), values
    assert values["lam"] == 10.0 and values["gamma"] == 1.0 and values["dual_norm_max"] > 0
    assert not all(
        torch.equal(a, b) for a, b in zip(critic_before, trainer.d.parameters(), strict=True)
    )


def test_the_local_w2_norm_is_refused_clearly_where_it_does_not_apply(tmp_path: Path) -> None:
    # lam and gamma 'auto' estimate E||X||_B and E||X||_B*, which a local norm does not define
    with pytest.raises(ValueError, match=r"lam='auto' and gamma='auto' .* local norm"):
        Trainer(image_config(tmp_path / "auto", norm="w2"))
    # toy points are not images [C, H, W]
    with pytest.raises(
        ValueError,
        match=r"^--norm w2:gamma_l2=0,low=-1,high=1 does not apply to samples of shape \[2\]: "
        r"x must have layout \[B, C, H, W\] for Wasserstein2",
    ):
        Trainer(toy_config(tmp_path / "toy", norm="w2", lam=10.0, gamma=1.0))


def test_critic_scale_gamma_estimates_once_and_scales_the_critic(tmp_path: Path) -> None:
    """``--critic-scale gamma`` (the default) with ``--gamma auto``: lam and gamma are the
    means of ||X||_B and ||X||_B* over the data (all 64 samples here), fixed before the first
    step, and the critic computes gamma * f."""
    trainer = Trainer(image_config(tmp_path / "run"))
    calibration = trainer.penalty.calibration
    assert calibration.frozen and int(calibration.count) == len(trainer.data) == 64
    x = trainer.data.take(torch.arange(64))
    norm = Sobolev(s=-1.5)
    assert trainer.penalty.lam == pytest.approx(float(norm.norm(x).mean()), rel=1e-5)
    assert trainer.penalty.gamma == pytest.approx(float(norm.dual(x).mean()), rel=1e-5)
    assert trainer.gamma_scale is not None
    scaled = trainer.d(x[:4])
    trainer.gamma_scale.remove()
    torch.testing.assert_close(scaled, trainer.penalty.gamma * trainer.d(x[:4]))


@pytest.mark.parametrize(
    ("overrides", "frozen"),
    [
        ({"critic_scale": "none"}, False),  # the network is the critic; running estimates
        ({"penalty": "r1", "gamma": 1.0, "lam": 10.0}, False),  # gamma is a weight
        ({"gamma": 2.0}, False),  # a fixed factor needs no estimate; lam keeps running
    ],
)
def test_critic_scale_applies_to_lipschitz_constants_only(
    tmp_path: Path, overrides: dict[str, object], frozen: bool
) -> None:
    trainer = Trainer(image_config(tmp_path / "run", **overrides))
    inner = trainer.penalty
    if "calibration" in dir(inner):
        assert inner.calibration.frozen == frozen and int(inner.calibration.count) == 0
    x = trainer.data.take(torch.arange(4))
    if overrides.get("gamma") == 2.0:
        assert trainer.gamma_scale is not None
        out = trainer.d(x)
        trainer.gamma_scale.remove()
        torch.testing.assert_close(out, 2.0 * trainer.d(x))
    else:
        assert trainer.gamma_scale is None
        assert not trainer.d._forward_hooks


def test_checkpoints_from_before_critic_scale_resume_unscaled() -> None:
    values = TrainConfig(lam="auto", gamma="auto").to_dict()
    del values["critic_scale"]
    assert TrainConfig.from_saved(values).critic_scale == "none"
    assert TrainConfig.from_dict(values).critic_scale == "gamma"
