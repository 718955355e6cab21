"""The trainer's metrics against independent computations: W1 against brute force over
permutations, the sliced distance against closed forms, the Laplacian pyramid against
scipy.ndimage, FID against the closed form for Gaussians and scipy's sqrtm, KID and IS
against loops written out term by term, and the torch-fidelity glue against a stand-in."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import fidelity_state
from lipreg.train.metrics import (
    fid_from_features,
    frechet_distance,
    inception_metrics,
    inception_score,
    inception_unavailable,
    kid,
    laplacian_pyramid,
    sliced_wasserstein,
    swd,
    wasserstein1,
)
from lipreg.train.metrics import wasserstein as wasserstein_module
from lipreg.train.metrics.inception import WeightsError
from lipreg.train.metrics.wasserstein import _crop_offsets, _Descriptors, _nhood_centres

# --------------------------------------------------------------------------------------
# exact W1


def brute_w1(x: np.ndarray, y: np.ndarray) -> float:
    n = len(x)
    return min(
        sum(math.dist(x[i], y[p[i]]) for i in range(n)) / n
        for p in itertools.permutations(range(n))
    )


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    d=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_w1_equals_brute_force(n: int, d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, d, generator=g), 2 * torch.rand(n, d, generator=g)
    assert wasserstein1(x, y) == pytest.approx(brute_w1(x.double().numpy(), y.double().numpy()))


def test_w1_one_dimensional_closed_form() -> None:
    """In 1-D the monotone (sorted) coupling is optimal."""
    x, y = torch.randn(200, 1), torch.randn(200, 1) * 2 + 1
    closed = (x.double().sort(0).values - y.double().sort(0).values).abs().mean().item()
    assert wasserstein1(x, y) == pytest.approx(closed, rel=1e-12)
    assert wasserstein1(x, x[torch.randperm(200)]) == 0.0
    shift = torch.tensor([[3.0, 4.0]])
    z = torch.randn(50, 2)
    assert wasserstein1(z, z + shift) == pytest.approx(5.0, rel=1e-6)  # a translation


def test_w1_bad_input() -> None:
    with pytest.raises(ValueError) as info:
        wasserstein1(torch.zeros(3, 2), torch.zeros(4, 2))
    assert "equally many samples" in str(info.value)
    with pytest.raises(ValueError) as info:
        wasserstein1(torch.zeros(3, 2), torch.zeros(3, 3))
    assert "same dimension" in str(info.value)
    with pytest.raises(ValueError) as info:
        wasserstein1(torch.zeros(3, 2, 1), torch.zeros(3, 2, 1))
    assert "matrix [N, D]" in str(info.value)
    with pytest.raises(ValueError) as info:
        wasserstein1(torch.tensor([[math.nan, 0.0]]), torch.zeros(1, 2))
    assert "NaN" in str(info.value)
    with pytest.raises(TypeError):
        wasserstein1(np.zeros((3, 2)), torch.zeros(3, 2))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# sliced Wasserstein


def test_sliced_one_dimensional_is_w1() -> None:
    """In 1-D every direction is +-1, so the sliced distance is the sorted-sample W1."""
    a, b = torch.randn(300, 1, dtype=torch.float64), torch.rand(300, 1, dtype=torch.float64)
    closed = (a.sort(0).values - b.sort(0).values).abs().mean().item()
    assert sliced_wasserstein(a, b, directions=3, repeats=2) == pytest.approx(closed, rel=1e-12)


def test_sliced_translation_closed_form() -> None:
    """For b = a + v every projection shifts by theta.v, so SW = E|theta.v| over the sphere
    = ||v|| Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))."""
    d = 5
    a = torch.randn(64, d, dtype=torch.float64)
    v = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    expect = v.norm().item() * math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d + 1) / 2))
    g = torch.Generator().manual_seed(0)
    got = sliced_wasserstein(a, a + v, directions=4000, repeats=5, generator=g)
    assert got == pytest.approx(expect, rel=0.02)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_sliced_properties(n: int, d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + 1
    sw_ab = sliced_wasserstein(a, b, generator=torch.Generator().manual_seed(1))
    sw_ba = sliced_wasserstein(b, a, generator=torch.Generator().manual_seed(1))
    assert sw_ab == pytest.approx(sw_ba, rel=1e-6)  # symmetric
    assert sw_ab <= wasserstein1(a, b) + 1e-6  # projections are 1-Lipschitz
    assert sliced_wasserstein(a, a[torch.randperm(n)]) == pytest.approx(0.0, abs=1e-6)


def scipy_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """Progressive GAN's own construction with scipy.ndimage (mode='mirror' = d c b|a b c d)."""
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None] / 256.0
    pyr = [images]
    for _ in range(levels - 1):
        down = scipy.ndimage.convolve(pyr[-1], k, mode="mirror")[:, :, ::2, ::2]
        up = np.zeros_like(pyr[-1])
        up[:, :, ::2, ::2] = down
        pyr[-1] = pyr[-1] - scipy.ndimage.convolve(up, 4 * k, mode="mirror")
        pyr.append(down)
    return pyr


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (1, 1, 15, 20)])
def test_laplacian_pyramid_matches_scipy_and_reconstructs(shape: tuple[int, ...]) -> None:
    images = torch.randn(shape, dtype=torch.float64)
    pyr = laplacian_pyramid(images, 3)
    ref = scipy_pyramid(images.numpy(), 3)
    assert [p.shape for p in pyr] == [r.shape for r in ref]
    for p, r in zip(pyr, ref, strict=True):
        assert np.allclose(p.numpy(), r, atol=1e-12)
    # collapse: add the levels back from the coarsest
    up = pyr[-1]
    for level in reversed(pyr[:-1]):
        z = torch.zeros_like(level)
        z[:, :, ::2, ::2] = up
        k = torch.tensor(4 * np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0)
        blurred = torch.nn.functional.conv2d(
            torch.nn.functional.pad(z, (2, 2, 2, 2), mode="reflect"),
            k.expand(shape[1], 1, 5, 5),
            groups=shape[1],
        )
        up = level + blurred
    assert torch.allclose(up, images, atol=1e-12)


def test_neighbourhoods_are_whole_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Descriptors are k x k crops of their own image, inside it, centres spread uniformly;
    normalised per channel, the same in blocks of any size."""
    n, c, h, w, k, per = 3, 2, 12, 10, 5, 400
    level = torch.arange(n * c * h * w, dtype=torch.float64).reshape(n, c, h, w)
    centres = _nhood_centres(level.shape, k, per, torch.Generator().manual_seed(0))
    corners, pattern = _crop_offsets(centres, per, level.shape, k)
    crops = level.reshape(-1)[corners[:, None] + pattern].view(-1, c, k, k)
    assert crops.shape == (n * per, c, k, k)
    for m in range(0, n * per, 37):
        v = crops[m].long()
        img, ch = v // (c * h * w), v % (c * h * w) // (h * w)
        y, x = v % (h * w) // w, v % w
        assert (img == m // per).all() and (ch == torch.arange(c)[:, None, None]).all()
        assert (y == y[:, :1, :1] + torch.arange(k)[:, None]).all()  # contiguous rows
        assert (x == x[:, :1, :1] + torch.arange(k)).all()  # contiguous columns
    rows = (crops[:, 0, k // 2, k // 2].long() % (h * w)) // w
    assert rows.min() == k // 2 and rows.max() == h - 1 - k // 2  # every row reachable
    descriptors = _Descriptors(level, centres, k, per)
    raw = torch.cat([d for _, d in descriptors.raw()])
    torch.testing.assert_close(raw, crops.flatten(1))
    desc = (raw - descriptors.mean) / descriptors.std
    assert desc.shape == (n * per, c * k * k)
    per_channel = desc.reshape(-1, c, k * k).transpose(0, 1).reshape(c, -1)
    zeros = torch.zeros(c, dtype=torch.float64)
    assert torch.allclose(per_channel.mean(1), zeros, atol=1e-9)
    assert torch.allclose(per_channel.std(1, unbiased=False), zeros + 1)
    monkeypatch.setattr(wasserstein_module, "BLOCK", 16 * 7 * c * k * k)
    blocks = list(_Descriptors(level, centres, k, per).raw())
    assert len(blocks) == math.ceil(n * per / 7) and [s for s, _ in blocks[:2]] == [0, 7]
    torch.testing.assert_close(torch.cat([d for _, d in blocks]), raw)


def reference_swd(real: torch.Tensor, fake: torch.Tensor, k: int, per: int, dirs: int, reps: int,
                  levels: int, seed: int) -> list[float]:  # fmt: skip
    """Progressive GAN's SWD with every descriptor in memory, crops cut one by one: per level
    the neighbourhood centres (rows, then columns, as torch.randint draws them), each set's
    descriptors normalised per channel, then the sliced distance on them."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for lr, lf in zip(
        laplacian_pyramid(real, levels), laplacian_pyramid(fake, levels), strict=True
    ):
        n, _, h, w = lr.shape
        r = k // 2
        cy = torch.randint(r, h - r, (n * per,), generator=gen)
        cx = torch.randint(r, w - r, (n * per,), generator=gen)
        sets = []
        for level in (lr, lf):
            crops = torch.stack([
                level[m // per, :, cy[m] - r : cy[m] + r + 1, cx[m] - r : cx[m] + r + 1]
                for m in range(n * per)
            ])  # fmt: skip
            mean = crops.double().mean(dim=(0, 2, 3), keepdim=True)
            std = crops.double().std(dim=(0, 2, 3), keepdim=True, unbiased=False)
            sets.append(((crops - mean) / std).flatten(1).to(level.dtype))
        sw = sliced_wasserstein(sets[0], sets[1], directions=dirs, repeats=reps, generator=gen)
        out.append(1e3 * sw)
    return out


@pytest.mark.parametrize("block", [10**9, 3000, 100])
def test_swd_in_blocks_equals_the_whole_computation(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, fake = smooth(6, 16, 0.2, seed=3), smooth(6, 16, 0.3, seed=4)
    monkeypatch.setattr(wasserstein_module, "BLOCK", block)
    got = swd(real, fake, nhood_size=5, nhoods_per_image=20, directions=9, repeats=3,
              min_resolution=8, seed=5)  # fmt: skip
    want = reference_swd(real, fake, k=5, per=20, dirs=9, reps=3, levels=2, seed=5)
    assert got.levels == pytest.approx(want, rel=1e-6)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any torch operation returns inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


def test_swd_memory_is_bounded_whatever_the_number_of_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beside the images and their pyramids, swd holds at most BLOCK numbers at once: no
    tensor of all the descriptors (N * 128 * C * 49) or all their projections."""
    monkeypatch.setattr(wasserstein_module, "BLOCK", 2**16)
    real, fake = smooth(64, 32, 0.2, seed=0), smooth(64, 32, 0.3, seed=1)
    with LargestTensor() as largest:
        swd(real, fake, directions=32, repeats=2)
    assert largest.numel <= max(2**16, 2 * real.numel()), largest.numel  # padding: 36^2 / 32^2


def smooth(n: int, size: int, cutoff: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    spec = torch.fft.fft2(torch.randn(n, 3, size, size, generator=g))
    k = torch.fft.fftfreq(size).abs()
    mask = ((k[:, None] ** 2 + k[None, :] ** 2).sqrt() <= cutoff).to(spec.dtype)
    x = torch.fft.ifft2(spec * mask).real
    return x / x.abs().amax(dim=(1, 2, 3), keepdim=True)


def test_swd_properties() -> None:
    real = smooth(16, 32, 0.1, seed=0)
    same = smooth(16, 32, 0.1, seed=1)
    far = smooth(16, 32, 0.4, seed=2)
    result = swd(real, real, nhoods_per_image=32, directions=32, repeats=2)
    assert len(result.levels) == 2 and result.mean == 0.0  # 32 and 16, as Progressive GAN
    near = swd(real, same, nhoods_per_image=32, directions=32, repeats=2)
    apart = swd(real, far, nhoods_per_image=32, directions=32, repeats=2)
    assert 0 < near.mean < apart.mean and all(
        a < b for a, b in zip(near.levels, apart.levels, strict=True)
    )
    back = swd(far, real, nhoods_per_image=32, directions=32, repeats=2)
    assert back.mean == pytest.approx(apart.mean, rel=0.1)  # symmetric up to sampling
    again = swd(real, far, nhoods_per_image=32, directions=32, repeats=2)
    assert again == apart  # seeded
    assert result.mean == sum(result.levels) / 2


def test_swd_single_level_and_descriptor_normalisation() -> None:
    """8x8 digits get one level; each set is normalised per channel, so an affine change of
    one set's grey levels is invisible (as in the reference)."""
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    assert len(swd(x, x.flip(0)).levels) == 1
    a = swd(x, 3 * x.flip(0) - 1, nhoods_per_image=16)
    b = swd(x, x.flip(0), nhoods_per_image=16)
    assert a.mean == pytest.approx(b.mean, rel=1e-9)
    # half-precision images are measured in float32
    half = swd(x.half(), x.flip(0).float(), nhoods_per_image=16)
    rounded = x.half().float()
    assert half.mean == pytest.approx(swd(rounded, x.flip(0).float(), nhoods_per_image=16).mean)


@pytest.mark.parametrize(
    ("kwargs", "error", "expect"),
    [
        ({"fake": torch.zeros(3, 3, 16, 16)}, ValueError, "same shape"),
        ({"real": torch.zeros(4, 48)}, ValueError, "images [N, C, H, W]"),
        ({"nhood_size": 6}, ValueError, "must be odd"),
        ({"nhood_size": 0}, ValueError, "nhood_size must be an integer >= 1"),
        ({"directions": 2.0}, TypeError, "directions must be an integer"),
        ({"nhood_size": 17}, ValueError, "smaller than the 17x17"),
    ],
)
def test_swd_bad_input(kwargs: dict[str, object], error: type[Exception], expect: str) -> None:
    args: dict[str, object] = {"real": torch.zeros(4, 3, 16, 16), "fake": torch.zeros(4, 3, 16, 16)}
    args.update(kwargs)
    with pytest.raises(error) as info:
        swd(**args)  # type: ignore[arg-type]
    assert expect in str(info.value)


# --------------------------------------------------------------------------------------
# FID


def test_frechet_commuting_closed_form() -> None:
    """Covariances diagonal in one rotated basis: the distance is
    ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    d = 6
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
    a, b = np.linspace(0.1, 3, d), np.linspace(2, 0.05, d)
    mu1, mu2 = np.arange(d, dtype=float), np.ones(d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expect = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    t = torch.from_numpy
    assert frechet_distance(t(mu1), t(s1), t(mu2), t(s2)) == pytest.approx(expect, rel=1e-10)
    diag = frechet_distance(t(mu1), t(np.diag(a)), t(mu2), t(np.diag(b)))
    assert diag == pytest.approx(expect, rel=1e-10)


def test_frechet_general_against_sqrtm_and_zero() -> None:
    rng = np.random.default_rng(1)
    d = 5
    m1, m2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = m1 @ m1.T, m2 @ m2.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    expect = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    t = torch.from_numpy
    assert frechet_distance(t(mu1), t(s1), t(mu2), t(s2)) == pytest.approx(expect, rel=1e-8)
    assert frechet_distance(t(mu1), t(s1), t(mu1), t(s1)) == pytest.approx(0.0, abs=1e-9)
    # a singular covariance (rank 1): round-off eigenvalues ~1e-16 have square roots ~1e-8
    low = np.outer(mu1, mu1)
    tol = 1e-6 * np.trace(low)
    assert frechet_distance(t(mu1), t(low), t(mu1), t(low)) == pytest.approx(0.0, abs=tol)


def test_fid_from_features_uses_mean_and_unbiased_covariance() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(30, 4)) * 2 + 1
    t = torch.from_numpy
    expect = frechet_distance(
        t(x.mean(0)), t(np.cov(x, rowvar=False)), t(y.mean(0)), t(np.cov(y, rowvar=False))
    )
    assert fid_from_features(t(x), t(y)) == pytest.approx(expect, rel=1e-12)
    # Gaussian samples: close to the closed form of their distributions
    g = torch.Generator().manual_seed(0)
    big_x = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    big_y = torch.randn(20000, 2, generator=g, dtype=torch.float64) * 2 + 1
    assert fid_from_features(big_x, big_y) == pytest.approx(2 + 2 * (2 - 1) ** 2, rel=0.03)


def test_fid_bad_input() -> None:
    z = torch.zeros(3)
    with pytest.raises(ValueError) as info:
        frechet_distance(z, torch.eye(3), z, torch.eye(2))
    assert "sigma2 must be a covariance [3, 3]" in str(info.value)
    with pytest.raises(ValueError) as info:
        frechet_distance(z, torch.triu(torch.ones(3, 3)), z, torch.eye(3))
    assert "symmetric" in str(info.value)
    with pytest.raises(ValueError) as info:
        fid_from_features(torch.zeros(1, 3), torch.zeros(5, 3))
    assert "at least 2 samples" in str(info.value)


# --------------------------------------------------------------------------------------
# KID and IS


def brute_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m, d = len(x), x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((sum(a[t] * b[t] for t in range(d)) / d + 1) ** 3)

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(9, 4)) + 0.5
    t = torch.from_numpy
    # a full-size subset is a permutation, which leaves the U-statistic unchanged
    mean, std = kid(t(x), t(y), subsets=3, subset_size=9)
    assert mean == pytest.approx(brute_mmd2(x, y), rel=1e-12) and std == pytest.approx(0, abs=1e-12)
    # subsets: the mean over the subsets numpy's RandomState(seed).choice draws
    big_x, big_y = rng.normal(size=(20, 3)), rng.normal(size=(25, 3))
    r = np.random.RandomState(5)
    values = []
    for _ in range(4):
        xi, yi = r.choice(20, 6, replace=False), r.choice(25, 6, replace=False)
        values.append(brute_mmd2(big_x[xi], big_y[yi]))
    mean, std = kid(t(big_x), t(big_y), subsets=4, subset_size=6, seed=5)
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert std == pytest.approx(np.std(values), rel=1e-10)


def test_kid_bad_input() -> None:
    with pytest.raises(ValueError) as info:
        kid(torch.zeros(5, 2), torch.zeros(8, 2), subset_size=6)
    assert "subset_size=6 exceeds" in str(info.value) and "<= 5" in str(info.value)
    with pytest.raises(ValueError) as info:
        kid(torch.zeros(5, 2), torch.zeros(8, 2), subset_size=1)
    assert "subset_size must be an integer >= 2" in str(info.value)


def direct_is(p: np.ndarray, splits: int) -> tuple[float, float]:
    n, k = p.shape
    scores = []
    for s in range(splits):
        rows = range(s * n // splits, (s + 1) * n // splits)
        marginal = [sum(p[i, c] for i in rows) / len(rows) for c in range(k)]
        kl = [
            sum(p[i, c] * math.log(p[i, c] / marginal[c]) for c in range(k) if p[i, c] > 0)
            for i in rows
        ]
        scores.append(math.exp(sum(kl) / len(rows)))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_direct() -> None:
    logits = torch.randn(23, 5, dtype=torch.float64) * 3
    p = logits.softmax(1).numpy()
    mean, std = inception_score(logits, splits=3)
    assert (mean, std) == pytest.approx(direct_is(p, 3), rel=1e-10)
    assert inception_score(probs=torch.from_numpy(p), splits=3) == pytest.approx((mean, std))
    # closed forms: confident and uniform over K classes gives K; one class for all gives 1
    onehot = torch.eye(4).repeat(5, 1)
    assert inception_score(probs=onehot, splits=1) == pytest.approx((4.0, 0.0))
    assert inception_score(probs=torch.full((8, 4), 0.25), splits=2) == pytest.approx((1.0, 0.0))


def test_inception_score_bad_input() -> None:
    with pytest.raises(TypeError) as info:
        inception_score()
    assert "exactly one of" in str(info.value)
    with pytest.raises(ValueError) as info:
        inception_score(probs=torch.ones(4, 3))
    assert "summing to 1" in str(info.value)
    with pytest.raises(ValueError) as info:
        inception_score(torch.zeros(4, 3), splits=5)
    assert "splits=5 exceeds the 4 samples" in str(info.value)


# --------------------------------------------------------------------------------------
# Inception through torch-fidelity


def test_inception_unavailable_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = inception_unavailable(tmp_path / "missing.pth")
    assert reason is not None and "does not exist" in reason
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as if not installed
    for path in (None, weights):
        reason = inception_unavailable(path)
        assert reason is not None and "\n" not in reason
        assert "torch-fidelity is not installed; pip install torch-fidelity" in reason
        assert "--no-inception" in reason
    with pytest.raises(RuntimeError) as info:
        inception_metrics(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), weights)
    assert "torch-fidelity is not installed" in str(info.value)


def test_a_broken_torch_fidelity_is_one_line_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed beside a torch it does not match, torch-fidelity fails in torchvision's import
    (RuntimeError: operator torchvision::nms does not exist): a package that fails alike."""
    package = tmp_path / "site" / "torch_fidelity"
    package.mkdir(parents=True)
    init = package / "__init__.py"
    init.write_text('raise RuntimeError("operator torchvision::nms does not exist\\n at line 1")\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "torch_fidelity", raising=False)
    reason = inception_unavailable()
    assert reason is not None and "\n" not in reason
    assert (
        "torch-fidelity is installed but cannot be imported (RuntimeError: operator "
        "torchvision::nms does not exist at line 1)"
    ) in reason
    assert f"torchvision built for this torch {torch.__version__}" in reason
    # a module missing inside torch-fidelity is a broken install, not a missing torch-fidelity
    init.write_text("import torchvision_absent_here\n")
    reason = inception_unavailable()
    assert reason is not None and "cannot be imported (ModuleNotFoundError" in reason


def test_inception_metrics_through_a_stand_in(tmp_path: Path, fidelity: dict[str, Any]) -> None:
    """torch-fidelity is not installed here: its stand-in checks the glue (the weights' tensors,
    uint8 RGB input, features to our formulas)."""
    weights = tmp_path / "inception.pth"
    torch.save(fidelity_state(), weights)
    assert inception_unavailable(weights) is None

    real = torch.rand(12, 1, 8, 8) * 2 - 1
    fake = torch.rand(10, 1, 8, 8) * 2 - 1
    out = inception_metrics(real, fake, weights, batch_size=5, splits=2, kid_subsets=3)
    assert fidelity["name"] == "inception-v3-compat"
    assert torch.equal(fidelity["state"]["proj"], fidelity_state()["proj"])
    assert fidelity["features"] == ["2048", "logits_unbiased"]
    extractor = fidelity["extractor"]("x", [], weights)
    u8 = [((x.expand(-1, 3, -1, -1) + 1) * 127.5).round().to(torch.uint8) for x in (real, fake)]
    fr, _ = extractor(u8[0])
    ff, lf = extractor(u8[1])
    assert out["metric/fid"] == pytest.approx(fid_from_features(fr, ff))
    assert (out["metric/kid"], out["metric/kid_std"]) == pytest.approx(
        kid(fr, ff, subsets=3, subset_size=10)
    )
    assert (out["metric/is"], out["metric/is_std"]) == pytest.approx(inception_score(lf, splits=2))
    assert sorted(out) == [
        "metric/fid",
        "metric/is",
        "metric/is_std",
        "metric/kid",
        "metric/kid_std",
    ]


def test_inception_metrics_read_tensors_only_and_refuse_degenerate_weights(
    tmp_path: Path, fidelity: dict[str, Any]
) -> None:
    """The file is never unpickled (a pickled callable is refused, not called), and weights
    that give every real image the same features (IS 1, FID 0 for any generator) raise."""
    real, fake = torch.rand(6, 3, 8, 8) * 2 - 1, torch.rand(6, 3, 8, 8) * 2 - 1
    hostile = tmp_path / "hostile.pth"
    torch.save({"proj": Path.touch}, hostile)  # a global only a full unpickling resolves
    with pytest.raises(WeightsError) as info:
        inception_metrics(real, fake, hostile)
    assert "cannot be loaded as plain tensors (torch.load with weights_only=True" in str(info.value)
    assert "weights_only=False" not in str(info.value) and "path" not in fidelity
    zeros = tmp_path / "zeros.pth"
    torch.save({"proj": torch.zeros(192, 16)}, zeros)
    with pytest.raises(WeightsError) as info:
        inception_metrics(real, fake, zeros)
    assert "the same features for every image" in str(info.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({"proj": torch.ones(192, 8), "extra": torch.ones(1)}, wrong)
    with pytest.raises(WeightsError) as info:
        inception_metrics(real, fake, wrong)
    assert "unexpected extra" in str(info.value)
    assert "proj has shape [192, 8], the network's is [192, 16]" in str(info.value)


_PEAK = """
import resource, sys, torch
import lipreg.train.metrics.wasserstein as w
w.BLOCK = 2**18
n = int(sys.argv[1])
g = torch.Generator().manual_seed(0)
real, fake = (torch.rand(n, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
w.swd(real, fake, directions=16, repeats=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.slow
def test_swd_peak_memory_grows_with_the_images_only() -> None:
    """The real peak (convolution buffers included) grows by the images and their pyramids,
    about 60 kB per 32x32 image for both sets, not by every descriptor (150 kB) or the
    pyramid's convolution buffer (400 kB)."""
    growth = {}
    for n in (64, 512):
        done = subprocess.run(
            [sys.executable, "-c", _PEAK, str(n)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        growth[n] = int(done.stdout) * 1024  # ru_maxrss is in KiB on Linux
    per_image = (growth[512] - growth[64]) / (512 - 64)
    assert per_image < 200_000, per_image
