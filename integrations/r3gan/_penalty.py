"""A replacement for R3GAN's ``AdversarialTraining.ZeroCenteredGradientPenalty``."""

from __future__ import annotations

from torch import Tensor

from lipreg.norms import Norm, parse_norm

from .._outputs import squared_dual_norms


class ZeroCenteredGradientPenalty:
    """``ZeroCenteredGradientPenalty(Samples, Critics)`` of R3GAN in the dual norm of ``B``.

    R3GAN's static method returns, per sample, the squared Euclidean norm of the gradient of
    ``Critics.sum()`` in ``Samples``; the discriminator step then adds
    ``(Gamma / 2) * (R1Penalty + R2Penalty)`` (R1 on the real batch, R2 on the generated one)
    to the loss ``softplus(-(D(real) - D(fake)))`` and averages. An instance computes

        ||dD(x_b)||_{B*}^2  for every sample b,  [B],

    with any lipreg norm, so the same discriminator step trains R1 + R2 in ``B``
    (:class:`lipreg.BanachR1R2` with R3GAN's arithmetic). The norm is computed in float32 at
    least and the result returned in the dtype of ``Samples`` (and so of their gradient), as
    R3GAN's is: under its presets' ``FP16Stages`` the generated samples are bfloat16, and so is
    R2. With ``norm="l2"`` the discriminator's gradients are R3GAN's bit for bit, and so are
    R1 and R2 in float32; a bfloat16 R2 can differ from R3GAN's by one unit in the last place
    (R3GAN rounds every square to bfloat16 before summing, the adapter rounds the float32 sum
    once). Tested against a stand-in; checked by hand against the real code. Assign an
    instance to the class attribute (an instance is not a function, so Python does not bind
    it as a method)::

        AdversarialTraining.ZeroCenteredGradientPenalty = ZeroCenteredGradientPenalty(norm)

    The gradient is taken in ``Samples``, before R3GAN's ``Preprocessor`` (augmentation), as
    R3GAN takes it; local norms (``"w2"``) are measured at ``Samples``. ``Gamma`` still comes
    from R3GAN's schedule: a norm other than L2 changes the size of the penalty, so re-tune it
    (see the page of this integration).

    Args:
        norm: the norm of ``B``, a :class:`lipreg.Norm` or a text spec (``"sobolev:s=1"``).
        check_finite: raise ``ValueError`` if a squared dual norm is NaN or inf (one host
            synchronisation per call).

    Shapes:
        ``Samples``: ``[B, C, H, W]`` requiring grad; ``Critics``: the discriminator's scores
        ``[B]`` computed from them; returns ``[B]`` in the dtype of ``Samples``.
    """

    def __init__(self, norm: Norm | str = "l2", *, check_finite: bool = True) -> None:
        self.norm = parse_norm(norm)
        self.check_finite = bool(check_finite)

    def __call__(self, Samples: Tensor, Critics: Tensor) -> Tensor:
        """Squared dual norms ``[B]`` of ``d Critics.sum() / d Samples``, differentiable in
        the discriminator's parameters."""
        return squared_dual_norms(
            self.norm,
            Critics,
            Samples,
            names=("Critics", "Samples"),
            hint="as R3GAN's AccumulateDiscriminatorGradients does",
            check_finite=self.check_finite,
            dtype=Samples.dtype,
        )

    def __repr__(self) -> str:
        return f"ZeroCenteredGradientPenalty(norm={self.norm!r})"
