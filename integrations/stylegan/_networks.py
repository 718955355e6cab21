"""The host's ways with its networks: style mixing in the generator, blur and augmentation
before the discriminator, DDP sync contexts around both, statistics through its
``training_stats``, gradients accumulated ``gain`` times."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._host import Host
from ._protocol import Protocol


class HostNetworks:
    """``run_G`` and ``run_D`` as the hosts' losses define them (a mixin of
    :class:`~lipreg.integrations.stylegan.BanachLoss`, which sets the attributes)."""

    protocol: Protocol
    host: Host
    G_mapping: nn.Module
    G_synthesis: nn.Module
    D: nn.Module
    augment_pipe: nn.Module | None
    style_mixing_prob: float
    blur_init_sigma: float
    blur_fade_kimg: float

    def run_G(self, z: Tensor, c: Tensor, sync: bool, update_emas: bool) -> tuple[Tensor, Tensor]:
        """Images and their ws, with style mixing (probability ``style_mixing_prob``)."""
        ada = self.protocol == "ada"
        emas: dict[str, bool] = {} if ada else {"update_emas": update_emas}
        with self.host.ddp_sync(self.G_mapping, sync):
            ws: Tensor = self.G_mapping(z, c, **emas)
            if self.style_mixing_prob > 0:
                layers = ws.shape[1]
                cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, layers)
                mix = torch.rand([], device=ws.device) < self.style_mixing_prob
                cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, layers))
                second = {"skip_w_avg_update": True} if ada else {"update_emas": False}
                ws[:, cutoff:] = self.G_mapping(torch.randn_like(z), c, **second)[:, cutoff:]
        with self.host.ddp_sync(self.G_synthesis, sync):
            img: Tensor = self.G_synthesis(ws, **emas)
        return img, ws

    def run_D(
        self, img: Tensor, c: Tensor, sync: bool, blur_sigma: float, update_emas: bool
    ) -> Tensor:
        """Logits ``[B, 1]`` of the (blurred, augmented) images."""
        taps = math.floor(blur_sigma * 3)
        if taps > 0:
            assert self.host.upfirdn2d is not None
            # Gaussian of standard deviation ~ blur_sigma / sqrt(2 ln 2), as the host's.
            f = torch.arange(-taps, taps + 1, device=img.device).div(blur_sigma).square().neg()
            f = f.exp2()
            img = self.host.upfirdn2d.filter2d(img, f / f.sum())
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        with self.host.ddp_sync(self.D, sync):
            if self.protocol == "ada":
                logits: Tensor = self.D(img, c)
            else:
                logits = self.D(img, c, update_emas=update_emas)
        return logits

    def _report(self, name: str, value: Tensor) -> None:
        self.host.report(name, value)

    def _blur_sigma(self, cur_nimg: int) -> float:
        """StyleGAN3's blur of the discriminator's inputs, fading out over blur_fade_kimg."""
        if self.blur_fade_kimg <= 0:
            return 0.0
        return max(1 - cur_nimg / (self.blur_fade_kimg * 1e3), 0) * self.blur_init_sigma


def backward(loss: Tensor, gain: float) -> None:
    """Accumulate ``gain * mean(loss)`` into the parameters' gradients (the hosts' step)."""
    torch.autograd.backward(loss.mean().mul(gain))
