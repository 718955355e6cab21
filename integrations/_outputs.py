"""Dual norms of input gradients of outputs a host computed itself.

StudioGAN, R3GAN and rosinality's stylegan2-pytorch evaluate the discriminator on inputs that
require grad and hand over its output, not the discriminator; their regularisers then take
``d output.sum() / d inputs``. The adapters do the same and measure that gradient with a
lipreg norm instead of the Euclidean one. The StyleGAN adapter takes the gradient itself
(it reuses the host's forward) and needs the per-sample values the hosts report.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lipreg import BanachR1
from lipreg._validation import check_batch
from lipreg.derivative import critic_output, detached_error
from lipreg.norms import Norm


def dual_squared(norm: Norm, gradient: Tensor, at: Tensor) -> Tensor:
    """``||g_b||_{B*}^2`` of an input gradient ``[B, ...]`` taken at ``at`` (the base points
    of local norms), ``[B]``, float32 at least with autocast off."""
    with torch.autocast(at.device.type, enabled=False):
        return norm.dual_squared(gradient, at=at.detach())


def r1_squares(penalty: BanachR1, gradient: Tensor, at: Tensor) -> Tensor:
    """The per-sample ``||g_b||_{B*}^2`` ``[B]`` of the input gradient ``gradient`` taken at
    ``at``, with ``penalty``'s statistics of its R1 ``(gamma / 2) E ||g_b||_{B*}^2`` recorded
    in ``penalty.stats`` and its finiteness checked, as a call of the penalty would."""
    squared = dual_squared(penalty.norm, gradient, at)
    penalty._from_squared_duals(squared)
    return squared


def squared_dual_norms(
    norm: Norm,
    outputs: Tensor,
    inputs: Tensor,
    *,
    names: tuple[str, str],
    hint: str,
    check_finite: bool,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``||d outputs.sum() / d inputs_b||_{B*}^2`` for every sample ``b``, ``[B]``,
    differentiable in the parameters that produced ``outputs`` (``create_graph``).

    The gradient is taken as the hosts take it (one ``autograd.grad`` of the summed outputs)
    and measured in float32 at least with autocast off, at ``inputs`` for local norms; the
    result is then cast to ``dtype`` if given (before the finiteness check), for hosts that
    compute their penalty in the gradient's own low precision. ``names`` are the host's names
    of ``(outputs, inputs)``; ``hint`` ends the message when ``inputs`` does not require grad
    (where the host sets it).
    """
    out_name, in_name = names
    check_batch(inputs, in_name)
    norm.check(inputs, in_name)
    if not inputs.requires_grad:
        raise ValueError(
            f"{in_name} must require grad and {out_name} must be computed from them: call "
            f"{in_name}.requires_grad_(True) before the discriminator, {hint}"
        )
    who = f"the discriminator ({out_name})"
    # per-sample scores, checked as a critic's; hosts may also hand over their sum
    summed = isinstance(outputs, Tensor) and outputs.ndim == 0 and outputs.is_floating_point()
    scores = outputs if summed else critic_output(outputs, inputs, who)
    (g,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True, allow_unused=True)
    if g is None:  # computed from the parameters, not from the inputs
        raise detached_error(f"the output of {who}")
    squared = dual_squared(norm, g, inputs)
    if dtype is not None:
        squared = squared.to(dtype)
    if check_finite and not bool(torch.isfinite(squared).all()):
        bad = int((~torch.isfinite(squared)).sum())
        raise ValueError(
            f"non-finite values in the penalty: {bad} of {squared.numel()} dual gradient norms "
            "are NaN or inf; the discriminator or the data diverged or contain NaN/inf "
            "(check_finite=False skips this check)"
        )
    return squared
