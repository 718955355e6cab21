"""GAN objectives computed from critic scores: Wasserstein, non-saturating, hinge, RpGAN.

Every loss takes the critic's scores ``d_real = D(real)`` and ``d_fake = D(fake)`` (shape
``[B]`` or ``[B, 1]``) and returns a 0-dim mean, so any lipreg penalty is added in one line::

    d_loss = ns_critic_loss(d_real, d_fake) + r1(critic, real)
    d_loss = rpgan_critic_loss(d_real, d_fake) + r1r2(critic, real, fake)
    d_loss = wgan_critic_loss(d_real, d_fake) + gp(critic, real, fake)

``softplus(t) = log(1 + e^t)`` throughout, so ``-log sigmoid(t) = softplus(-t)``. Scores in
float16/bfloat16 are computed in float32. Arguments come in the order ``(d_real, d_fake)``
in every function that takes both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor
from torch.nn import functional as F

from lipreg._validation import check_scores, upcast

_FIX = "pass the critic's scores, e.g. d_real = critic(real)"


def _scores(scores: object, name: str) -> Tensor:
    """``scores`` as a floating ``[B]`` tensor (float32 at least), ``B >= 1``."""
    if isinstance(scores, Tensor) and scores.ndim == 0:
        raise ValueError(
            f"{name} must hold one score per sample, shape [B] or [B, 1], got a 0-dim tensor "
            f"(a mean?); {_FIX}"
        )
    batch = scores.shape[0] if isinstance(scores, Tensor) else 0
    flat = check_scores(scores, batch, name, _FIX)
    if not flat.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {flat.dtype}; {_FIX}")
    if batch == 0:
        raise ValueError(f"{name} must hold at least one score, got an empty batch; {_FIX}")
    return upcast(flat)


def _pair(d_real: object, d_fake: object) -> tuple[Tensor, Tensor]:
    """Both score tensors checked, with equal batch sizes (relativistic pairing)."""
    real, fake = _scores(d_real, "d_real"), _scores(d_fake, "d_fake")
    if real.shape != fake.shape:
        raise ValueError(
            "the relativistic pairing compares D(real)_i with D(fake)_i, so d_real and d_fake "
            f"must hold as many scores; got {real.shape[0]} and {fake.shape[0]} (draw as many "
            "fakes as real samples)"
        )
    return real, fake


def wgan_critic_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The Wasserstein critic loss (Arjovsky et al. 2017): ``E D(fake) - E D(real)``.

    It is linear in ``D``; only a Lipschitz constraint or penalty (:class:`lipreg.BanachGP`,
    ...) makes its minimum finite, and then ``-loss / gamma`` estimates the Wasserstein-1
    distance in ``B``.

    Shapes: ``d_real`` ``[B]`` or ``[B, 1]``, ``d_fake`` ``[B']`` or ``[B', 1]``; returns a
    0-dim tensor.
    """
    return _scores(d_fake, "d_fake").mean() - _scores(d_real, "d_real").mean()


def wgan_generator_loss(d_fake: Tensor) -> Tensor:
    """The Wasserstein generator loss ``-E D(fake)``.

    Shapes: ``d_fake`` ``[B]`` or ``[B, 1]``; returns a 0-dim tensor.
    """
    return -_scores(d_fake, "d_fake").mean()


def ns_critic_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The logistic critic loss of the original GAN (Goodfellow et al. 2014),

        E softplus(-D(real)) + E softplus(D(fake))
          = -E log sigmoid(D(real)) - E log(1 - sigmoid(D(fake))),

    the cross-entropy of a classifier with logits ``D``. For the optimal critic its value is
    ``log 4 - 2 JSD(P_real, P_fake)``. StyleGAN2's ``D`` loss (with R1).

    Shapes: ``d_real`` ``[B]`` or ``[B, 1]``, ``d_fake`` ``[B']`` or ``[B', 1]``; returns a
    0-dim tensor.
    """
    real, fake = _scores(d_real, "d_real"), _scores(d_fake, "d_fake")
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def ns_generator_loss(d_fake: Tensor) -> Tensor:
    """The non-saturating generator loss (Goodfellow et al. 2014),
    ``E softplus(-D(fake)) = -E log sigmoid(D(fake))``: its gradient stays large while the
    critic rejects the fakes. StyleGAN2's ``G`` loss.

    Shapes: ``d_fake`` ``[B]`` or ``[B, 1]``; returns a 0-dim tensor.
    """
    return F.softplus(-_scores(d_fake, "d_fake")).mean()


def hinge_critic_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The hinge critic loss (Lim & Ye 2017; SNGAN, SAGAN, BigGAN),

        E max(0, 1 - D(real)) + E max(0, 1 + D(fake)).

    Shapes: ``d_real`` ``[B]`` or ``[B, 1]``, ``d_fake`` ``[B']`` or ``[B', 1]``; returns a
    0-dim tensor.
    """
    real, fake = _scores(d_real, "d_real"), _scores(d_fake, "d_fake")
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_generator_loss(d_fake: Tensor) -> Tensor:
    """The generator loss paired with the hinge critic loss, ``-E D(fake)``.

    Shapes: ``d_fake`` ``[B]`` or ``[B, 1]``; returns a 0-dim tensor.
    """
    return -_scores(d_fake, "d_fake").mean()


def rpgan_critic_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The relativistic pairing critic loss (RpGAN: Jolicoeur-Martineau 2019; R3GAN, Huang et
    al. 2024), real sample ``i`` against fake sample ``i``:

        E_i softplus(-(D(real_i) - D(fake_i))).

    R3GAN adds R1 and R2 (:class:`lipreg.BanachR1R2`).

    Shapes: ``d_real`` and ``d_fake`` ``[B]`` or ``[B, 1]`` with the same ``B``; returns a
    0-dim tensor.
    """
    real, fake = _pair(d_real, d_fake)
    return F.softplus(-(real - fake)).mean()


def rpgan_generator_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The relativistic pairing generator loss, the critic's with the roles exchanged:

        E_i softplus(-(D(fake_i) - D(real_i))).

    ``d_real`` receives no gradient the generator needs (compute it under ``no_grad``).

    Shapes: ``d_real`` and ``d_fake`` ``[B]`` or ``[B, 1]`` with the same ``B``; returns a
    0-dim tensor.
    """
    real, fake = _pair(d_real, d_fake)
    return F.softplus(-(fake - real)).mean()


@dataclass(frozen=True)
class GANLoss:
    """A GAN objective by name: its critic and generator losses as functions of the scores.

    ``generator(d_real, d_fake)`` takes ``d_real = None`` unless :attr:`relativistic`.
    """

    name: str  #: the key in :data:`LOSSES`
    formula: str  #: one line: the critic's and the generator's loss
    critic: Callable[[Tensor, Tensor], Tensor]  #: ``(d_real, d_fake) -> 0-dim``
    generator: Callable[[Tensor | None, Tensor], Tensor]  #: ``(d_real, d_fake) -> 0-dim``
    relativistic: bool = False  #: whether the generator's loss needs ``D(real)``


def _of_fakes(loss: Callable[[Tensor], Tensor]) -> Callable[[Tensor | None, Tensor], Tensor]:
    def generator(d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return loss(d_fake)

    return generator


def _relativistic(d_real: Tensor | None, d_fake: Tensor) -> Tensor:
    if d_real is None:
        raise TypeError("the RpGAN generator loss pairs every fake with a real sample: pass d_real")
    return rpgan_generator_loss(d_real, d_fake)


#: The objectives by name (the trainer's ``--loss``).
LOSSES: dict[str, GANLoss] = {
    loss.name: loss
    for loss in (
        GANLoss(
            "wgan",
            "Wasserstein: critic E D(fake) - E D(real), generator -E D(fake)",
            wgan_critic_loss,
            _of_fakes(wgan_generator_loss),
        ),
        GANLoss(
            "ns",
            "non-saturating logistic: critic E softplus(-D(real)) + E softplus(D(fake)), "
            "generator E softplus(-D(fake))",
            ns_critic_loss,
            _of_fakes(ns_generator_loss),
        ),
        GANLoss(
            "hinge",
            "hinge: critic E relu(1 - D(real)) + E relu(1 + D(fake)), generator -E D(fake)",
            hinge_critic_loss,
            _of_fakes(hinge_generator_loss),
        ),
        GANLoss(
            "rpgan",
            "relativistic pairing (R3GAN): critic E softplus(D(fake_i) - D(real_i)), generator "
            "E softplus(D(real_i) - D(fake_i))",
            rpgan_critic_loss,
            _relativistic,
            relativistic=True,
        ),
    )
}
