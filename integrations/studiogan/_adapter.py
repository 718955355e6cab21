"""Callables with StudioGAN's regulariser signatures that compute lipreg penalties."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor, nn

from lipreg import BanachR1, GradientPenalty

from .._imports import import_host_module
from .._outputs import squared_dual_norms


class AdvOutput(nn.Module):
    """A StudioGAN discriminator as a lipreg critic: ``x, labels -> adv_output [B]``.

    StudioGAN's discriminators return a dict whose ``"adv_output"`` is squeezed (a 0-dim
    tensor for a batch of one); this restores ``[B]``. Being a module that holds the
    discriminator lets lipreg find its batch-norm layers (their running statistics are not
    updated by the penalty's evaluation).
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        out = self.discriminator(x, labels, eval=False)
        adv: Tensor = out["adv_output"] if isinstance(out, dict) else out
        return adv.reshape(x.shape[0])


GradPenaltyFn = Callable[[Tensor, Tensor, Tensor, nn.Module, Any], Tensor]


def grad_penalty(penalty: GradientPenalty) -> GradPenaltyFn:
    """A drop-in for StudioGAN's ``cal_grad_penalty(real_images, real_labels, fake_images,
    discriminator, device)``: ``penalty(D, real, fake, labels=real_labels)``.

    StudioGAN multiplies the result by ``LOSS.gp_lambda``. With
    ``BanachGP("l2", lam=1, gamma=1)`` the value is StudioGAN's ``E[(||grad D(x_hat)||_2 -
    1)^2]``; for float32 images on the CPU even with the same interpolation weights from the
    same seed (StudioGAN draws ``torch.rand(B, 1)`` in float32 on the CPU, lipreg in the
    images' dtype and device: float64 or CUDA images get other weights of the same
    distribution). Give lipreg's ``lam`` (e.g. ``"auto"``) with ``gp_lambda: 1``, or keep
    ``gp_lambda`` and ``lam=1``. Interpolates are scored with the real labels, as in StudioGAN.
    """
    if not isinstance(penalty, GradientPenalty):
        raise TypeError(
            "grad_penalty needs a lipreg penalty module such as BanachGP(...), got "
            f"{type(penalty).__name__}"
        )

    def cal_grad_penalty(
        real_images: Tensor,
        real_labels: Tensor,
        fake_images: Tensor,
        discriminator: nn.Module,
        device: Any,
    ) -> Tensor:
        critic = AdvOutput(discriminator)
        real = real_images.to(device)
        value: Tensor = penalty(critic, real, fake_images.to(real.device), labels=real_labels)
        return value

    return cal_grad_penalty


def _r1_weight(penalty: BanachR1, name: str) -> BanachR1:
    if not isinstance(penalty, BanachR1):
        raise TypeError(
            f"{name} needs a lipreg.BanachR1 (its norm and gamma are used), "
            f"got {type(penalty).__name__}"
        )
    return penalty


def _r1_of_outputs(penalty: BanachR1, adv_output: Tensor, images: Tensor) -> Tensor:
    """``(gamma / 2) E ||d adv_output / d images||_{B*}^2`` from outputs StudioGAN computed.

    StudioGAN hands over the discriminator's output on ``images`` (a leaf requiring grad),
    not the discriminator, so ``penalty(critic, real)`` (which evaluates the critic itself)
    cannot be used; the input gradient is taken of the given output as lipreg's batched
    autograd engine does, and measured with the penalty's norm at ``images``.
    """
    squared = squared_dual_norms(
        penalty.norm,
        adv_output,
        images,
        names=("adv_output", "images"),
        hint="as StudioGAN's worker does",
        check_finite=False,  # left to _from_squared_duals, which knows the GradScaler
    )
    return penalty._from_squared_duals(squared)


def r1_reg(penalty: BanachR1) -> Callable[[Tensor, Tensor, Any], Tensor]:
    """A drop-in for StudioGAN's ``cal_r1_reg(adv_output, images, device)``.

    StudioGAN multiplies the result by ``LOSS.r1_lambda``; ``BanachR1("l2", gamma=1)`` gives
    its ``0.5 E ||grad D(x)||_2^2`` exactly.
    """
    r1 = _r1_weight(penalty, "r1_reg")

    def cal_r1_reg(adv_output: Tensor, images: Tensor, device: Any) -> Tensor:
        return _r1_of_outputs(r1, adv_output, images)

    return cal_r1_reg


@contextlib.contextmanager
def _studiogan_no_weight_gradients() -> Iterator[None]:
    gradfix = import_host_module(
        "utils.style_ops.conv2d_gradfix",
        "lipreg.integrations.studiogan.stylegan_r1_reg (which runs inside StudioGAN)",
        "run StudioGAN from its src/ directory, as its README says",
    )
    with gradfix.no_weight_gradients():
        yield


def stylegan_r1_reg(penalty: BanachR1) -> Callable[[Tensor, Tensor], Tensor]:
    """A drop-in for StudioGAN's ``stylegan_cal_r1_reg(adv_output, images)`` (StyleGAN
    backbones): as :func:`r1_reg`, inside StudioGAN's ``conv2d_gradfix.no_weight_gradients``.
    """
    r1 = _r1_weight(penalty, "stylegan_r1_reg")

    def stylegan_cal_r1_reg(adv_output: Tensor, images: Tensor) -> Tensor:
        with _studiogan_no_weight_gradients():
            return _r1_of_outputs(r1, adv_output, images)

    return stylegan_cal_r1_reg
