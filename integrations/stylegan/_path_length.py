"""StyleGAN2's path-length regularisation of the generator, as the hosts apply it."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._networks import HostNetworks, backward


class PathLength(HostNetworks):
    """``(||J_w^T y||_2 - a)^2`` with ``a`` a running mean of the lengths (a mixin of
    :class:`~lipreg.integrations.stylegan.BanachLoss`, which sets the attributes)."""

    pl_batch_shrink: int
    pl_decay: float
    pl_weight: float
    pl_no_weight_grad: bool
    pl_mean: Tensor

    def _path_length(self, gen_z: Tensor, gen_c: Tensor, sync: bool, gain: float) -> None:
        """One ``Greg`` round: the penalty on a shrunk batch, backpropagated times ``gain``."""
        n = gen_z.shape[0] // self.pl_batch_shrink
        img, ws = self.run_G(gen_z[:n], gen_c[:n], sync=sync, update_emas=False)
        y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        disable = True if self.protocol == "ada" else self.pl_no_weight_grad
        with self.host.no_weight_gradients(disable):
            (jy,) = torch.autograd.grad([(img * y).sum()], [ws], create_graph=True)
        lengths = jy.square().sum(2).mean(1).sqrt()
        a = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(a.detach())
        pl = (lengths - a).square()
        self._report("Loss/pl_penalty", pl)
        loss = pl * self.pl_weight
        self._report("Loss/G/reg", loss)
        if self.protocol == "ada":
            # ADA's DDP needs every synthesis parameter in the graph of the synced backward.
            loss = img[:, 0, 0, 0] * 0 + loss
        backward(loss, gain)
