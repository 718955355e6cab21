"""The critic as ``D = gamma * f``: the paper's objective, parametrised so that a large
``gamma`` trains as fast as ``gamma = 1``.

In the loss of Banach Wasserstein GAN (eq. 9)

    L(D) = (1/gamma) (E D(fake) - E D(real)) + lam E[(||dD(x_hat)||_{B*} / gamma - 1)^2]

``gamma`` only rescales the critic: with ``D = gamma f``,
``L(gamma f) = E f(fake) - E f(real) + lam E[(||df(x_hat)||_{B*} - 1)^2]``, the
``gamma = 1`` loss of ``f``. The objective, its minimisers and every value computed from
``D`` (scores, the penalty, ``(E D(real) - E D(fake)) / gamma``) are the same whichever way
``D`` is parametrised; what differs is how an optimiser reaches them. Adam moves every
weight by about its learning rate per step whatever the gradient's scale, so a plain
network must grow its weights until its slope is ``gamma`` (``E||X||_{B*}``, about 40 for
32x32 colour patches in ``W^{-3/2,2}``), while ``f`` only needs slope 1. See the theory page
for measurements.

:func:`scale_by_gamma` installs the parametrisation on an existing critic module in place
(a forward hook multiplying its output by the penalty's current ``gamma``), so the one line
and every integration stay as they are::

    penalty = BanachGP(norm=Sobolev(s=-1.5), lam="auto", gamma="auto").calibrate(loader)
    scale_by_gamma(critic, penalty)        # critic(x) is now gamma * f(x)
    d_loss = d_fake.mean() - d_real.mean() + penalty(critic, real, fake)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from lipreg.calibration import Calibration


class GammaScale:
    """The handle of :func:`scale_by_gamma`: :attr:`gamma` is the factor in use and
    :meth:`remove` restores the critic's own output."""

    def __init__(self, critic: nn.Module, source: Calibration | float) -> None:
        self._source = source
        self._ready = not isinstance(source, Calibration) or source.gamma_setting != "auto"
        self._handle = critic.register_forward_hook(self._hook)

    @property
    def gamma(self) -> Tensor:
        """The current factor, a 0-dim float32 tensor (a copy, so that later updates of a
        running estimate do not touch graphs that used it)."""
        source = self._source
        if not isinstance(source, Calibration):
            return torch.tensor(source, dtype=torch.float32)
        if source.gamma_setting != "auto":
            return torch.tensor(source.gamma_setting, dtype=torch.float32)
        if not self._ready:
            # One host synchronisation, on the first call only.
            if int(source.count) == 0:
                raise RuntimeError(
                    "scale_by_gamma: gamma='auto' has no estimate yet, and the critic's output "
                    "is scaled by it from its first call on; estimate it before training with "
                    "penalty.calibrate(real_batches)"
                )
            self._ready = True
        return source.means[1].detach().clone()

    def _hook(self, module: nn.Module, args: Any, output: Tensor) -> Tensor:
        return output * self.gamma.to(output.device)

    def remove(self) -> None:
        """Remove the scaling: the critic returns ``f(x)`` again."""
        self._handle.remove()


def scale_by_gamma(critic: nn.Module, gamma: nn.Module | float) -> GammaScale:
    """Make ``critic`` compute ``D(x) = gamma * f(x)``, ``f`` being its own forward.

    The paper's objective is unchanged (see :mod:`lipreg.scaling`); ``f`` is trained to have
    slope about 1 instead of ``D`` to have slope ``gamma``, which under Adam makes runs with
    ``gamma = E||X||_{B*}`` as fast as runs with ``gamma = 1``. Penalties, losses and logs
    see ``D`` as before, so nothing else in a training loop changes.

    With ``gamma="auto"`` the factor is the penalty's estimate ``E||X||_{B*}``, which must
    exist before the critic's first forward: run ``penalty.calibrate(real_batches)`` first
    (with its default ``freeze=True`` the factor is then a constant and the
    reparametrisation exact; unfrozen, it follows the running estimate).

    Args:
        critic: the critic module; a forward hook multiplies its output by ``gamma`` (state
            dict, parameters and wrappers such as DDP are untouched). Register it on the
            module itself, not on a DDP wrapper.
        gamma: a penalty with a Lipschitz constant gamma (:class:`lipreg.BanachGP`,
            :class:`lipreg.FiniteDifferenceGP`, or :class:`lipreg.Lazy` of one), whose
            current ``gamma`` is used at every call, or a fixed number ``> 0``.

    Returns:
        a :class:`GammaScale` handle (``handle.remove()`` undoes it).

    Shapes:
        the critic's output ``[B]`` or ``[B, 1]`` keeps its shape and dtype.
    """
    if not isinstance(critic, nn.Module):
        raise TypeError(
            f"critic must be an nn.Module (the hook goes on it), got {type(critic).__name__}; "
            "wrap a plain function as an nn.Module first"
        )
    return GammaScale(critic, _source(gamma))


def _source(gamma: object) -> Calibration | float:
    """The :class:`Calibration` holding a penalty's gamma, or a fixed number."""
    if isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be a finite number > 0 or a penalty, got {gamma!r}")
        return float(gamma)
    inner = getattr(gamma, "penalty", None)  # Lazy(penalty)
    if isinstance(gamma, nn.Module) and isinstance(inner, nn.Module):
        return _source(inner)
    calibration = getattr(gamma, "calibration", None)
    if isinstance(calibration, Calibration):
        return calibration
    raise TypeError(
        "gamma must be a number > 0 or a penalty whose gamma is a Lipschitz constant "
        f"(BanachGP, FiniteDifferenceGP or Lazy of one), got {type(gamma).__name__}"
        + (
            "; the gamma of BanachR1/BanachR2 is a weight, not a Lipschitz constant"
            if hasattr(gamma, "gamma")
            else ""
        )
    )
