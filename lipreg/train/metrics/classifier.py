"""The machinery shared by the quality metrics built on a small classifier shipped with lipreg
(:mod:`~lipreg.train.metrics.digits`, :mod:`~lipreg.train.metrics.fashion`).

A classifier ``net(x) -> (features [B, D], logits [B, K])`` embeds real and generated
images; :class:`ClassifierQuality` compares them:

- ``fid``: the Fréchet distance between Gaussians fitted to the features,
  ``||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})`` (lower is better; biased upwards
  for small sample sizes, so compare values at equal sample counts);
- ``classes``: how many of the ``K`` classes the samples reach: class ``c`` counts when
  ``#{i : argmax p(y|x_i) = c} >= min_share * p_r(c) * N``;
- ``kl``: ``KL(p_g || p_r) = sum_c p_g(c) log(p_g(c) / p_r(c))`` of the predicted class
  histograms of the samples and of the real images;
- ``confidence``: the mean of ``max_c p(c | x)`` over the samples.

Weights are identified by :func:`weights_sha256`, a hash of the tensors themselves (a
``torch.save`` file also holds its own name and a random serialisation id), checked on every
load of shipped weights (:func:`load_weights`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lipreg._validation import check_batch
from lipreg.train.data.base import check_int, from_uint8
from lipreg.train.metrics.checks import check_images
from lipreg.train.metrics.features import fid_from_features


@dataclass(frozen=True)
class ClassifierScores:
    """The quality of one set of samples as seen by a classifier (see
    :mod:`lipreg.train.metrics.classifier`)."""

    fid: float  #: Fréchet distance of the classifier's features to the real images
    classes: int  #: classes reached, 0..K
    kl: float  #: KL(p_g || p_r) of the predicted class histograms
    confidence: float  #: mean maximum class probability
    histogram: tuple[float, ...]  #: share of the samples predicted as each class

    #: the default prefix of :meth:`scalars`
    PREFIX: ClassVar[str] = "metric/"

    def scalars(self, prefix: str | None = None) -> dict[str, float]:
        """``{prefix + "fid", prefix + "classes", prefix + "kl", prefix + "confidence"}`` as
        floats, e.g. for a scalar log (``prefix`` defaults to the class's ``PREFIX``)."""
        p = self.PREFIX if prefix is None else prefix
        return {
            p + "fid": self.fid,
            p + "classes": float(self.classes),
            p + "kl": self.kl,
            p + "confidence": self.confidence,
        }


S = TypeVar("S", bound=ClassifierScores, covariant=True)


class ClassifierQuality(ABC, Generic[S]):
    """Scores sets of generated grey-level images against real ones through a classifier.

    Subclasses give the classifier (:meth:`classifier`), say how images become its input
    (:meth:`prepare`), which real images samples of a side are compared with by default
    (:meth:`held_out`), and the type of the scores (``scores_type``).

    Args:
        reference: real images ``[M, 1, H, W]`` in ``[-1, 1]`` to compare with; default:
            :meth:`held_out` at each call's sample side.
        device: where the classifier runs (default: CPU).
        weights: a weights file of the classifier (default: the shipped one, checked against
            its SHA-256; a file of your own is loaded as it is).
        min_share: the fraction of a class's real share that the samples must reach for
            ``classes`` to count it.
        batch_size: images per forward pass (bounds memory for any number of samples).
    """

    #: the type of the scores returned
    scores_type: type[S]
    #: the smallest side accepted
    min_side: ClassVar[int] = 8

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
            self.check(reference, "reference")
        if not (isinstance(min_share, (int, float)) and 0 < min_share <= 1):
            raise ValueError(f"min_share must be a number in (0, 1], got {min_share!r}")
        check_int(batch_size, "batch_size", 1)
        self.device = torch.device("cpu" if device is None else device)
        self.net = self.classifier(None if weights is None else Path(weights)).to(self.device)
        self.min_share = float(min_share)
        self.batch_size = batch_size
        self._reference = reference
        self._real: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    @abstractmethod
    def classifier(self, weights: Path | None) -> nn.Module:
        """The classifier ``[B, 1, h, w] -> (features [B, D], logits [B, K])`` in eval mode,
        from ``weights`` (``None``: the shipped ones, checked against their SHA-256)."""

    @abstractmethod
    def prepare(self, images: Tensor) -> Tensor:
        """The classifier's input for ``images`` ``[B, 1, H, W]`` (on the device, float32)."""

    @abstractmethod
    def held_out(self, side: tuple[int, int]) -> Tensor:
        """The default real images ``[M, 1, H, W]`` compared with samples of ``side``."""

    def embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``[N, D]`` and class probabilities ``[N, K]`` (CPU, float64) of
        ``images`` ``[N, 1, H, W]`` in ``[-1, 1]``, computed in batches."""
        self.check(images, "images")
        feats, probs = [], []
        with torch.no_grad():
            for batch in torch.split(images.detach(), self.batch_size):
                f, logits = self.net(self.prepare(batch.to(self.device, torch.float32)))
                feats.append(f.double().cpu())
                probs.append(logits.double().softmax(1).cpu())
        return torch.cat(feats), torch.cat(probs)

    def reference(self, side: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """:meth:`embed` of the reference images for samples of ``side`` (cached)."""
        if side not in self._real:
            real = self._reference if self._reference is not None else self.held_out(side)
            self._real[side] = self.embed(real)
        return self._real[side]

    def __call__(self, samples: Tensor) -> S:
        """The scores of ``samples`` ``[N, 1, H, W]`` in ``[-1, 1]`` (``N >= 2``)."""
        self.check(samples, "samples")
        if samples.shape[0] < 2:
            raise ValueError(f"samples needs at least 2 images, got {samples.shape[0]}")
        real_f, real_p = self.reference((samples.shape[-2], samples.shape[-1]))
        fake_f, fake_p = self.embed(samples)
        k = real_p.shape[1]
        p_r, p_g = histogram(real_p, k), histogram(fake_p, k)
        reached = p_g >= self.min_share * p_r
        kl = float(torch.where(p_g > 0, p_g * (p_g / p_r).log(), 0.0).sum())
        return self.scores_type(
            fid=fid_from_features(real_f, fake_f),
            classes=int(reached.sum()),
            kl=max(kl, 0.0),
            confidence=float(fake_p.max(1).values.mean()),
            histogram=tuple(float(v) for v in p_g),
        )

    def check(self, images: object, name: str) -> None:
        """Raise unless ``images`` are finite grey-level images ``[N, 1, H, W]`` of side at
        least :attr:`min_side`."""
        x = check_batch(images, name)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(
                f"{name} must be grey-level images [N, 1, H, W] in [-1, 1], got shape "
                f"{list(x.shape)}"
            )
        check_images(x, name, self.min_side)


def histogram(probs: Tensor, k: int) -> Tensor:
    """The share of rows of ``probs`` ``[N, k]`` whose argmax is each class, ``[k]``."""
    counts = torch.bincount(probs.argmax(1), minlength=k).double()
    return counts / counts.sum()


def fit(
    build: Callable[[], nn.Module],
    images: Tensor,
    labels: Tensor,
    augment: Callable[[Tensor, torch.Generator], Tensor],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
) -> nn.Module:
    """The classifier ``build()`` trained on ``images`` and ``labels`` ``[N]`` with Adam (lr
    1e-3, 1e-4 for the last quarter of the epochs) on the cross-entropy of its logits, the
    batches drawn in a random order each epoch and passed through ``augment(batch, gen)``;
    deterministic for a given ``seed`` (weights and order), thread count and machine.
    Returns it in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = build()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for lr_group in opt.param_groups:
            lr_group["lr"] = 1e-3 * (0.1 if epoch >= epochs * 3 // 4 else 1.0)
        order = torch.randperm(images.shape[0], generator=gen)
        for batch in torch.split(order, batch_size):
            x = augment(images[batch], gen)
            loss = F.cross_entropy(net(x)[1], labels[batch])
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            opt.step()
    return net.eval()


def accuracy(
    net: nn.Module,
    prepare: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    batch_size: int = 1000,
) -> float:
    """Share of ``images`` ``[N, 1, H, W]`` (uint8 0..255, or float in ``[-1, 1]``) that
    ``net`` classifies as ``labels`` once ``prepare``-d, in batches."""
    right = 0
    with torch.no_grad():
        for x, y in zip(
            torch.split(images, batch_size), torch.split(labels, batch_size), strict=True
        ):
            x = from_uint8(x) if x.dtype == torch.uint8 else x
            right += int((net(prepare(x))[1].argmax(1) == y).sum())
    return right / len(labels)


def weights_sha256(state: dict[str, Tensor]) -> str:
    """Hex SHA-256 of a state dict's names, dtypes, shapes and values, in order."""
    h = hashlib.sha256()
    for name, t in state.items():
        h.update(f"{name}:{t.dtype}:{list(t.shape)};".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def shipped_file(filename: str) -> Path:
    """The path of the weights file ``filename`` shipped in :mod:`lipreg.train.metrics`."""
    return Path(str(resources.files("lipreg.train.metrics") / filename))


def load_weights(net: nn.Module, path: Path, sha: str | None, what: str, retrain: str) -> nn.Module:
    """``net`` with the weights of ``path``, in eval mode, refused with ``RuntimeError``
    unless their :func:`weights_sha256` is ``sha`` (``None`` skips the check); ``what``
    names the weights and ``retrain`` the module that retrains them in the message."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    found = weights_sha256(state)
    if sha is not None and found != sha:
        raise RuntimeError(
            f"the {what} weights {path} are damaged or not the shipped ones (SHA-256 "
            f"{found}, expected {sha}); reinstall lipreg, or retrain them with "
            f"python -m {retrain}"
        )
    net.load_state_dict(state)
    return net.eval()


def retrain(
    out: Path,
    train: Callable[[], nn.Module],
    accuracy: Callable[[nn.Module], float],
    shipped: Callable[[], nn.Module],
    filename: str,
    split: str,
) -> None:
    """Retrain a classifier deterministically (one thread, deterministic algorithms), write
    its weights to ``out`` and compare them with the shipped ``filename`` (loaded by
    ``shipped`` without a hash check): prints both weights' SHA-256, their largest
    difference and the ``split`` accuracy of both (the commands ``python -m
    lipreg.train.metrics.digits_net OUT.pt`` and ``... fashion_net OUT.pt``)."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    net = train()
    torch.save(net.state_dict(), out)
    print(f"wrote {out}: weights SHA-256 {weights_sha256(net.state_dict())}")
    print(f"{split} accuracy {accuracy(net):.4f}")
    if shipped_file(filename).is_file():
        ref = shipped()
        diff = max(
            float((a - b).abs().max())
            for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True)
        )
        same = weights_sha256(ref.state_dict()) == weights_sha256(net.state_dict())
        print(
            f"shipped {shipped_file(filename)}: weights SHA-256 "
            f"{weights_sha256(ref.state_dict())} ({'identical' if same else 'different'}),"
            f" largest weight difference {diff:.3g}, {split} accuracy {accuracy(ref):.4f}"
        )
