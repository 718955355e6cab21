"""The classifier behind the Fashion-MNIST quality metric: a small CNN on the full 28x28
images, trained deterministically on the 60,000 training images, its weights shipped with
the package.

``python -m lipreg.train.metrics.fashion_net OUT.pt [--data-root DIR]`` retrains it from
scratch (single thread, deterministic algorithms, seed 0; the files are found as for
``--data fashion-mnist``) and compares the result with the shipped weights: on the machine
that produced them they are identical, elsewhere floating-point rounding may differ in the
last bits (the script prints the largest weight difference and the test accuracy of both).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lipreg.train.data.base import from_uint8
from lipreg.train.data.fashion_mnist import SIDE, read_fashion_mnist
from lipreg.train.metrics.classifier import accuracy as classifier_accuracy
from lipreg.train.metrics.classifier import fit, load_weights, retrain, shipped_file

WEIGHTS = "fashion_classifier.pt"
"""The shipped weights, package data of :mod:`lipreg.train.metrics`."""

WEIGHTS_SHA256 = "995699d08133763bb6cc70be424be589c2f99ebf99c13ece9b0a775372b9f93b"
""":func:`~lipreg.train.metrics.classifier.weights_sha256` of the shipped weights, checked on
every load."""

_MODULE = "lipreg.train.metrics.fashion_net"

FEATURES = 128
"""Dimension of the feature space of the Fashion-MNIST FID."""


class FashionNet(nn.Module):
    """``[B, 1, 28, 28]`` images in ``[-1, 1]`` -> (features ``[B, 128]``, logits ``[B, 10]``).

    conv3x3(32)-ReLU-maxpool (14x14), conv3x3(64)-ReLU-maxpool (7x7),
    conv3x3(64)-ReLU-maxpool (3x3), dense(128)-ReLU (the features), dense(10) (the logits).
    The first convolution sees every pixel at full resolution.
    """

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.features = nn.Sequential(nn.Linear(64 * 3 * 3, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f: Tensor = self.features(self.convs(x))
        return f, self.head(f)


def to_28(images: Tensor) -> Tensor:
    """``[N, 1, H, W]`` -> ``[N, 1, 28, 28]``: unchanged at 28x28 (the classifier sees every
    pixel), an antialiased bilinear resize otherwise."""
    if images.shape[-2:] == (SIDE, SIDE):
        return images
    return F.interpolate(images, size=(SIDE, SIDE), mode="bilinear", antialias=True)


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """8-bit images ``x`` in ``[-1, 1]``, half of the batch flipped horizontally, all shifted
    by up to two pixels (the border filled with the background, -1)."""
    x = from_uint8(x)
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dy, dx = torch.randint(0, 5, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(SIDE))[:, :, None]
    cols = (dx[:, None] + torch.arange(SIDE))[:, None, :]
    return padded[:, 0][torch.arange(n)[:, None, None], rows, cols].unsqueeze(1)


def train_classifier(
    epochs: int = 15, seed: int = 0, root: str | Path | None = None, size: int | None = None
) -> FashionNet:
    """:class:`FashionNet` trained on the training images (Adam 1e-3, 1e-4 for the last
    quarter of the epochs, batch 128, cross-entropy, :func:`_augment`;
    :func:`~lipreg.train.metrics.classifier.fit`), deterministically for a given ``seed``,
    thread count and machine. ``root`` is where the files are
    (:func:`~lipreg.train.data.read_fashion_mnist`); ``size`` trains on the first ``size``
    images only (tests)."""
    images, labels = read_fashion_mnist(root)
    if size is not None:
        images, labels = images[:size], labels[:size]
    net = fit(FashionNet, images, labels, _augment, epochs=epochs, batch_size=128, seed=seed)
    assert isinstance(net, FashionNet)
    return net


def accuracy(net: nn.Module, images: Tensor, labels: Tensor) -> float:
    """Share of ``images`` ``[N, 1, H, W]`` (uint8, or float in ``[-1, 1]``) that ``net``
    classifies as ``labels`` (after :func:`to_28`)."""
    return classifier_accuracy(net, to_28, images, labels)


def shipped_weights() -> Path:
    """The path of the shipped weights."""
    return shipped_file(WEIGHTS)


def load_classifier(path: Path | None = None, sha: str | None = WEIGHTS_SHA256) -> FashionNet:
    """The classifier in eval mode, from ``path`` (default: the shipped weights), refused
    with ``RuntimeError`` unless their SHA-256 is ``sha`` (``None`` skips the check)."""
    path = shipped_weights() if path is None else path
    net = load_weights(FashionNet(), path, sha, "Fashion-MNIST classifier", _MODULE)
    assert isinstance(net, FashionNet)
    return net


def main(argv: Sequence[str] | None = None) -> int:
    """Retrain the classifier into ``OUT`` and compare it with the shipped weights."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the retrained weights (.pt)")
    parser.add_argument(
        "--data-root", type=Path, help="the folder of the IDX files (default: as --data)"
    )
    args = parser.parse_args(argv)
    test_images, test_labels = read_fashion_mnist(args.data_root, train=False)
    retrain(
        args.out,
        lambda: train_classifier(root=args.data_root),
        lambda net: accuracy(net, test_images, test_labels),
        lambda: load_classifier(sha=None),
        WEIGHTS,
        "test",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
