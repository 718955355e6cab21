"""lam = E||X||_B and gamma = E||X||_{B*}: running means, calibrate(), checkpoints and
averaging across processes."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import ConvCritic
from lipreg import BanachGP, Lp, Sobolev


def np_means(batches: list[torch.Tensor], p: float, q: float) -> tuple[float, float]:
    flat = np.concatenate([b.numpy().reshape(b.shape[0], -1) for b in batches])
    return np.linalg.norm(flat, ord=p, axis=1).mean(), np.linalg.norm(flat, ord=q, axis=1).mean()


def test_running_means_equal_closed_form_means() -> None:
    penalty = BanachGP(Lp(3), lam="auto", gamma="auto")
    critic = ConvCritic()
    batches = [torch.randn(b, 3, 8, 8) * (1 + i) for i, b in enumerate([8, 3, 16, 1, 5])]
    for real in batches:
        penalty(critic, real, torch.randn_like(real))
    lam, gamma = np_means(batches, 3, 1.5)
    assert penalty.lam == pytest.approx(lam, rel=1e-6)
    assert penalty.gamma == pytest.approx(gamma, rel=1e-6)
    assert int(penalty.calibration.count) == 33


def test_first_call_uses_its_own_batch_and_fixed_settings_stay_fixed() -> None:
    real = torch.randn(8, 3, 8, 8)
    penalty = BanachGP(Lp(10), lam=4.0, gamma="auto")
    penalty(ConvCritic(), real, torch.randn_like(real))
    assert penalty.lam == 4.0
    assert penalty.gamma == pytest.approx(np_means([real], 10, 10 / 9)[1], rel=1e-6)
    assert penalty.stats is not None and penalty.stats.gamma.item() == pytest.approx(penalty.gamma)


def test_eval_mode_does_not_update() -> None:
    critic = ConvCritic()
    penalty = BanachGP(Lp(3), lam="auto", gamma="auto").eval()
    real = torch.randn(4, 3, 8, 8)
    value = penalty(critic, real, real.flip(0))
    assert int(penalty.calibration.count) == 0  # nothing stored ...
    lam, _ = np_means([real], 3, 1.5)
    assert penalty.stats is not None  # ... but the batch's own means were used
    assert penalty.stats.lam.item() == pytest.approx(lam, rel=1e-6)
    assert torch.isfinite(value)
    penalty.train()(critic, real, real.flip(0))
    other = torch.randn(4, 3, 8, 8) * 5
    penalty.eval()(critic, other, other)
    assert penalty.lam == pytest.approx(lam, rel=1e-6)  # stored estimate, not other's
    assert penalty.stats.lam.item() == pytest.approx(lam, rel=1e-6)


def test_lam_before_any_estimate_explains() -> None:
    penalty = BanachGP(lam="auto")
    with pytest.raises(RuntimeError, match=r"calibrate\(batches\)"):
        _ = penalty.lam
    assert penalty.gamma == 1.0


def test_calibrate_from_a_loader_and_freeze() -> None:
    norm = Sobolev(s=-1.5)
    data = [(torch.randn(6, 3, 8, 8), torch.zeros(6)) for _ in range(4)]
    penalty = BanachGP(norm, lam="auto", gamma="auto").calibrate(data, max_batches=3)
    reals = [x for x, _ in data[:3]]
    lam = torch.cat([norm.norm(x) for x in reals]).mean().item()
    gamma = torch.cat([norm.dual(x) for x in reals]).mean().item()
    assert penalty.lam == pytest.approx(lam, rel=1e-6)
    assert penalty.gamma == pytest.approx(gamma, rel=1e-6)
    assert penalty.calibration.frozen
    penalty(ConvCritic(), data[3][0] * 10, data[3][0])  # frozen: training does not move it
    assert penalty.lam == pytest.approx(lam, rel=1e-6)
    assert int(penalty.calibration.count) == 18


def test_calibrate_without_freeze_keeps_refining() -> None:
    norm = Lp(4)
    first, second = torch.randn(10, 3, 8, 8), torch.randn(5, 3, 8, 8) * 3
    penalty = BanachGP(norm, lam="auto", gamma="auto").calibrate([first], freeze=False)
    penalty(ConvCritic(), second, second)
    lam, gamma = np_means([first, second], 4, 4 / 3)
    assert penalty.lam == pytest.approx(lam, rel=1e-6)
    assert penalty.gamma == pytest.approx(gamma, rel=1e-6)


@pytest.mark.parametrize(
    ("penalty", "batches", "error", "words"),
    [
        (BanachGP(), [torch.randn(2, 3, 8, 8)], ValueError, "both are fixed"),
        (BanachGP(lam="auto"), [], ValueError, "got no batches"),
        (BanachGP(lam="auto"), [torch.randn(2, 3, 8, 8), "oops"], TypeError, "first element"),
        (BanachGP(Sobolev(s=1), lam="auto"), [torch.randn(2, 8, 8)], ValueError, r"\[B, C, H, W\]"),
        (BanachGP(lam="auto"), [torch.full((2, 3), float("nan"))], ValueError, "non-finite"),
    ],
)
def test_bad_calibration_changes_nothing(penalty, batches, error, words) -> None:  # type: ignore[no-untyped-def]
    real = torch.randn(4, 3, 8, 8)
    if penalty.calibration.auto:
        penalty.calibrate([real], freeze=False)
    before = {k: v.clone() for k, v in penalty.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(error, match=words):
        penalty.calibrate(batches)
    after = penalty.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert not penalty.calibration.frozen


def test_calibrate_rejects_a_bad_max_batches() -> None:
    with pytest.raises(ValueError, match="max_batches must be a positive integer"):
        BanachGP(lam="auto").calibrate([torch.randn(2, 3)], max_batches=0)


@pytest.mark.parametrize("batch", [(), ["images"], {"x": torch.randn(2, 3)}])
def test_calibrate_rejects_batches_without_samples(batch: object) -> None:
    with pytest.raises(TypeError, match=r"calibrate\(\) expects batches that are tensors"):
        BanachGP(lam="auto").calibrate([batch])


def test_state_dict_round_trip_through_a_weights_only_checkpoint() -> None:
    penalty = BanachGP("lp:p=10", lam="auto", gamma="auto")
    penalty.calibrate([torch.randn(7, 3, 8, 8)], freeze=True)
    buffer = io.BytesIO()
    torch.save(penalty.state_dict(), buffer)
    buffer.seek(0)
    restored = BanachGP("lp:p=10", lam="auto", gamma="auto")
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.lam == penalty.lam and restored.gamma == penalty.gamma
    assert restored.calibration.frozen and int(restored.calibration.count) == 7


def test_loading_another_norms_state_is_refused_and_changes_nothing() -> None:
    source = BanachGP(Lp(10), lam="auto", gamma="auto").calibrate([torch.randn(5, 3, 8, 8)])
    target = BanachGP(Sobolev(s=-1.5), lam="auto", gamma="auto")
    target.calibrate([torch.randn(3, 3, 8, 8)], freeze=False)
    lam, gamma = target.lam, target.gamma
    with pytest.raises(RuntimeError, match=r"nothing was loaded: .*saved for norm 'lp:p=10'"):
        target.load_state_dict(source.state_dict())
    state = source.state_dict()
    state["_extra_state"] = {"norm": target.norm.spec}
    state["calibration.count"] = torch.zeros(3)
    with pytest.raises(RuntimeError, match="nothing was loaded"):
        target.load_state_dict(state)
    assert (target.lam, target.gamma) == (lam, gamma) and not target.calibration.frozen


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("calibration.means", torch.tensor([float("nan"), 1.0]), "finite non-negative means"),
        ("calibration.means", torch.tensor([1.0, float("inf")]), "finite non-negative means"),
        ("calibration.means", torch.tensor([-1.0, 1.0]), "finite non-negative means"),
        ("calibration.count", torch.tensor(-3), "non-negative integer count"),
        ("calibration.count", torch.tensor(2.5), "non-negative integer count"),
        ("calibration.count", torch.tensor(True), "non-negative integer count"),
        ("_extra_state", "l2", "_extra_state: expected {'norm': spec}"),
        ("_extra_state", {"norm": 2}, "_extra_state: expected {'norm': spec}"),
    ],
)
def test_state_with_bad_values_is_refused(key: str, value: object, words: str) -> None:
    """Values a running mean cannot have (NaN, negative norms, fractional or negative counts)
    and a malformed norm record are refused before anything is loaded."""
    source = BanachGP(lam="auto", gamma="auto").calibrate([torch.randn(5, 3, 8, 8)])
    state = source.state_dict()
    state[key] = value
    target = BanachGP(lam="auto", gamma="auto")
    target.calibrate([torch.randn(3, 3, 8, 8)], freeze=False)
    lam, gamma = target.lam, target.gamma
    with pytest.raises(RuntimeError, match="nothing was loaded") as info:
        target.load_state_dict(state)
    assert words in str(info.value)
    assert "but the penalty uses" not in str(info.value)  # not "saved for 'l2', uses 'l2'"
    assert (target.lam, target.gamma) == (lam, gamma) and not target.calibration.frozen
    assert int(target.calibration.count) == 3


def _distributed_worker(rank: int, world: int, init_file: str, results: dict) -> None:  # type: ignore[type-arg]
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)
        real = torch.randn(3 + rank, 3, 8, 8) * (1 + rank)
        penalty = BanachGP(Lp(3), lam="auto", gamma="auto")
        penalty(ConvCritic(), real, real.flip(0))
        calibrated = BanachGP(Lp(3), lam="auto").calibrate([real, real[:1]])
        results[rank] = (real, penalty.lam, penalty.gamma, calibrated.lam)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_estimates_are_averaged_across_processes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_distributed_worker, args=(2, os.fspath(tmp_path / "init"), results), nprocs=2)
        results = dict(results)
    reals = [results[r][0] for r in range(2)]
    lam, gamma = np_means(reals, 3, 1.5)
    calibrated_lam, _ = np_means([*reals, reals[0][:1], reals[1][:1]], 3, 1.5)
    for rank in range(2):
        _, rank_lam, rank_gamma, rank_calibrated = results[rank]
        assert rank_lam == pytest.approx(lam, rel=1e-6)
        assert rank_gamma == pytest.approx(gamma, rel=1e-6)
        assert rank_calibrated == pytest.approx(calibrated_lam, rel=1e-6)
