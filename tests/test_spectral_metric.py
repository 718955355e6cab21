"""The spectral metric (lipreg.train.metrics.spectral) against independent computations: the
spectrum against explicit DFT sums and a brute-force radial binning loop, Parseval, the scores
against their formulas; the properties reported on docs/metrics.md in small form; and the
trainer's evaluations logging it for digits and for photo patches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from train_helpers import image_config, write_cifar

from conftest import gaussian_blur
from lipreg.train.data import DATASETS
from lipreg.train.data.base import resize
from lipreg.train.data.embedded import digits
from lipreg.train.evaluate import describe_metrics
from lipreg.train.metrics import spectral
from lipreg.train.metrics.spectral import NOISE_FLOOR, SpectralQuality, radial_power_spectrum

KEYS = {"metric/spectral_distance", "metric/spectral_hf_distance", "metric/spectral_hf_excess"}


def periodic_component(u: np.ndarray) -> np.ndarray:
    """Moisan's periodic component ``u - s`` of one image ``u`` [H, W]: ``s`` solves the periodic
    Poisson equation ``lap s = v`` (mean 0) for the border jumps ``v``, here as a dense
    least-squares problem with the Laplacian written out pixel by pixel."""
    h, w = u.shape
    v = np.zeros((h, w))
    for j in range(w):
        v[0, j] += u[h - 1, j] - u[0, j]
        v[h - 1, j] += u[0, j] - u[h - 1, j]
    for i in range(h):
        v[i, 0] += u[i, w - 1] - u[i, 0]
        v[i, w - 1] += u[i, 0] - u[i, w - 1]
    lap = np.zeros((h * w, h * w))
    for i in range(h):
        for j in range(w):
            row = i * w + j
            lap[row, row] -= 4
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                lap[row, (i + di) % h * w + (j + dj) % w] += 1
    smooth = np.linalg.lstsq(lap, v.ravel(), rcond=None)[0]  # minimum norm: mean 0
    return u - smooth.reshape(h, w)


def brute_spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean radius, power, count) per bin 1..K of images ``x`` [N, C, H, W], from the periodic
    components, explicit DFT sums over the pixels and one loop over the coefficients."""
    n, c, h, w = x.shape
    ky, ny = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
    kx, nx = np.meshgrid(np.arange(w), np.arange(w), indexing="ij")
    dft_h, dft_w = np.exp(-2j * np.pi * ky * ny / h), np.exp(-2j * np.pi * kx * nx / w)
    power = np.zeros((h, w))
    for image in x.reshape(n * c, h, w):
        coefficients = dft_h @ periodic_component(image) @ dft_w.T  # sum_n p(n) e^{-2 pi i k.n}
        power += np.abs(coefficients) ** 2 / (h * w) ** 2 / (n * c)
    sums: dict[int, list[float]] = {}
    for i in range(h):
        for j in range(w):
            if i == j == 0:
                continue
            fy = (i if i <= (h - 1) // 2 else i - h) / h  # signed frequency, cycles per pixel
            fx = (j if j <= (w - 1) // 2 else j - w) / w
            rho = math.hypot(fy, fx)
            b = max(1, math.floor(rho * min(h, w) + 0.5))
            sums.setdefault(b, [0.0, 0.0, 0.0])
            sums[b][0] += rho
            sums[b][1] += power[i, j]
            sums[b][2] += 1
    bins = sorted(sums)
    assert bins == list(range(1, len(bins) + 1)), "a bin is empty"
    count = np.array([sums[b][2] for b in bins])
    radius = np.array([sums[b][0] for b in bins]) / count
    return radius, np.array([sums[b][1] for b in bins]) / count, count


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    h=st.integers(4, 13),
    w=st.integers(4, 13),
    seed=st.integers(0, 2**31 - 1),
)
def test_spectrum_equals_explicit_dft_and_binning(
    n: int, c: int, h: int, w: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 0.5 + 0.3
    got = radial_power_spectrum(x)
    radius, power, count = brute_spectrum(x.numpy())
    np.testing.assert_allclose(got.radius.numpy(), radius, rtol=1e-12)
    np.testing.assert_allclose(got.power.numpy(), power, rtol=1e-9)
    np.testing.assert_array_equal(got.count.numpy(), count)
    # Parseval: the bins' total power is the mean pixel variance of the periodic components
    periodic = [periodic_component(u) for u in x.numpy().reshape(n * c, h, w)]
    variance = np.mean([p.var() for p in periodic])
    assert float((got.count * got.power).sum()) == pytest.approx(variance, rel=1e-9)
    delta = 1 / min(h, w)
    expected_high = (np.arange(1, len(count) + 1) - 0.5) * delta >= 0.25
    np.testing.assert_array_equal(got.high.numpy(), expected_high)
    assert got.high.any() and not got.high.all()


@pytest.mark.parametrize("shape", [(4, 4), (7, 9), (16, 16), (12, 5)])
def test_images_without_border_jumps_keep_all_their_variance(shape: tuple[int, int]) -> None:
    """Parseval for images whose opposite borders agree (their own periodic component)."""
    h, w = shape
    x = torch.randn(5, 2, h, w, dtype=torch.float64)
    x[..., -1, :] = x[..., 0, :]
    x[..., :, -1] = x[..., :, 0]
    s = radial_power_spectrum(x)
    variance = x.var(dim=(-2, -1), unbiased=False).mean()
    assert float((s.count * s.power).sum()) == pytest.approx(float(variance), rel=1e-12)


def test_bins_of_16x16_and_a_non_square_grid() -> None:
    s = radial_power_spectrum(torch.randn(2, 1, 16, 16))
    assert s.count.tolist() == [8, 12, 16, 32, 28, 40, 40, 38, 28, 8, 5]  # integer DFT radii
    assert s.high.tolist() == [False] * 4 + [True] * 7  # radius 5/16 .. 11/16
    # the top bin: (-8, +-7), (+-7, -8) and the corner (-8, -8)
    assert s.radius[-1] == pytest.approx((4 * math.sqrt(8**2 + 7**2) + math.sqrt(2 * 8**2)) / 80)
    # 8 x 32: bins of the coarser spacing 1/8; the fine axis's 1/32 and 2/32 join bin 1
    t = radial_power_spectrum(torch.randn(2, 1, 8, 32))
    assert len(t.count) == 6 and int(t.count.sum()) == 8 * 32 - 1


@pytest.mark.parametrize("shape", [(16, 16), (8, 12), (6, 10), (32, 8)])
def test_a_checkerboard_lands_in_the_top_bin(shape: tuple[int, int]) -> None:
    h, w = shape
    a = 0.3
    board = a * (-1.0) ** (torch.arange(h)[:, None] + torch.arange(w)[None, :])
    s = radial_power_spectrum(board.expand(3, 2, h, w))
    top = len(s.count) / min(h, w)  # the top bin's centre: it holds (1/2, 1/2), radius 0.707
    assert abs(top - 0.5 * 2**0.5) <= 0.5 / min(h, w)
    # the periodic component keeps 79 % (6x10) to 90 % (16x16) of the variance, almost all of
    # it in the top bin: the border's alternation counts as jumps
    energy = s.power * s.count
    assert float(energy[-1]) > 0.95 * float(energy.sum()) and energy.sum() > 0.75 * a**2
    assert torch.all(s.power[:-1] < 0.01 * s.power[-1])


def test_white_noise_has_a_nearly_flat_spectrum() -> None:
    """A DFT coefficient of white noise has the power sigma^2 / (H W); the periodic component
    keeps the high frequencies within 0.6 dB of it at 16x16 and moves some of the border's
    random jumps to the lowest bin (+1.7 dB)."""
    sigma = 0.2
    s = radial_power_spectrum(sigma * torch.randn(8000, 1, 16, 16, dtype=torch.float64))
    db = 10 * torch.log10(s.power / (sigma**2 / 256))
    assert db[s.high].abs().max() < 0.6 and db.abs().max() < 2.0, db


def test_the_memory_bound_does_not_change_the_spectrum(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(37, 3, 9, 10)
    whole = radial_power_spectrum(x)
    monkeypatch.setattr(spectral, "_CHUNK", 3 * 9 * 10 * 4)  # 4 images at a time
    parts = radial_power_spectrum(x)
    assert torch.allclose(parts.power, whole.power, rtol=1e-12)


def test_scores_follow_their_formulas() -> None:
    g = torch.Generator().manual_seed(1)
    real = torch.randn(50, 2, 10, 14, generator=g)
    fake = F.avg_pool2d(torch.randn(30, 2, 10, 14, generator=g), 3, 1, 1) * 3
    floor = 1e-4
    scores = SpectralQuality(real, noise_floor=floor)(fake)
    _, p_r, _ = brute_spectrum(real.double().numpy())
    _, p_g, count = brute_spectrum(fake.double().numpy())
    eps = floor / 140
    d = 10 * np.log10((p_g + eps) / (p_r + eps))
    high = (np.arange(1, len(count) + 1) - 0.5) / 10 >= 0.25
    assert scores.distance == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-9)
    assert scores.hf_distance == pytest.approx(np.sqrt(np.mean(d[high] ** 2)), rel=1e-9)
    assert scores.hf_excess == pytest.approx(np.mean(d[high]), rel=1e-9)
    np.testing.assert_allclose(scores.log_ratio.numpy(), d, rtol=1e-9)
    assert scores.floor == pytest.approx(eps)
    assert scores.real.dtype == scores.fake.dtype == torch.float64
    assert scores.scalars() == {
        "metric/spectral_distance": scores.distance,
        "metric/spectral_hf_distance": scores.hf_distance,
        "metric/spectral_hf_excess": scores.hf_excess,
    }
    assert scores.hf_excess < 0  # a box blur removes high frequencies


def test_the_floor_keeps_an_exactly_zero_spectrum_finite() -> None:
    """Flat images (a collapsed generator's) have no power at any frequency."""
    real = 0.1 * torch.randn(20, 1, 16, 16)
    scores = SpectralQuality(real)(torch.full((20, 1, 16, 16), 0.3))
    assert torch.all(scores.fake == 0)
    # the deficit is bounded by the floor: 10 log10(eps / (S_r + eps))
    eps = NOISE_FLOOR / 256
    bound = 10 * torch.log10(eps / (scores.real + eps))
    assert torch.allclose(scores.log_ratio, bound, rtol=1e-12)
    assert scores.hf_excess == pytest.approx(float(bound[scores.high].mean()))


def test_bad_input_is_refused_naming_the_argument() -> None:
    quality = SpectralQuality(torch.zeros(4, 1, 8, 8))
    cases: list[tuple[object, type[Exception], str]] = [
        ([[0.0]], TypeError, "samples must be a torch.Tensor"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.long), TypeError, "samples must be a floating"),
        (torch.zeros(4, 8, 8), ValueError, r"samples must be images \[N, C, H, W\].*unsqueeze"),
        (torch.zeros(4, 1, 3, 8), ValueError, "samples must be at least 4x4"),
        (torch.full((4, 1, 8, 8), math.nan), ValueError, "samples contains NaN"),
        (torch.zeros(4, 3, 8, 8), ValueError, r"reference's shape \[C, H, W\] = \[1, 8, 8\]"),
        (torch.zeros(0, 1, 8, 8), ValueError, "samples must be batch-first"),
    ]
    for x, error, message in cases:
        with pytest.raises(error, match=message):
            quality(x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference contains NaN"):
        SpectralQuality(torch.full((2, 1, 8, 8), math.inf))
    with pytest.raises(ValueError, match="images must be at least 4x4"):
        radial_power_spectrum(torch.zeros(2, 1, 8, 2))
    for floor in (0.0, -1.0):
        with pytest.raises(ValueError, match="noise_floor must be in"):
            SpectralQuality(torch.zeros(2, 1, 8, 8), noise_floor=floor)
    with pytest.raises(TypeError, match="noise_floor"):
        SpectralQuality(torch.zeros(2, 1, 8, 8), noise_floor=True)


# --------------------------------------------------------------------------------------
# validation: the properties reported on the docs page, in small form


@pytest.fixture(scope="module")
def digits16() -> tuple[torch.Tensor, SpectralQuality]:
    """The training digits at 16x16 and the metric against the held-out ones."""
    return resize(digits("train")[0], 16), SpectralQuality(resize(digits("test")[0], 16))


def test_real_digits_score_near_zero(digits16: tuple[torch.Tensor, SpectralQuality]) -> None:
    train, quality = digits16
    scores = quality(train)
    assert scores.distance < 0.2 and scores.hf_distance < 0.2 and abs(scores.hf_excess) < 0.1
    halves = SpectralQuality(train[::2])(train[1::2])
    assert halves.distance < 0.5 and abs(halves.hf_excess) < 0.3


def test_corruptions_are_detected_ordered_and_signed(
    digits16: tuple[torch.Tensor, SpectralQuality],
) -> None:
    train, quality = digits16
    g = torch.Generator().manual_seed(0)
    noise = [quality(train + s * torch.randn(train.shape, generator=g)) for s in (0.01, 0.03, 0.1)]
    board = (-1.0) ** (torch.arange(16)[:, None] + torch.arange(16)[None, :])
    boards = [quality(train + a * board) for a in (0.01, 0.03, 0.1)]
    blurred = [quality(gaussian_blur(train, sigma)) for sigma in (0.5, 1.0, 2.0)]
    blocky = F.interpolate(F.avg_pool2d(train, 2), scale_factor=2, mode="nearest")
    upsampled = [quality(train + t * (blocky - train)) for t in (0.25, 0.5, 1.0)]
    for family, sign in ((noise, 1), (boards, 1), (upsampled, 1), (blurred, -1)):
        excess = [s.hf_excess * sign for s in family]
        distance = [s.hf_distance for s in family]
        assert excess[0] > 0.5, excess  # detected, in the right direction
        assert excess == sorted(excess) and distance == sorted(distance)  # ordered by strength


# --------------------------------------------------------------------------------------
# the trainer


def test_every_held_out_split_is_a_registered_twin() -> None:
    for name, spec in DATASETS.items():
        if spec.held_out is not None:
            twin = DATASETS[spec.held_out]
            assert twin.held_out is None, name
            assert (twin.kind, twin.native_size, twin.needs_root) == (
                spec.kind,
                spec.native_size,
                spec.needs_root,
            ), name
    assert DATASETS["digits"].held_out == "digits-test"


def test_digits_evaluations_compare_with_the_held_out_digits(tmp_path: Path) -> None:
    from lipreg.train.loop import Trainer

    config = image_config(tmp_path / "run", data="digits", image_size=16, eval_samples=64)
    trainer = Trainer(config)
    evaluator = trainer.evaluator(tmp_path / "run")
    assert evaluator.spectral is not None
    held_out = resize(digits("test")[0], 16)  # as DigitsQuality and the trainer resize
    expected = radial_power_spectrum(held_out).power
    assert torch.equal(evaluator.spectral.reference.power, expected)
    values = evaluator.evaluate(0, trainer.sampler)
    assert set(values) == KEYS | {
        f"metric/digits_{k}" for k in ("fid", "classes", "kl", "confidence")
    }
    fake = evaluator.generate(trainer.sampler)
    assert evaluator.scores(fake) == values  # nothing slow was left out on digits
    assert SpectralQuality(held_out)(fake).scalars().items() <= values.items()


def test_cifar10_evaluations_compare_with_its_test_batch(tmp_path: Path) -> None:
    from lipreg.train.loop import Trainer

    batches = write_cifar(tmp_path / "cifar-10-batches-py", n=4)
    config = image_config(
        tmp_path / "run", data="cifar10", data_root=str(tmp_path), data_size=None, eval_samples=8
    )
    evaluator = Trainer(config).evaluator(tmp_path / "run")
    assert evaluator.spectral is not None
    pixels = batches["test_batch"][b"data"]
    assert isinstance(pixels, np.ndarray)
    test = torch.from_numpy(pixels).view(4, 3, 32, 32)
    expected = radial_power_spectrum(resize(test.float() / 127.5 - 1, 8)).power
    assert torch.allclose(evaluator.spectral.reference.power, expected, rtol=1e-6)


def test_patch_evaluations_compare_with_the_real_subset(tmp_path: Path) -> None:
    from lipreg.train.loop import Trainer

    trainer = Trainer(image_config(tmp_path / "run"))
    evaluator = trainer.evaluator(tmp_path / "run")
    assert evaluator.spectral is not None
    assert torch.equal(
        evaluator.spectral.reference.power, radial_power_spectrum(evaluator.real).power
    )
    values = evaluator.evaluate(0, trainer.sampler)
    assert set(values) == KEYS | {"metric/swd"}
    assert evaluator.scores(evaluator.generate(trainer.sampler)) == {
        k: v for k, v in values.items() if k != "metric/swd"
    }


def test_the_closing_line_states_the_spectral_metric() -> None:
    line = describe_metrics(
        {
            "metric/digits_fid": 20.0,
            "metric/spectral_distance": 2.14,
            "metric/spectral_hf_distance": 5.0,
            "metric/spectral_hf_excess": 4.34,
        }
    )
    assert line.endswith("spectral distance 2.1 dB, high frequencies +4.3 dB (excess)"), line
    blurred = describe_metrics({"metric/spectral_hf_excess": -3.0})
    assert blurred == "high frequencies -3.0 dB (deficit)"
    assert describe_metrics({"metric/spectral_hf_excess": 0.01}) == "high frequencies +0.0 dB"
