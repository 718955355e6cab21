"""The digits quality metric: its classifier, its formulas against independent computations,
and the validation properties the docs report (small, fast forms)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from conftest import gaussian_blur
from lipreg.train.data import load_dataset
from lipreg.train.data.base import resize
from lipreg.train.data.embedded import digits
from lipreg.train.metrics.digits import DigitsQuality
from lipreg.train.metrics.digits_net import (
    WEIGHTS_SHA256,
    accuracy,
    load_classifier,
    shipped_weights,
    to_8x8,
    train_classifier,
    weights_sha256,
)


@pytest.fixture(scope="module")
def quality() -> DigitsQuality:
    return DigitsQuality()


@pytest.fixture(scope="module")
def train_set() -> tuple[torch.Tensor, torch.Tensor]:
    return digits("train")


# --------------------------------------------------------------------------------------
# the split and the classifier


def test_split_is_every_third_digit_and_disjoint() -> None:
    all_images, all_labels = digits("all")
    test_images, test_labels = digits("test")
    train_images, _ = digits("train")
    assert len(test_images) == 599 and len(train_images) == 1198
    assert torch.equal(test_images, all_images[::3]) and torch.equal(test_labels, all_labels[::3])
    keep = torch.ones(len(all_images), dtype=torch.bool)
    keep[::3] = False
    assert torch.equal(train_images, all_images[keep])
    data, held_out = load_dataset("digits"), load_dataset("digits-test")
    assert len(data) == 1198 and len(held_out) == 599
    assert torch.equal(held_out.take(torch.arange(599)), test_images)


def test_shipped_weights_match_their_hash_and_classify_held_out_digits() -> None:
    net = load_classifier()
    assert weights_sha256(net.state_dict()) == WEIGHTS_SHA256
    images, labels = digits("test")
    assert accuracy(net, images, labels) > 0.97
    # through the resizing path that generated samples take
    assert accuracy(net, resize(images, 16), labels) > 0.95


def test_damaged_weights_are_refused(tmp_path: Path) -> None:
    state = torch.load(shipped_weights(), weights_only=True)
    first = next(iter(state))
    state[first].view(-1)[0] += 1e-3
    path = tmp_path / "damaged.pt"
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="damaged or not the shipped ones"):
        load_classifier(path)
    # a file of the user's own (retrained) is loaded as it is
    assert weights_sha256(DigitsQuality(weights=path).net.state_dict()) == weights_sha256(state)


def test_training_is_deterministic() -> None:
    a = train_classifier(epochs=1, seed=3).state_dict()
    b = train_classifier(epochs=1, seed=3).state_dict()
    assert weights_sha256(a) == weights_sha256(b)
    c = train_classifier(epochs=1, seed=4).state_dict()
    assert weights_sha256(a) != weights_sha256(c)


def test_to_8x8_is_the_block_mean() -> None:
    x = torch.randn(3, 1, 32, 32)
    expected = x.view(3, 1, 8, 4, 8, 4).mean((3, 5))
    assert torch.allclose(to_8x8(x), expected, atol=1e-6)
    assert torch.equal(to_8x8(x[:, :, :8, :8]), x[:, :, :8, :8])
    assert to_8x8(torch.randn(2, 1, 12, 12)).shape == (2, 1, 8, 8)


# --------------------------------------------------------------------------------------
# the scores against independent computations


# Features of units that never fire make the covariances singular; sqrtm still converges.
@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_scores_follow_their_formulas(quality: DigitsQuality) -> None:
    images, _ = digits("train")
    samples = images[:300] + 0.3 * torch.rand(300, 1, 8, 8)
    scores = quality(samples)
    real_f, real_p = quality.embed(digits("test")[0])
    fake_f, fake_p = quality.embed(samples)
    # Frechet distance with scipy's matrix square root, as in the FID reference code
    a, b = real_f.numpy(), fake_f.numpy()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    fid = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert scores.fid == pytest.approx(fid, rel=1e-5, abs=1e-4)
    # class histograms, KL(p_g || p_r), coverage and confidence by hand
    p_r = np.bincount(real_p.numpy().argmax(1), minlength=10) / len(real_p)
    p_g = np.bincount(fake_p.numpy().argmax(1), minlength=10) / len(fake_p)
    kl = sum(pg * math.log(pg / pr) for pg, pr in zip(p_g, p_r, strict=True) if pg > 0)
    assert scores.kl == pytest.approx(kl, abs=1e-9)
    assert scores.classes == sum(pg >= 0.5 * pr for pg, pr in zip(p_g, p_r, strict=True))
    assert scores.histogram == pytest.approx(p_g.tolist())
    assert scores.confidence == pytest.approx(float(fake_p.max(1).values.mean()))
    assert set(scores.scalars()) == {
        "metric/digits_fid",
        "metric/digits_classes",
        "metric/digits_kl",
        "metric/digits_confidence",
    }


def test_batches_do_not_change_the_embedding(quality: DigitsQuality) -> None:
    images = digits("test")[0][:50]
    small = DigitsQuality(batch_size=7)
    for a, b in zip(quality.embed(images), small.embed(images), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bad_samples_are_refused(quality: DigitsQuality) -> None:
    cases = [
        (torch.zeros(4, 3, 8, 8), "grey-level images"),
        (torch.zeros(4, 1, 4, 4), "at least 8x8"),
        (torch.full((4, 1, 8, 8), float("nan")), "NaN"),
        (torch.zeros(1, 1, 8, 8), "at least 2 images"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.long), "floating-point"),
    ]
    for x, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            quality(x)
    with pytest.raises(ValueError, match="min_share"):
        DigitsQuality(min_share=0.0)
    with pytest.raises(ValueError, match="reference= of that side"):
        quality(torch.zeros(4, 1, 8, 16))


# --------------------------------------------------------------------------------------
# validation: the properties reported on the docs page, in small form


@pytest.mark.parametrize("side", [8, 16])
def test_real_digits_score_as_real(
    quality: DigitsQuality, train_set: tuple[torch.Tensor, torch.Tensor], side: int
) -> None:
    images = train_set[0] if side == 8 else resize(train_set[0], side)
    scores = quality(images)
    assert scores.fid < 5 and scores.classes == 10 and scores.kl < 0.02
    assert scores.confidence > 0.95
    noise = quality(torch.rand(1000, 1, side, side) * 2 - 1)
    assert noise.fid > 50 * scores.fid


def test_blur_ranks_monotonically(
    quality: DigitsQuality, train_set: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images = resize(train_set[0], 16)
    fids = [quality(images).fid] + [
        quality(gaussian_blur(images, s)).fid for s in (1.0, 1.5, 2.0, 3.0)
    ]
    assert fids == sorted(fids) and fids[1] > 5 * fids[0]


def test_one_class_and_dropped_classes(
    quality: DigitsQuality, train_set: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images, labels = train_set
    one = quality(images[labels == 3])
    p_r = quality.reference((8, 8))[1].argmax(1).eq(3).double().mean()
    assert one.classes == 1 and one.kl == pytest.approx(float(-p_r.log()), abs=0.15)
    dropped = [quality(images[labels >= k]) for k in (0, 1, 2, 4, 6)]
    assert [s.classes for s in dropped] == [10, 9, 8, 6, 4]
    for key in ("fid", "kl"):
        values = [getattr(s, key) for s in dropped]
        assert values == sorted(values), (key, values)
    assert one.fid > dropped[-1].fid
