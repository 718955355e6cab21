"""A stand-in for rosinality's stylegan2-pytorch ``train.py`` R1 (written for lipreg from
StyleGAN2's R1, Karras et al. 2020; none of rosinality's code).

``d_r1_loss(real_pred, real_img)``: the batch mean of ``||grad_x sum real_pred||_2^2``,
the input gradient taken inside ``op.conv2d_gradfix.no_weight_gradients()``.
:func:`regularise` is the host's lazy R1 step: every ``d_reg_every``-th step, zero the
discriminator's gradients, backpropagate ``r1 / 2 * d_r1_loss(...) * d_reg_every`` plus
``0 * real_pred[0]`` (keeps every parameter in the graph) and step the optimiser; the loss
is looked up in the module at call time, so reassigning ``d_r1_loss`` here changes it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from op import conv2d_gradfix
from torch import Tensor, nn


def d_r1_loss(real_pred: Tensor, real_img: Tensor) -> Tensor:
    with conv2d_gradfix.no_weight_gradients():
        (grad,) = torch.autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def regularise(
    step: int,
    real_img: Tensor,
    discriminator: nn.Module,
    optimiser: torch.optim.Optimizer,
    r1: float,
    d_reg_every: int,
    augment: Callable[[Tensor], Tensor] = lambda x: x,
) -> Tensor | None:
    """The host's R1 step at ``step`` (None when not due); returns the detached R1 loss."""
    if step % d_reg_every:
        return None
    real_img = real_img.detach()
    real_img.requires_grad = True
    real_pred = discriminator(augment(real_img))
    r1_loss = sys.modules[__name__].d_r1_loss(real_pred, real_img)
    discriminator.zero_grad()
    (r1 / 2 * r1_loss * d_reg_every + 0 * real_pred[0]).backward()
    optimiser.step()
    return r1_loss.detach()
