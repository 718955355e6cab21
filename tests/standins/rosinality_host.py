"""A stand-in for rosinality's stylegan2-pytorch ``train.py`` R1 (written for lipreg from
StyleGAN2's R1, Karras et al. 2020; none of rosinality's code).

``d_r1_loss(real_pred, real_img)``: the batch mean of ``||grad_x sum real_pred||_2^2``,
the input gradient taken inside ``op.conv2d_gradfix.no_weight_gradients()``.
:func:`regularise` is the host's lazy R1 step: every ``d_reg_every``-th step, zero the
discriminator's gradients, backpropagate ``r1 / 2 * d_r1_loss(...) * d_reg_every`` plus
``0 * real_pred[0]`` (keeps every parameter in the graph) and step the optimiser; the loss
is looked up in the module at call time, so reassigning ``d_r1_loss`` here changes it.
With ``augment_p`` (the host's ``--augment``) the discriminator scores
``augment(real_img, p)``, the module's random augmentation with the host's signature
``augment(img, p, transform_matrix=(None, None)) -> (img, transforms)``, also looked up at
call time (the host's ``__main__`` may rebind it).
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from op import conv2d_gradfix
from random_augment import apply, draw
from torch import Tensor, nn


def d_r1_loss(real_pred: Tensor, real_img: Tensor) -> Tensor:
    with conv2d_gradfix.no_weight_gradients():
        (grad,) = torch.autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def augment(img: Tensor, p: float, transform_matrix: Any = (None, None)) -> tuple[Tensor, Any]:
    """``img`` randomly augmented with probability ``p`` (new draws unless
    ``transform_matrix``, the transforms of an earlier call, is given), and the transforms."""
    params, _ = transform_matrix
    if params is None:
        params = draw(img, p)
    return apply(img, params), (params, None)


def regularise(
    step: int,
    real_img: Tensor,
    discriminator: nn.Module,
    optimiser: torch.optim.Optimizer,
    r1: float,
    d_reg_every: int,
    augment_p: float | None = None,
) -> Tensor | None:
    """The host's R1 step at ``step`` (None when not due); returns the detached R1 loss."""
    if step % d_reg_every:
        return None
    real_img = real_img.detach()
    real_img.requires_grad = True
    host = sys.modules[__name__]
    real_img_aug = real_img if augment_p is None else host.augment(real_img, augment_p)[0]
    real_pred = discriminator(real_img_aug)
    r1_loss = host.d_r1_loss(real_pred, real_img)
    discriminator.zero_grad()
    (r1 / 2 * r1_loss * d_reg_every + 0 * real_pred[0]).backward()
    optimiser.step()
    return r1_loss.detach()
