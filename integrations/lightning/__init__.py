"""PyTorch Lightning: a WGAN ``LightningModule`` with a lipreg penalty, and a logging helper.

The one line, inside ``training_step`` with manual optimisation::

    d_loss = critic(fake).mean() - critic(real).mean() + self.penalty(critic, real, fake)

:class:`BanachWGAN` is that pattern ready to use (generator, critic, penalty, ``n_critic``);
:func:`log_penalty` logs a penalty's statistics through ``self.log_dict``. Lightning
(``lightning`` or ``pytorch_lightning``) is imported on first use of :class:`BanachWGAN`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._logging import log_penalty

if TYPE_CHECKING:
    from ._module import BanachWGAN

__all__ = ["BanachWGAN", "log_penalty"]


def __getattr__(name: str) -> Any:
    if name == "BanachWGAN":
        from ._module import BanachWGAN

        return BanachWGAN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
