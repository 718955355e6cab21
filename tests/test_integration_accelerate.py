"""lipreg.integrations.accelerate: a penalty in an accelerate.Accelerator loop, on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from conftest import wgan_gp
from lipreg import BanachGP, BanachR1, Lazy
from lipreg.integrations.accelerate import prepare_penalty, reduced_stats

accelerate = pytest.importorskip("accelerate")
from accelerate.state import AcceleratorState  # noqa: E402

STANDINS = Path(__file__).parent / "standins"


@pytest.fixture(autouse=True)
def _fresh_accelerator_state() -> Iterator[None]:
    # Accelerate keeps one process-wide state; each test builds its own Accelerator.
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Softplus(), nn.Linear(8, 1))


def train(accelerator: Any, penalty: Any, steps: int = 3) -> list[torch.Tensor]:
    d = critic()
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    d, opt = accelerator.prepare(d, opt)
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(2)
    for _ in range(steps):
        real, fake = torch.randn(6, 1, 3, 4, generator=gen), torch.randn(6, 1, 3, 4, generator=gen)
        with accelerator.autocast():
            d_loss = d(fake).mean() - d(real).mean() + penalty(d, real, fake)
        opt.zero_grad()
        accelerator.backward(d_loss)
        opt.step()
    return [p.detach().clone() for p in d.parameters()]


def test_l2_penalty_equals_hand_written_wgan_gp() -> None:
    accelerator = accelerate.Accelerator(cpu=True)
    ours = train(accelerator, prepare_penalty(accelerator, BanachGP("l2", lam=10.0, gamma=1.0)))
    ref = train(accelerator, wgan_gp)  # WGAN-GP as usually written (the code lipreg replaces)
    start = list(critic().parameters())
    for a, b, s in zip(ours, ref, start, strict=True):
        torch.testing.assert_close(a, b)
        assert a.ndim == 1 or not torch.equal(a, s)  # the critic was trained


def test_grad_scaler_recipe_for_float16() -> None:
    """With fp16, Accelerate scales the loss with accelerator.scaler; prepare_penalty makes the
    penalty take its input gradient of the scaled scores and unscale it, so the parameter
    gradients are exactly scale times the unscaled ones. (CPU has no fp16 autocast, so the
    scaler is installed by hand; the wiring is what is tested.)"""
    accelerator = accelerate.Accelerator(cpu=True)
    scale = 2.0**12
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    penalty = prepare_penalty(accelerator, Lazy(BanachR1("sobolev:s=-1", gamma=3.0), every=1))
    inner = penalty.penalty if hasattr(penalty, "penalty") else None
    assert isinstance(inner, BanachR1) and inner.grad_scaler is accelerator.scaler
    scaled_by_penalty = []
    scale_fn = accelerator.scaler.scale

    def spy(outputs):  # type: ignore[no-untyped-def]
        scaled_by_penalty.append(outputs)
        return scale_fn(outputs)

    accelerator.scaler.scale = spy  # type: ignore[method-assign]
    grads = []
    for pen in (penalty, BanachR1("sobolev:s=-1", gamma=3.0)):
        d = critic()
        real = torch.randn(5, 1, 3, 4, generator=torch.Generator().manual_seed(3))
        value = pen(d, real)
        if pen is penalty:
            # The penalty itself asked the scaler for the scale of its input gradient.
            assert len(scaled_by_penalty) == 1
            accelerator.backward(value)
        else:
            value.backward()
        grads.append([p.grad.clone() for p in d.parameters() if p.grad is not None])
    for scaled, plain in zip(*grads, strict=True):
        torch.testing.assert_close(scaled / scale, plain)


def test_penalty_under_bfloat16_autocast() -> None:
    accelerator = accelerate.Accelerator(cpu=True, mixed_precision="bf16")
    penalty = prepare_penalty(accelerator, BanachGP("sobolev:s=-1", gamma="auto"))
    d, real, fake = critic(), torch.randn(6, 1, 3, 4), torch.randn(6, 1, 3, 4)
    torch.manual_seed(4)
    with accelerator.autocast():
        assert torch.is_autocast_enabled("cpu")
        value = penalty(d, real, fake)
    torch.manual_seed(4)
    exact = BanachGP("sobolev:s=-1", gamma="auto")(d, real, fake)
    assert value.dtype == torch.float32  # norms and estimates are taken in float32
    torch.testing.assert_close(value, exact, rtol=0.05, atol=1e-3)


def test_penalty_state_in_save_state_and_load_state(tmp_path: Path) -> None:
    accelerator = accelerate.Accelerator(cpu=True)
    penalty = prepare_penalty(accelerator, BanachGP("lp:p=3", lam="auto", gamma="auto"))
    train(accelerator, penalty)
    accelerator.save_state(str(tmp_path / "state"))
    for norm, ok in (("lp:p=3", True), ("lp:p=4", False)):
        AcceleratorState._reset_state(reset_partial_state=True)
        again = accelerate.Accelerator(cpu=True)
        fresh = prepare_penalty(again, BanachGP(norm, lam="auto", gamma="auto"))
        if ok:
            again.load_state(str(tmp_path / "state"))
            assert int(fresh.calibration.count) == 18
            assert (fresh.lam, fresh.gamma) == (penalty.lam, penalty.gamma)
        else:
            with pytest.raises(RuntimeError, match="norm"):
                again.load_state(str(tmp_path / "state"))
            assert int(fresh.calibration.count) == 0


def test_reduced_stats_single_process() -> None:
    accelerator = accelerate.Accelerator(cpu=True)
    penalty = prepare_penalty(accelerator, BanachGP())
    with pytest.raises(RuntimeError, match="no statistics yet"):
        reduced_stats(accelerator, penalty)
    penalty(critic(), torch.randn(4, 1, 3, 4), torch.randn(4, 1, 3, 4))
    assert penalty.stats is not None
    assert reduced_stats(accelerator, penalty) == pytest.approx(penalty.stats.as_dict())


def test_bad_configuration_fails_clearly() -> None:
    accelerator = accelerate.Accelerator(cpu=True)
    with pytest.raises(TypeError, match="lipreg penalty module"):
        prepare_penalty(accelerator, lambda c, r, f: r.sum())  # type: ignore[type-var]
    with pytest.raises(ValueError, match="unknown norm"):
        prepare_penalty(accelerator, BanachGP("sobolv:s=1"))


def lp(x: torch.Tensor, p: float) -> torch.Tensor:
    return x.abs().pow(p).sum(1).pow(1 / p)


@pytest.mark.slow
def test_two_processes_share_lam_and_gamma(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               str(STANDINS / "accelerate_ddp.py"), str(tmp_path)]  # fmt: skip
    subprocess.run(command, check=True, env=env, cwd=tmp_path, timeout=120, capture_output=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["world_size"] == 2
    # Independent computation of E||X||_3 and E||X||_{3/2} over both ranks' real batches.
    reals = []
    for r in range(2):
        gen = torch.Generator().manual_seed(100 + r)
        for _ in range(3):
            reals.append(torch.randn(5, 4, generator=gen) + r)
            torch.randn(5, 4, generator=gen)
    x = torch.cat(reals).double()
    expected = torch.stack([lp(x, 3).mean(), lp(x, 1.5).mean()]).float()
    for r in ranks:
        assert int(r["penalty"]["calibration.count"]) == 30
        torch.testing.assert_close(r["penalty"]["calibration.means"], expected)
    for a, b in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        torch.testing.assert_close(a, b)  # gradients were all-reduced
    # reduced statistics: identical on both ranks, the mean (max) of the local ones
    assert ranks[0]["stats"] == ranks[1]["stats"]
    local = [r["local_stats"] for r in ranks]
    assert ranks[0]["stats"]["dual_norm_mean"] == pytest.approx(
        (local[0]["dual_norm_mean"] + local[1]["dual_norm_mean"]) / 2
    )
    assert ranks[0]["stats"]["dual_norm_max"] == max(s["dual_norm_max"] for s in local)
