"""A stand-in for StudioGAN's regularisers and discriminator interface (written for lipreg).

It follows StudioGAN's signatures, not its code: ``cal_grad_penalty(real_images,
real_labels, fake_images, discriminator, device)`` returns WGAN-GP's
``E[(||grad_x D(x_hat)||_2 - 1)^2]`` at ``x_hat = eps real + (1 - eps) fake`` with
``eps ~ U[0, 1]`` drawn as ``torch.rand(B, 1)`` (the caller multiplies by ``gp_lambda``);
``cal_r1_reg(adv_output, images, device)`` and ``stylegan_cal_r1_reg(adv_output, images)``
return R1's ``0.5 E ||grad_x D(x)||_2^2`` from an output already computed on ``images``
(the caller multiplies by ``r1_lambda``). Discriminators are called as
``D(x, labels, eval=False)`` and return a dict whose ``"adv_output"`` is squeezed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from utils.style_ops import conv2d_gradfix


class Discriminator(nn.Module):
    """A small conditional critic with batch norm (as StudioGAN's ResNet discriminators)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.linear = nn.Linear(6 * 16, 1)
        self.embedding = nn.Embedding(num_classes, 6 * 16)

    def forward(
        self, x: Tensor, label: Tensor, eval: bool = False, adc_fake: bool = False
    ) -> dict[str, Tensor]:
        h = nn.functional.softplus(self.bn(self.conv(x))).flatten(1)
        adv = self.linear(h).squeeze() + (h * self.embedding(label)).sum(1) * 0.1
        return {"adv_output": adv, "h": h}


def cal_grad_penalty(real_images: Tensor, real_labels: Tensor, fake_images: Tensor,
                     discriminator: nn.Module, device: torch.device | str) -> Tensor:  # fmt: skip
    b = real_images.shape[0]
    eps = torch.rand(b, 1).to(device).view(b, 1, 1, 1)
    x_hat = (eps * real_images + (1 - eps) * fake_images).detach().requires_grad_(True)
    out = discriminator(x_hat, real_labels, eval=False)["adv_output"]
    (g,) = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)
    return ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def cal_r1_reg(adv_output: Tensor, images: Tensor, device: torch.device | str) -> Tensor:
    (g,) = torch.autograd.grad(adv_output.sum(), images, create_graph=True)
    return 0.5 * g.pow(2).flatten(1).sum(1).mean()


def stylegan_cal_r1_reg(adv_output: Tensor, images: Tensor) -> Tensor:
    with conv2d_gradfix.no_weight_gradients():
        (g,) = torch.autograd.grad(adv_output.sum(), images, create_graph=True)
    return (g.square().sum([1, 2, 3]) / 2).mean()
