"""R3GAN (brownvc/R3GAN, "The GAN is dead; long live the GAN!", NeurIPS 2024): its R1 and R2
in any lipreg norm, exact or without double backward.

R3GAN's ``R3GAN/Trainer.py`` computes both zero-centred penalties of the discriminator step
with the static method ``AdversarialTraining.ZeroCenteredGradientPenalty(Samples, Critics)``
and adds ``(Gamma / 2) * (R1Penalty + R2Penalty)`` to its relativistic loss. The one change,
at the end of the user's copy of that file (see docs/integrations/r3gan.md)::

    from lipreg.integrations.r3gan import ZeroCenteredGradientPenalty as BanachPenalty
    AdversarialTraining.ZeroCenteredGradientPenalty = BanachPenalty("sobolev:s=1")

or, for R1 and R2 estimated from forward passes (:class:`lipreg.ApproxR1R2`), the whole
discriminator step::

    from lipreg.integrations.r3gan import AccumulateDiscriminatorGradients as ApproxStep
    AdversarialTraining.AccumulateDiscriminatorGradients = ApproxStep("l2", sigma=0.03)

R3GAN's own code is never imported here.
"""

from __future__ import annotations

from ._penalty import ZeroCenteredGradientPenalty
from ._step import AccumulateDiscriminatorGradients

__all__ = ["AccumulateDiscriminatorGradients", "ZeroCenteredGradientPenalty"]
