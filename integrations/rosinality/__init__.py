"""rosinality's stylegan2-pytorch: its R1 in any lipreg norm, exact or without double
backward.

``train.py`` computes R1 with ``d_r1_loss(real_pred, real_img)``, the batch mean of the
squared Euclidean norm of ``d real_pred.sum() / d real_img``, and regularises lazily: every
``d_reg_every`` steps it backpropagates ``args.r1 / 2 * r1_loss * args.d_reg_every``. The one
change, after the host's ``def d_r1_loss`` (see docs/integrations/rosinality.md)::

    d_r1_loss = lipreg.integrations.rosinality.R1Loss("sobolev:s=1")

or, for R1 estimated from forward passes (:class:`lipreg.ApproxR1`), two lines in
``__main__`` after the discriminator::

    d_r1_loss = lipreg.integrations.rosinality.ApproxR1Loss(discriminator, "l2", sigma=0.03)
    augment = d_r1_loss.replaying(augment)

The host's ``op`` package is imported when the exact loss is computed, never here.
"""

from __future__ import annotations

from ._approx import ApproxR1Loss
from ._r1 import R1Loss

__all__ = ["ApproxR1Loss", "R1Loss"]
