"""Hugging Face Accelerate: a lipreg penalty in an ``accelerate.Accelerator`` loop.

The one line, in the critic step::

    with accelerator.autocast():
        d_loss = critic(fake).mean() - critic(real).mean() + penalty(critic, real, fake)
    accelerator.backward(d_loss)

after ``penalty = prepare_penalty(accelerator, BanachGP(...))``, which puts the penalty on the
accelerator's device, hands it the accelerator's GradScaler (float16 mixed precision) and
registers it for ``accelerator.save_state`` / ``load_state``. Accelerate itself is only
used through the ``accelerator`` object passed in; this module does not import it.
"""

from __future__ import annotations

from ._recipe import prepare_penalty, reduced_stats

__all__ = ["prepare_penalty", "reduced_stats"]
