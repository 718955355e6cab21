"""A download-free quality metric for generated Fashion-MNIST images: "Fashion-MNIST FID",
classes reached, class KL and confidence, from a small classifier shipped with lipreg that
sees the full 28x28 resolution.

:class:`FashionQuality` embeds images with
:class:`~lipreg.train.metrics.fashion_net.FashionNet` (trained on the 60,000 training
images) and compares generated samples with the 10,000 test images through the shared
classifier machinery (:mod:`lipreg.train.metrics.classifier`): ``fid`` in its 128-d
features, ``classes`` reached (of 10), ``kl`` between the predicted class histograms and
the mean ``confidence``. Unlike the digits metric, nothing is averaged away: 28x28 samples
reach the classifier pixel for pixel, so pixel-level noise or blur changes its features.

Samples of another side (a run with ``--image-size``) are resized to 28x28
(:func:`~lipreg.train.metrics.fashion_net.to_28`) and the test images take the same round
trip (to the samples' side the way the trainer resizes its data, then back), so that real
images at any resolution score as real; at those sides the metric judges the 28x28
resampling of the samples.

    >>> quality = FashionQuality()             # the test images from the cache or Debian
    >>> scores = quality(samples)              # [N, 1, H, W] in [-1, 1]
    >>> scores.fid, scores.classes
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lipreg.train.data.base import from_uint8, resize
from lipreg.train.data.fashion_mnist import SIDE, read_fashion_mnist
from lipreg.train.metrics.classifier import ClassifierQuality, ClassifierScores
from lipreg.train.metrics.fashion_net import WEIGHTS_SHA256, load_classifier, to_28


class FashionScores(ClassifierScores):
    """The Fashion-MNIST quality of one set of samples (see
    :mod:`lipreg.train.metrics.fashion`); :meth:`scalars` are ``metric/fashion_fid``,
    ``metric/fashion_classes``, ``metric/fashion_kl`` and ``metric/fashion_confidence``."""

    PREFIX = "metric/fashion_"


class FashionQuality(ClassifierQuality[FashionScores]):
    """Scores sets of generated Fashion-MNIST images against real ones (the test split by
    default).

    Args:
        reference: real images ``[M, 1, H, W]`` in ``[-1, 1]`` to compare with; default: the
            10,000 test images (read when the metric is built, so that missing files fail
            early), brought to each call's sample side.
        root: where the test files are (:func:`~lipreg.train.data.read_fashion_mnist`:
            default the cache, then Debian's folder); only without ``reference``.
        device: where the classifier runs (default: CPU).
        weights: a weights file of :class:`~lipreg.train.metrics.fashion_net.FashionNet`
            (default: the shipped one, checked against its SHA-256).
        min_share: the fraction of a class's real share that the samples must reach for
            ``classes`` to count it.
        batch_size: images per forward pass (bounds memory for any number of samples).
    """

    scores_type = FashionScores

    def __init__(
        self,
        reference: Tensor | None = None,
        *,
        root: str | Path | None = None,
        device: torch.device | str | None = None,
        weights: str | Path | None = None,
        min_share: float = 0.5,
        batch_size: int = 1000,
    ) -> None:
        if reference is not None and root is not None:
            raise ValueError("pass reference= (images) or root= (where the test files are)")
        self._test = None if reference is not None else read_fashion_mnist(root, train=False)[0]
        super().__init__(
            reference, device=device, weights=weights, min_share=min_share, batch_size=batch_size
        )

    def classifier(self, weights: Path | None) -> nn.Module:
        """:class:`~lipreg.train.metrics.fashion_net.FashionNet` from ``weights`` (default:
        the shipped ones, checked)."""
        return load_classifier(weights, WEIGHTS_SHA256 if weights is None else None)

    def prepare(self, images: Tensor) -> Tensor:
        """:func:`~lipreg.train.metrics.fashion_net.to_28` of ``images``."""
        return to_28(images)

    def held_out(self, side: tuple[int, int]) -> Tensor:
        """The 10,000 test images, at 28x28 or resized to a square ``side`` (bicubic, as the
        trainer does)."""
        assert self._test is not None  # read whenever no reference was given
        if side == (SIDE, SIDE):
            return from_uint8(self._test)
        if side[0] != side[1]:
            raise ValueError(
                f"the test images are square; samples of side {side} need a reference= of that side"
            )
        return resize(self._test, side[0])
