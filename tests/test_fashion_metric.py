"""The Fashion-MNIST quality metric: its classifier (shipped weights, deterministic training
on files built here), its formulas against independent computations, the full resolution it
sees, the trainer's evaluations, and, where Debian's copy of the data is installed, the
validation properties the docs report (small forms)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_train_fashion_data import FakeFashion
from train_helpers import image_config, one_thread, read_scalars, restore_threads

from lipreg.train.data import fashion_mnist as fm
from lipreg.train.data.base import from_uint8, resize
from lipreg.train.evaluate import describe_metrics
from lipreg.train.loop import Trainer
from lipreg.train.metrics.classifier import weights_sha256
from lipreg.train.metrics.fashion import FashionQuality
from lipreg.train.metrics.fashion_net import (
    WEIGHTS_SHA256,
    accuracy,
    load_classifier,
    shipped_weights,
    to_28,
    train_classifier,
)
from lipreg.train.runner import Runner

setup_module, teardown_module = one_thread, restore_threads


def smooth_images(n: int, seed: int) -> torch.Tensor:
    """``[n, 1, 28, 28]`` in ``[-1, 1]``: random 7x7 grey levels upsampled bicubically, a
    stand-in for real images where none may be read."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 7, 7, generator=gen) * 2 - 1
    return F.interpolate(coarse, size=(28, 28), mode="bicubic").clamp(-1, 1)


@pytest.fixture(scope="module")
def quality() -> FashionQuality:
    return FashionQuality(smooth_images(400, 0))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A folder of small Fashion-MNIST-like files (64 training, 32 test images), recorded as
    the official ones."""
    made = FakeFashion(n=64)
    monkeypatch.setattr(fm, "FASHION_MNIST_FILES", made.files)
    monkeypatch.setattr(fm, "SYSTEM_FOLDERS", ())
    return made.write(tmp_path / "fashion")


# --------------------------------------------------------------------------------------
# the classifier


def test_shipped_weights_match_their_hash(tmp_path: Path) -> None:
    net = load_classifier()
    assert weights_sha256(net.state_dict()) == WEIGHTS_SHA256
    assert sum(p.numel() for p in net.parameters()) < 200_000  # small
    state = torch.load(shipped_weights(), weights_only=True)
    state["head.bias"][0] += 1e-4
    path = tmp_path / "damaged.pt"
    torch.save(state, path)
    with pytest.raises(RuntimeError, match=r"Fashion-MNIST classifier weights .* damaged"):
        load_classifier(path)
    # a file of the user's own (retrained) is loaded as it is
    own = FashionQuality(smooth_images(4, 1), weights=path)
    assert weights_sha256(own.net.state_dict()) == weights_sha256(state)


def test_training_is_deterministic(fake: Path) -> None:
    a = train_classifier(epochs=1, seed=3, root=fake).state_dict()
    b = train_classifier(epochs=1, seed=3, root=fake).state_dict()
    assert weights_sha256(a) == weights_sha256(b)
    c = train_classifier(epochs=1, seed=4, root=fake).state_dict()
    assert weights_sha256(a) != weights_sha256(c)
    d = train_classifier(epochs=1, seed=3, root=fake, size=32).state_dict()
    assert weights_sha256(a) != weights_sha256(d)


def test_to_28_keeps_every_pixel() -> None:
    x = torch.randn(3, 1, 28, 28)
    assert to_28(x) is x
    assert to_28(torch.randn(2, 1, 32, 32)).shape == (2, 1, 28, 28)
    assert to_28(torch.randn(2, 1, 16, 16)).shape == (2, 1, 28, 28)


# --------------------------------------------------------------------------------------
# the scores


def test_the_reference_against_itself(quality: FashionQuality) -> None:
    """The shared formulas are checked against scipy and by hand in
    tests/test_digits_metric.py; here the Fashion-MNIST wiring, by what the reference scores
    against itself and by the classifier called directly."""
    reference = smooth_images(400, 0)
    scores = quality(reference)
    with torch.no_grad():
        features, logits = quality.net(reference)
    assert scores.fid == pytest.approx(0.0, abs=1e-6 * float(features.var(0).sum()))
    probs = logits.double().softmax(1)
    shares = np.bincount(probs.argmax(1).numpy(), minlength=10) / 400
    assert scores.histogram == pytest.approx(shares.tolist())
    assert scores.kl == pytest.approx(0.0, abs=1e-12)
    # every class reaches half its real share, classes of no real share included
    assert scores.classes == 10 and (shares == 0).any()
    assert scores.confidence == pytest.approx(float(probs.max(1).values.mean()))
    assert set(scores.scalars()) == {
        "metric/fashion_fid",
        "metric/fashion_classes",
        "metric/fashion_kl",
        "metric/fashion_confidence",
    }
    assert type(scores).__name__ == "FashionScores" and "FashionScores(fid=" in repr(scores)


def test_every_pixel_counts() -> None:
    """A checkerboard added to images leaves their 2x2 block means unchanged (a metric on
    reduced images cannot see it); at full resolution it moves the features far more than
    another draw of the same kind of images does."""
    quality = FashionQuality(0.5 * smooth_images(400, 0))  # in [-0.5, 0.5]: nothing clips
    checker = (torch.arange(28)[:, None] + torch.arange(28)).remainder(2) * 0.4 - 0.2
    images = 0.5 * smooth_images(400, 3)
    checkered = images + checker
    torch.testing.assert_close(F.avg_pool2d(checkered, 2), F.avg_pool2d(images, 2))
    assert quality(checkered).fid > 20 * quality(images).fid


def test_batches_do_not_change_the_embedding(quality: FashionQuality) -> None:
    images = smooth_images(50, 4)
    small = FashionQuality(images, batch_size=7)
    for a, b in zip(quality.embed(images), small.embed(images), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bad_samples_and_options_are_refused(quality: FashionQuality, tmp_path: Path) -> None:
    cases = [
        (torch.zeros(4, 3, 28, 28), "grey-level images"),
        (torch.zeros(4, 1, 4, 4), "at least 8x8"),
        (torch.full((4, 1, 28, 28), float("nan")), "NaN"),
        (torch.zeros(1, 1, 28, 28), "at least 2 images"),
        (torch.zeros(4, 1, 28, 28, dtype=torch.long), "floating-point"),
    ]
    for x, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            quality(x)
    with pytest.raises(ValueError, match="min_share"):
        FashionQuality(smooth_images(4, 0), min_share=1.5)
    with pytest.raises(ValueError, match=r"reference= .* or root="):
        FashionQuality(smooth_images(4, 0), root=tmp_path)
    with pytest.raises(ValueError, match="grey-level"):
        FashionQuality(torch.zeros(4, 3, 28, 28))


def test_the_default_reference_is_the_test_split(fake: Path, tmp_path: Path) -> None:
    quality = FashionQuality(root=fake)
    test = from_uint8(fm.read_fashion_mnist(fake, train=False)[0])
    for side, real in ((28, test), (32, resize(test, 32))):
        got = quality.reference((side, side))
        for a, b in zip(got, quality.embed(real), strict=True):
            assert torch.equal(a, b)
    assert quality.held_out((28, 28)).shape == (32, 1, 28, 28)
    with pytest.raises(ValueError, match="reference= of that side"):
        quality(torch.zeros(4, 1, 28, 32))
    # the files are read when the metric is built: a missing split fails at once
    with pytest.raises(FileNotFoundError, match="test files"):
        FashionQuality(root=tmp_path / "nowhere")


def test_the_trainer_logs_the_metric_on_fashion_mnist(fake: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = image_config(
        out,
        data="fashion-mnist",
        data_root=str(fake),
        data_size=None,
        image_size=None,
        steps=2,
        eval_every=2,
        eval_samples=16,
    )
    summary = Runner(Trainer(config)).run()
    metrics = [r for r in read_scalars(out) if "metric/fashion_fid" in r]
    assert [r["step"] for r in metrics] == [0, 2]
    for key in ("fid", "classes", "kl", "confidence"):
        assert math.isfinite(metrics[-1][f"metric/fashion_{key}"])
    assert not any("metric/swd" in r for r in read_scalars(out))
    line = describe_metrics(summary.metrics)
    assert line.startswith("Fashion-MNIST FID ") and "classes reached" in line


# --------------------------------------------------------------------------------------
# validation on the real data, where Debian's copy is installed (never needed)

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(
    not (DEBIAN / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
)
def test_validation_orders_known_degradations() -> None:
    train, labels = fm.read_fashion_mnist(DEBIAN)
    test, test_labels = fm.read_fashion_mnist(DEBIAN, train=False)
    quality = FashionQuality(from_uint8(test[:2000]))
    assert accuracy(quality.net, test[:2000], test_labels[:2000]) > 0.9
    real = from_uint8(train[:1000])
    y = labels[:1000]
    real_fid = quality(real).fid
    gen = torch.Generator().manual_seed(0)
    noisy = [
        quality((real + s * torch.randn(real.shape, generator=gen)).clamp(-1, 1)).fid
        for s in (0.05, 0.2)
    ]
    assert [real_fid, *noisy] == sorted([real_fid, *noisy]) and noisy[0] > 2 * real_fid
    dropped = [quality(real[y >= k]) for k in (0, 2, 5, 8)]
    assert [s.classes for s in dropped] == [10, 8, 5, 2]
    assert [s.fid for s in dropped] == sorted(s.fid for s in dropped)
    shuffled = real.flatten(1)[:, torch.randperm(784, generator=gen)].view_as(real)
    assert quality(shuffled).fid > 10 * real_fid
