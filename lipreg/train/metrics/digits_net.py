"""The classifier behind the digits quality metric: a small CNN on 8x8 digits, trained
deterministically on the training digits, its weights shipped with the package.

``python -m lipreg.train.metrics.digits_net OUT.pt`` retrains it from scratch (single
thread, deterministic algorithms, seed 0) and compares the result with the shipped weights;
on the machine that produced them they are identical, elsewhere floating-point rounding may
differ in the last bits (the script prints the largest weight difference and the held-out
accuracy of both). Weights are identified by
:func:`~lipreg.train.metrics.classifier.weights_sha256`, a hash of the tensors themselves.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lipreg.train.data.base import resize
from lipreg.train.data.embedded import digits
from lipreg.train.metrics.classifier import accuracy as classifier_accuracy
from lipreg.train.metrics.classifier import (
    fit,
    load_weights,
    retrain,
    shipped_file,
    weights_sha256,
)

__all__ = [
    "FEATURES",
    "WEIGHTS",
    "WEIGHTS_SHA256",
    "DigitsNet",
    "accuracy",
    "load_classifier",
    "main",
    "shipped_weights",
    "to_8x8",
    "train_classifier",
    "weights_sha256",
]

WEIGHTS = "digits_classifier.pt"
"""The shipped weights, package data of :mod:`lipreg.train.metrics`."""

WEIGHTS_SHA256 = "4d00326e932581c923dc5e1f96bd9e99e885b9781fb025452af082a2caf64e3e"
""":func:`weights_sha256` of the shipped weights, checked on every load."""

_MODULE = "lipreg.train.metrics.digits_net"

FEATURES = 64
"""Dimension of the feature space of the digits FID."""


class DigitsNet(nn.Module):
    """``[B, 1, 8, 8]`` digits in ``[-1, 1]`` -> (features ``[B, 64]``, logits ``[B, 10]``).

    conv3x3(16)-ReLU, conv3x3(32)-ReLU-maxpool (4x4), conv3x3(32)-ReLU-maxpool (2x2),
    dense(64)-ReLU (the features), dense(10) (the logits).
    """

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.features = nn.Sequential(nn.Linear(32 * 2 * 2, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f: Tensor = self.features(self.convs(x))
        return f, self.head(f)


def to_8x8(images: Tensor) -> Tensor:
    """``[N, 1, H, W]`` -> ``[N, 1, 8, 8]``: block means when ``H`` and ``W`` are multiples
    of 8 (the inverse of a nearest upsampling, and close to that of the trainer's bicubic
    one), an antialiased bilinear resize otherwise."""
    h, w = images.shape[-2:]
    if (h, w) == (8, 8):
        return images
    if h % 8 == 0 and w % 8 == 0:
        return F.avg_pool2d(images, (h // 8, w // 8))
    return F.interpolate(images, size=(8, 8), mode="bilinear", antialias=True)


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Shifts by up to one pixel, and for half of the batch a round trip through a bicubic
    upsampling to 16 or 32 pixels and :func:`to_8x8`, the path generated samples take."""
    n = x.shape[0]
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dy, dx = torch.randint(0, 3, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(8))[:, :, None]
    cols = (dx[:, None] + torch.arange(8))[:, None, :]
    shifted = padded[:, 0][torch.arange(n)[:, None, None], rows, cols].unsqueeze(1)
    trip = torch.rand(n, generator=gen) < 0.5
    side = 16 if bool(torch.rand((), generator=gen) < 0.5) else 32
    if trip.any():
        shifted[trip] = to_8x8(resize(shifted[trip], side))
    return shifted


def train_classifier(epochs: int = 60, seed: int = 0) -> DigitsNet:
    """:class:`DigitsNet` trained on the training digits (Adam 1e-3, batch 64, cross-entropy,
    :func:`_augment`; :func:`~lipreg.train.metrics.classifier.fit`), deterministically for a
    given ``seed``, thread count and machine."""
    images, labels = digits("train")
    net = fit(DigitsNet, images, labels, _augment, epochs=epochs, batch_size=64, seed=seed)
    assert isinstance(net, DigitsNet)
    return net


def accuracy(net: nn.Module, images: Tensor, labels: Tensor) -> float:
    """Share of ``images`` ``[N, 1, H, W]`` that ``net`` classifies as ``labels`` (after
    :func:`to_8x8`)."""
    return classifier_accuracy(net, to_8x8, images, labels)


def load_classifier(path: Path | None = None, sha: str | None = WEIGHTS_SHA256) -> DigitsNet:
    """The classifier in eval mode, from ``path`` (default: the shipped weights), refused
    with ``RuntimeError`` unless their :func:`weights_sha256` is ``sha`` (``None`` skips the
    check)."""
    path = shipped_weights() if path is None else path
    net = load_weights(DigitsNet(), path, sha, "digits classifier", _MODULE)
    assert isinstance(net, DigitsNet)
    return net


def shipped_weights() -> Path:
    """The path of the shipped weights."""
    return shipped_file(WEIGHTS)


def main(argv: Sequence[str] | None = None) -> int:
    """Retrain the classifier into ``OUT`` and compare it with the shipped weights."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the retrained weights (.pt)")
    args = parser.parse_args(argv)
    test_images, test_labels = digits("test")
    retrain(
        args.out,
        train_classifier,
        lambda net: accuracy(net, test_images, test_labels),
        lambda: load_classifier(sha=None),
        WEIGHTS,
        "held-out",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
