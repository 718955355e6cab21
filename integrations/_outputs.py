"""Dual norms of input gradients of outputs a host computed itself.

StudioGAN, R3GAN and rosinality's stylegan2-pytorch evaluate the discriminator on inputs that
require grad and hand over its output, not the discriminator; their regularisers then take
``d output.sum() / d inputs``. The adapters do the same and measure that gradient with a
lipreg norm instead of the Euclidean one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lipreg._validation import check_batch
from lipreg.norms import Norm


def squared_dual_norms(
    norm: Norm,
    outputs: Tensor,
    inputs: Tensor,
    *,
    names: tuple[str, str],
    hint: str,
    check_finite: bool,
) -> Tensor:
    """``||d outputs.sum() / d inputs_b||_{B*}^2`` for every sample ``b``, ``[B]``,
    differentiable in the parameters that produced ``outputs`` (``create_graph``).

    The gradient is taken as the hosts take it (one ``autograd.grad`` of the summed outputs)
    and measured in float32 at least with autocast off, at ``inputs`` for local norms.
    ``names`` are the host's names of ``(outputs, inputs)``; ``hint`` ends the message when
    ``inputs`` does not require grad (where the host sets it).
    """
    out_name, in_name = names
    check_batch(inputs, in_name)
    norm.check(inputs, in_name)
    if not inputs.requires_grad:
        raise ValueError(
            f"{in_name} must require grad and {out_name} must be computed from them: call "
            f"{in_name}.requires_grad_(True) before the discriminator, {hint}"
        )
    (g,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    with torch.autocast(inputs.device.type, enabled=False):
        squared = norm.dual_squared(g, at=inputs.detach())
    if check_finite and not bool(torch.isfinite(squared).all()):
        bad = int((~torch.isfinite(squared)).sum())
        raise ValueError(
            f"non-finite values in the penalty: {bad} of {squared.numel()} dual gradient norms "
            "are NaN or inf; the discriminator or the data diverged or contain NaN/inf "
            "(check_finite=False skips this check)"
        )
    return squared
