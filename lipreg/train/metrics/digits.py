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

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lipreg._validation import check_batch
from lipreg.train.data.base import check_int, resize
from lipreg.train.data.embedded import digits
from lipreg.train.metrics.checks import check_images
from lipreg.train.metrics.digits_net import WEIGHTS_SHA256, load_classifier, to_8x8
from lipreg.train.metrics.features import fid_from_features


@dataclass(frozen=True)
class DigitsScores:
    """The digits quality of one set of samples (see :mod:`lipreg.train.metrics.digits`)."""

    fid: float  #: Fréchet distance of the classifier's features to the held-out digits
    classes: int  #: classes reached, 0..10
    kl: float  #: KL(p_g || p_r) of the predicted class histograms
    confidence: float  #: mean maximum class probability
    histogram: tuple[float, ...]  #: share of the samples predicted as each class 0..9

    def scalars(self, prefix: str = "metric/digits_") -> dict[str, float]:
        """``{prefix + "fid", prefix + "classes", prefix + "kl", prefix + "confidence"}`` as
        floats, e.g. for a scalar log."""
        return {
            prefix + "fid": self.fid,
            prefix + "classes": float(self.classes),
            prefix + "kl": self.kl,
            prefix + "confidence": self.confidence,
        }


class DigitsQuality:
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

    def __init__(
        self,
        reference: Tensor | None = None,
        *,
        device: torch.device | str | None = None,
        weights: str | Path | None = None,
        min_share: float = 0.5,
        batch_size: int = 1000,
    ) -> None:
        if reference is not None:
            _check_digits(reference, "reference")
        if not (isinstance(min_share, (int, float)) and 0 < min_share <= 1):
            raise ValueError(f"min_share must be a number in (0, 1], got {min_share!r}")
        check_int(batch_size, "batch_size", 1)
        self.device = torch.device("cpu" if device is None else device)
        sha = WEIGHTS_SHA256 if weights is None else None
        self.net = load_classifier(None if weights is None else Path(weights), sha).to(self.device)
        self.min_share = float(min_share)
        self.batch_size = batch_size
        self._reference = reference
        self._real: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``[N, 64]`` and class probabilities ``[N, 10]`` (CPU, float64) of
        ``images`` ``[N, 1, H, W]`` in ``[-1, 1]``, computed in batches."""
        _check_digits(images, "images")
        feats, probs = [], []
        with torch.no_grad():
            for batch in torch.split(images.detach(), self.batch_size):
                f, logits = self.net(to_8x8(batch.to(self.device, torch.float32)))
                feats.append(f.double().cpu())
                probs.append(logits.double().softmax(1).cpu())
        return torch.cat(feats), torch.cat(probs)

    def reference(self, side: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """:meth:`embed` of the reference digits at ``side`` (cached)."""
        if side not in self._real:
            if self._reference is not None:
                real = self._reference
            else:
                real, _ = digits("test")
                if side != (8, 8):
                    if side[0] != side[1]:
                        raise ValueError(
                            f"the held-out digits are square; samples of side {side} need a "
                            "reference= of that side"
                        )
                    real = resize(real, side[0])
            self._real[side] = self.embed(real)
        return self._real[side]

    def __call__(self, samples: Tensor) -> DigitsScores:
        """The :class:`DigitsScores` of ``samples`` ``[N, 1, H, W]`` in ``[-1, 1]``
        (``N >= 2``)."""
        _check_digits(samples, "samples")
        if samples.shape[0] < 2:
            raise ValueError(f"samples needs at least 2 images, got {samples.shape[0]}")
        real_f, real_p = self.reference((samples.shape[-2], samples.shape[-1]))
        fake_f, fake_p = self.embed(samples)
        p_r = _histogram(real_p)
        p_g = _histogram(fake_p)
        reached = p_g >= self.min_share * p_r
        kl = float(torch.where(p_g > 0, p_g * (p_g / p_r).log(), 0.0).sum())
        return DigitsScores(
            fid=fid_from_features(real_f, fake_f),
            classes=int(reached.sum()),
            kl=max(kl, 0.0),
            confidence=float(fake_p.max(1).values.mean()),
            histogram=tuple(float(v) for v in p_g),
        )


def _histogram(probs: Tensor) -> Tensor:
    """The share of rows of ``probs`` ``[N, 10]`` whose argmax is each class, ``[10]``."""
    counts = torch.bincount(probs.argmax(1), minlength=10).double()
    return counts / counts.sum()


def _check_digits(images: object, name: str) -> None:
    x = check_batch(images, name)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(
            f"{name} must be grey-level images [N, 1, H, W] in [-1, 1], got shape {list(x.shape)}"
        )
    check_images(x, name, 8)
