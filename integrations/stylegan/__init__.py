"""NVlabs StyleGAN2-ADA and StyleGAN3: ``BanachLoss``, built by the host from its name.

The one line, in the host's ``train.py``::

    c.loss_kwargs.class_name = 'lipreg.integrations.stylegan.BanachLoss'

The host's ``torch_utils`` package is imported when the loss is built, not here.
"""

from .loss import ATTRIBUTE, BanachLoss

__all__ = ["ATTRIBUTE", "BanachLoss"]
