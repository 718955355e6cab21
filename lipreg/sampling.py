"""Where a gradient penalty evaluates the critic's derivative.

A sampler is any callable ``(real, fake) -> x_hat`` taking the (detached) real and fake
batches, ``[B, ...]`` each (``fake`` may be ``None`` when the penalty is called without
fakes), and returning the points ``[B', ...]`` at which ``||dD(x_hat)||_{B*}`` is penalised.
Write your own as a plain function; the named ones are below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import torch
from torch import Tensor

Sampler: TypeAlias = Callable[[Tensor, "Tensor | None"], Tensor]


def _need_fake(fake: Tensor | None, sampling: str) -> Tensor:
    if fake is None:
        raise TypeError(
            f"sampling={sampling!r} needs fake samples: call penalty(critic, real, fake), "
            "or use sampling='real'"
        )
    return fake


def interpolate(real: Tensor, fake: Tensor | None) -> Tensor:
    """WGAN-GP's points: ``x_hat = eps * real + (1 - eps) * fake``, ``eps ~ U[0, 1]`` per sample.

    ``eps`` has shape ``[B, 1, ..., 1]`` and is drawn with ``torch.rand`` from the device's
    default generator, exactly as in hand-written WGAN-GP, so seeded runs agree with it.
    """
    fake = _need_fake(fake, "interpolate")
    if real.shape[0] != fake.shape[0]:
        raise ValueError(
            f"sampling='interpolate' pairs real[i] with fake[i], but real has {real.shape[0]} "
            f"samples and fake {fake.shape[0]}; pass equally sized batches"
        )
    eps = torch.rand(
        (real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype, device=real.device
    )
    return eps * real + (1 - eps) * fake


def real_samples(real: Tensor, fake: Tensor | None) -> Tensor:
    """The real batch itself (zero-centred R1-style evaluation points)."""
    return real


def fake_samples(real: Tensor, fake: Tensor | None) -> Tensor:
    """The fake batch itself (R2-style evaluation points)."""
    return _need_fake(fake, "fake")


def dragan(real: Tensor, fake: Tensor | None) -> Tensor:
    """DRAGAN's perturbed real points (Kodali et al. 2017): ``x_hat = real + 0.5 * std * u``,
    ``u ~ U[0, 1]`` drawn per element.

    ``std`` is one number: the standard deviation of all entries of the real batch
    (population form, ``correction=0``), as the reference implementation's
    ``minibatch.std()`` in NumPy computes it; it is not per sample or per channel. The noise
    is one-sided (``u >= 0``), as in the reference code. ``fake`` is not used.
    """
    u = torch.rand_like(real)
    return real + 0.5 * real.std(correction=0) * u


def dragan_interpolate(real: Tensor, fake: Tensor | None) -> Tensor:
    """The points the DRAGAN reference code penalises: uniform on the segment from each real
    point to its :func:`dragan` perturbation, ``x_hat = real + alpha * (x_p - real)`` with
    ``alpha ~ U[0, 1]`` per sample (drawn after the perturbation). ``fake`` is not used."""
    perturbed = dragan(real, fake)
    alpha = torch.rand(
        (real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype, device=real.device
    )
    return real + alpha * (perturbed - real)


SAMPLERS: dict[str, Sampler] = {
    "interpolate": interpolate,
    "real": real_samples,
    "fake": fake_samples,
    "dragan": dragan,
    "dragan_interpolate": dragan_interpolate,
}


def resolve_sampler(sampling: str | Sampler) -> Sampler:
    """The sampler named ``sampling`` (one of :data:`SAMPLERS`), or ``sampling`` if callable."""
    if isinstance(sampling, str):
        if sampling not in SAMPLERS:
            raise ValueError(
                f"sampling must be one of {sorted(SAMPLERS)} or a callable (real, fake) -> x_hat, "
                f"got {sampling!r}"
            )
        return SAMPLERS[sampling]
    if not callable(sampling):
        raise TypeError(
            "sampling must be a name or a callable (real, fake) -> x_hat, "
            f"got {type(sampling).__name__}"
        )
    return sampling
