"""A replacement for rosinality's ``d_r1_loss(real_pred, real_img)`` estimated from forward
passes (no double backward), replaying the host's augmentation."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from lipreg import ApproxR1, Norm
from lipreg.derivative_free import DEFAULT_SIGMA

from .._modules import unwrap

#: The host's ``augment(img, p, transform_matrix=(None, None)) -> (img, (G, C))``
#: (``non_leaking.py``): with ``transform_matrix`` given it applies those transforms.
Augment = Callable[..., tuple[Tensor, Any]]


@dataclass(frozen=True)
class _Call:
    """The last call of the host's ``augment``: the function, its input (weakly), ``p``
    and the transforms it drew."""

    augment: Augment
    img: weakref.ref[Tensor]
    p: Any
    transforms: Any


class ApproxR1Loss:
    """``d_r1_loss(real_pred, real_img)`` of rosinality's ``train.py`` without double
    backward: the batch mean of the estimates ``e_b ~ ||dD(x_b)||_{B*}^2`` of
    :class:`lipreg.ApproxR1` (any Hilbert norm),

        E_b e_b = E_b (v_b / (K sigma^2)) sum_k (D(x_b + h_k) - D(x_b))^2,

    from ``draws = K`` extra forward passes of the discriminator at perturbed real images
    (``h`` from the norm's dual Gaussian, entries of root mean square ``sigma``), the host's
    ``real_pred`` serving as ``D(x)`` (one-sided estimator). The host's lazy step is left as
    it is (``r1 / 2 * d_r1_loss(...) * d_reg_every``), so the discriminator minimises
    ``(r1 / 2) E ||dD(x)||_{B*}^2`` on average, as with :class:`R1Loss`, with first
    derivatives only. :attr:`penalty` (an ``ApproxR1`` of weight 2, whose value is the
    returned mean) holds the estimator and the statistics of the last call.

    The host's ``d_r1_loss`` receives the discriminator's output, not the discriminator;
    this object is built with it, in ``__main__`` after the discriminator (the module itself
    or its DistributedDataParallel wrapper: the perturbed passes run the module inside,
    whose gradients the wrapper's backward of the host's step then reduces). With
    ``--augment`` the host's ``real_pred`` is the discriminator's score of
    ``augment(real_img, p)``, a random transform drawn anew at every call; the perturbed
    passes must see the same transform, so the host's ``augment`` is wrapped by
    :meth:`replaying`, which records the transforms of its last call; each perturbed pass
    applies them again (``augment(x + h, p, transform_matrix)``, the host's own way). The
    wrapper is required, with or without ``--augment``, so that forgetting it cannot
    silently estimate the augmentation instead of the gradient::

        d_r1_loss = ApproxR1Loss(discriminator, "sobolev:s=-1.5", sigma=0.03)
        augment = d_r1_loss.replaying(augment)

    Args:
        discriminator: the host's discriminator, ``discriminator(img) -> [B, 1]``.
        norm: a Hilbert norm (``"l2"``, ``"sobolev:s=-1.5"``, ``"w2"``).
        sigma: the root mean square of the perturbation's entries, in data units.
        draws: perturbations per image (one forward pass each, two with ``antithetic``).
        antithetic: ``(D(x + h) - D(x - h)) / 2``; ``real_pred`` then serves the host's
            ``0 * real_pred[0]`` only.
        check_finite: raise if an estimate is NaN or inf (one host synchronisation).

    Shapes:
        ``real_pred``: ``[B, 1]`` (or ``[B]``) scores of ``real_img`` (augmented);
        ``real_img``: ``[B, C, H, W]``; returns a 0-dim tensor.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        norm: Norm | str = "l2",
        *,
        sigma: float = DEFAULT_SIGMA,
        draws: int = 1,
        antithetic: bool = False,
        check_finite: bool = True,
    ) -> None:
        if not isinstance(discriminator, nn.Module):
            raise TypeError(
                "ApproxR1Loss(discriminator, ...) needs the host's discriminator, an "
                f"nn.Module, got {type(discriminator).__name__}: build it after the "
                "discriminator in train.py's __main__"
            )
        self.discriminator = unwrap(discriminator)
        self.penalty = ApproxR1(
            norm,
            gamma=2.0,  # (gamma / 2) E e_b = E e_b, the host's d_r1_loss; it weighs by r1 / 2
            sigma=sigma,
            draws=draws,
            antithetic=antithetic,
            check_finite=check_finite,
        )
        self._wrapped = False
        self._last: _Call | None = None

    def replaying(self, augment: Augment) -> Augment:
        """The host's ``augment`` recording the transforms of each call, for the estimate's
        perturbed passes: ``augment = d_r1_loss.replaying(augment)`` in ``__main__``."""
        if not callable(augment):
            raise TypeError(
                f"replaying(augment) takes the host's augment function, got "
                f"{type(augment).__name__}"
            )

        def recording(img: Tensor, p: Any, transform_matrix: Any = (None, None)) -> Any:
            out, transforms = augment(img, p, transform_matrix)
            self._last = _Call(augment, weakref.ref(img), p, transforms)
            return out, transforms

        self._wrapped = True
        return recording

    def __call__(self, real_pred: Tensor, real_img: Tensor) -> Tensor:
        """``E_b e_b``, a 0-dim tensor differentiable in the discriminator's parameters."""
        if not self._wrapped:
            raise RuntimeError(
                "ApproxR1Loss must see the augmentation the host applies to real_img: add "
                "'augment = d_r1_loss.replaying(augment)' after 'd_r1_loss = ApproxR1Loss(...)' "
                "in train.py's __main__ (needed with or without --augment)"
            )
        critic = self._critic(real_img)
        estimates = self.penalty.estimate(critic, real_img.detach(), scores=real_pred)
        return self.penalty.from_estimates(estimates)

    def _critic(self, real_img: Tensor) -> Callable[[Tensor], Tensor]:
        """The discriminator behind the transforms that produced ``real_pred``: those of
        the last ``augment`` call when it augmented ``real_img``, none when there was none
        (no ``--augment``)."""
        last, discriminator = self._last, self.discriminator
        if last is None:
            return discriminator
        if last.img() is not real_img:
            raise RuntimeError(
                "the last call of the host's augment was not on real_img: real_pred must be "
                "the discriminator's score of augment(real_img, p), computed just before "
                "d_r1_loss(real_pred, real_img), as the host's train.py does"
            )

        def critic(x: Tensor) -> Tensor:
            augmented, _ = last.augment(x, last.p, last.transforms)
            scores: Tensor = discriminator(augmented)
            return scores

        return critic

    def __repr__(self) -> str:
        p = self.penalty
        return (
            f"ApproxR1Loss(norm={p.norm!r}, sigma={p.sigma:g}, draws={p.draws}, "
            f"antithetic={p.antithetic})"
        )
