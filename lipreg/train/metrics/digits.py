"""A download-free quality metric for generated digits: "digits FID", class coverage, class
balance and confidence, from a small classifier shipped with lipreg.

Inception-based metrics need weights that a machine without downloads does not have; the
8x8 digits of scikit-learn do not. :class:`DigitsQuality` embeds images with
:class:`~lipreg.train.metrics.digits_net.DigitsNet` (trained on the 1,198 training digits,
98 % accurate on the 599 held-out ones) and compares generated samples with the held-out
digits:

- ``fid``: the Fréchet distance between Gaussians fitted to the 64-d features,
  ``||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})`` (lower is better; like FID it
  is biased upwards for small sample sizes, so compare values at equal sample counts);
- ``classes``: how many of the 10 classes the samples reach: class ``c`` counts when at
  least ``min_share`` (half) of its real share of the samples is predicted ``c``,
  ``#{i : argmax p(y|x_i) = c} >= min_share * p_r(c) * N``;
- ``kl``: ``KL(p_g || p_r) = sum_c p_g(c) log(p_g(c) / p_r(c))`` of the predicted class
  histograms of the samples ``p_g`` and of the held-out digits ``p_r`` (0 for the real
  class balance, ``log 1/p_r(c)``, about 2.3, for a generator of one class ``c``);
- ``confidence``: the mean of ``max_c p(c | x)`` over the samples (about 0.98 for real
  digits; blurred or ambiguous samples score lower).

Images of any side are accepted: they are reduced to 8x8 by
:func:`~lipreg.train.metrics.digits_net.to_8x8`, and the held-out digits are first brought
to the same side as the samples the way the trainer resizes its data, so that real digits
at any resolution score as real.

    >>> quality = DigitsQuality()
    >>> scores = quality(samples)          # [N, 1, H, W] in [-1, 1]
    >>> scores.fid, scores.classes
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from lipreg.train.data.base import resize
from lipreg.train.data.embedded import digits
from lipreg.train.metrics.classifier import ClassifierQuality, ClassifierScores
from lipreg.train.metrics.digits_net import WEIGHTS_SHA256, load_classifier, to_8x8


class DigitsScores(ClassifierScores):
    """The digits quality of one set of samples (see :mod:`lipreg.train.metrics.digits`);
    :meth:`scalars` are ``metric/digits_fid``, ``metric/digits_classes``,
    ``metric/digits_kl`` and ``metric/digits_confidence``."""

    PREFIX = "metric/digits_"


class DigitsQuality(ClassifierQuality[DigitsScores]):
    """Scores sets of generated digits against real digits (held-out ones by default).

    Args:
        reference: real digits ``[M, 1, H, W]`` in ``[-1, 1]`` to compare with; default: the
            599 held-out digits, resized to each call's sample side.
        device: where the classifier runs (default: CPU).
        weights: a weights file of :class:`~lipreg.train.metrics.digits_net.DigitsNet`
            (default: the shipped one, checked against its SHA-256).
        min_share: the fraction of a class's real share that the samples must reach for
            ``classes`` to count it.
        batch_size: images per forward pass (bounds memory for any number of samples).
    """

    scores_type = DigitsScores

    def classifier(self, weights: Path | None) -> nn.Module:
        """:class:`~lipreg.train.metrics.digits_net.DigitsNet` from ``weights`` (default: the
        shipped ones, checked)."""
        return load_classifier(weights, WEIGHTS_SHA256 if weights is None else None)

    def prepare(self, images: Tensor) -> Tensor:
        """:func:`~lipreg.train.metrics.digits_net.to_8x8` of ``images``."""
        return to_8x8(images)

    def held_out(self, side: tuple[int, int]) -> Tensor:
        """The 599 held-out digits, resized to ``side`` (bicubic, as the trainer does)."""
        real, _ = digits("test")
        if side != (8, 8):
            if side[0] != side[1]:
                raise ValueError(
                    f"the held-out digits are square; samples of side {side} need a "
                    "reference= of that side"
                )
            real = resize(real, side[0])
        return real
