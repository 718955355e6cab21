"""StudioGAN (POSTECH-CVLab/PyTorch-StudioGAN): lipreg penalties with its regulariser signatures.

StudioGAN calls ``losses.cal_grad_penalty(real_images, real_labels, fake_images,
discriminator, device)``, ``losses.cal_r1_reg(adv_output, images, device)`` and
``losses.stylegan_cal_r1_reg(adv_output, images)``; the functions returned here have those
signatures and compute lipreg penalties, so the change in StudioGAN is one assignment per
regulariser at the end of ``src/utils/losses.py`` (see docs/integrations/studiogan.md)::

    cal_grad_penalty = lipreg_studiogan.grad_penalty(LIPREG_PENALTY)

StudioGAN's own modules are imported only when a StyleGAN R1 is computed.
"""

from __future__ import annotations

from ._adapter import AdvOutput, grad_penalty, r1_reg, stylegan_r1_reg

__all__ = ["AdvOutput", "grad_penalty", "r1_reg", "stylegan_r1_reg"]
