"""Schedules over generator steps: the learning rate, Adam's beta2, the weight gamma of a
zero-centred penalty and the half-life of the generator's weight average.

Every schedule runs from its start value at step 0 to its final value at the horizon
``T = --decay-steps`` (default ``--steps``) and holds the final value after. The shapes:

- linear: ``start + (end - start) t / T``;
- cosine: ``start + (end - start) (1 - cos(pi t / T)) / 2``, R3GAN's ``cosine_decay_with_warmup``
  without warm-up (its ``training_loop.py``), which drives its learning rate, beta2, gamma and
  EMA half-life.

The learning rate follows ``--lr-decay`` from ``--lr`` to ``--lr-final`` (default 0); beta2,
gamma and the EMA half-life follow the cosine from ``--betas``'s second value, ``--gamma``
and 0 to ``--beta2-final``, ``--gamma-final`` and ``--ema-half-life`` when those are given.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lipreg.train.config import TrainConfig


def cosine(start: float, end: float, t: float, horizon: float) -> float:
    """``start + (end - start) (1 - cos(pi t / horizon)) / 2`` up to ``horizon``, ``end``
    after."""
    if t >= horizon:
        return end
    return start + (end - start) * (1 - math.cos(math.pi * t / horizon)) / 2


class Schedule:
    """The schedules of a run of ``config`` (see the module docstring)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    @property
    def horizon(self) -> int:
        """The step ``T`` at which every schedule reaches its final value."""
        c = self.config
        return c.steps if c.decay_steps is None else c.decay_steps

    def lr_factor(self, step: int) -> float:
        """The learning rate at ``step`` as a fraction of ``--lr`` (a ``LambdaLR`` factor)."""
        c = self.config
        if c.lr_decay == "none":
            return 1.0
        end = 0.0 if c.lr_final is None else c.lr_final / c.lr
        if c.lr_decay == "linear":
            # As 1 - step / T for the default end of 0, bit for bit.
            return end + (1.0 - end) * max(0.0, 1.0 - step / self.horizon)
        return cosine(1.0, end, step, self.horizon)

    def beta2(self, step: int) -> float | None:
        """Adam's beta2 at ``step``, or None if it is constant."""
        c = self.config
        if c.beta2_final is None:
            return None
        return cosine(c.betas[1], c.beta2_final, step, self.horizon)

    def gamma(self, step: int) -> float | None:
        """The zero-centred penalty's weight at ``step``, or None if it is constant."""
        c = self.config
        if c.gamma_final is None:
            return None
        assert isinstance(c.gamma, float)  # a zero-centred penalty's weight
        return cosine(c.gamma, c.gamma_final, step, self.horizon)

    def ema_decay(self) -> Callable[[int], float]:
        """The weight average's decay ``d_t`` after ``t`` averages (see
        :func:`lipreg.train.loop.ema_update`): with ``--ema-half-life H``,
        ``d_t = 0.5 ** (1 / h_t)`` for a half-life ``h_t`` of cosine(0 -> H) steps (R3GAN's,
        which counts it in images); otherwise ``min(--ema, (1 + t) / (10 + t))``."""
        c = self.config
        if c.ema_half_life is None:
            decay = c.ema
            return lambda t: min(decay, (1.0 + t) / (10.0 + t))
        half_life, horizon = c.ema_half_life, self.horizon

        def by_half_life(t: int) -> float:
            h = cosine(0.0, half_life, t, horizon)
            return 0.5 ** (1.0 / h) if h > 0 else 0.0

        return by_half_life
