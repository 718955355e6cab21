"""Lazy regularisation: a penalty applied on every k-th call only, scaled by k."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lipreg._state import CheckedState
from lipreg._validation import check_critic, check_int, upcast
from lipreg.derivative import Critic
from lipreg.norms import Norm
from lipreg.penalty import NormPenalty, check_pair


class Lazy(CheckedState):
    """Lazy regularisation (Karras et al., StyleGAN2, CVPR 2020): evaluate ``penalty`` on
    every ``every``-th call and return it multiplied by ``every``, so that its average over
    calls is the eager penalty's, at a fraction of the cost.

    Calls ``0, every, 2 every, ...`` (counting from construction, or from the loaded
    checkpoint) evaluate ``every * penalty(critic, real, fake, **critic_kwargs)``; the
    others return a 0-dim zero on ``real``'s device in ``real``'s floating dtype (float32 at
    least, as penalties compute), which does not require grad and never runs the critic.
    Adding it to the loss is harmless; to skip the backward of a separate regularisation
    step, as StyleGAN2 does, test the result::

        reg = lazy(critic, real)
        if reg.requires_grad:   # only on evaluating calls
            reg.backward()

    :attr:`due` says before a call whether it will evaluate. Wrapped penalties keep their own
    state and statistics (``lazy.penalty.stats`` is from the last evaluating call; running
    ``"auto"`` estimates only see the batches of evaluating calls).

    Every call, evaluating or not, checks its inputs first; a call that raises does not
    advance the counter. When the wrapped penalty checks finiteness (``check_finite``), an
    evaluating call also raises if ``every`` times its finite value overflows (one more host
    synchronisation on evaluating calls; the wrapped penalty has then already recorded the
    call). The counter is a buffer (``calls``, int64) and ``every`` is recorded
    in the extra state, so checkpoints resume the schedule; a state saved with another
    ``every`` or a malformed counter is rejected before anything is loaded.

    Args:
        penalty: any lipreg penalty module called as
            ``penalty(critic, real, fake, **critic_kwargs)`` (e.g. :class:`lipreg.BanachR1`,
            :class:`lipreg.BanachGP`).
        every: the interval ``k >= 1`` (StyleGAN2 uses 16 for R1); 1 is the eager penalty.
    """

    calls: Tensor

    def __init__(self, penalty: nn.Module, every: int = 16) -> None:
        super().__init__()
        if not isinstance(penalty, nn.Module) or not callable(penalty):
            raise TypeError(
                "penalty must be a lipreg penalty module such as BanachR1() or BanachGP(), "
                f"got {type(penalty).__name__}"
            )
        check_int(every, "every", 1)  # StyleGAN2 uses 16
        self.penalty = penalty
        self.every = every
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        # Host-side copy of ``calls``: deciding whether a call is due must not synchronise
        # with the device on every step.
        self._calls = 0

    @property
    def stats(self) -> Any:
        """The wrapped penalty's statistics of the last evaluating call (None before one)."""
        return getattr(self.penalty, "stats", None)

    @property
    def due(self) -> bool:
        """Whether the next call evaluates the penalty."""
        return self._calls % self.every == 0

    def forward(
        self, critic: Critic, real: Tensor, fake: Tensor | None = None, **critic_kwargs: Any
    ) -> Tensor:
        """``every * penalty(...)`` on due calls, else a zero (see the class docstring)."""
        check_critic(critic)
        check_pair(real, fake)
        norm = getattr(self.penalty, "norm", None)
        if isinstance(norm, Norm):
            norm.check(real, "real")
        if self.due:
            value: Tensor = self.penalty(critic, real, fake, **critic_kwargs) * self.every
            self._raise_if_overflow(value)
        else:
            value = torch.zeros((), dtype=upcast(real).dtype, device=real.device)
        self._calls += 1
        self.calls.fill_(self._calls)
        return value

    def _raise_if_overflow(self, value: Tensor) -> None:
        """Raise if ``every`` times a finite penalty overflowed, when the wrapped penalty checks
        finiteness (a second host synchronisation, on evaluating calls only)."""
        checks = isinstance(self.penalty, NormPenalty) and self.penalty._checks_finite
        if checks and not bool(torch.isfinite(value)):
            raise ValueError(
                f"non-finite values in the penalty: every={self.every} times the wrapped "
                f"penalty's value overflows {value.dtype} ({value.item()}). The critic "
                "diverged: lower the learning rate"
            )

    def get_extra_state(self) -> dict[str, int]:
        return {"every": self.every}

    def set_extra_state(self, state: Any) -> None:
        """Nothing to restore: ``every`` comes from the constructor (checked on load)."""

    def _state_problems(self, state_dict: dict[str, Any], prefix: str) -> list[str]:
        problems: list[str] = []
        calls = state_dict.get(prefix + "calls")
        if calls is not None and not (
            isinstance(calls, Tensor)
            and calls.shape == ()
            and not calls.is_floating_point()
            and int(calls) >= 0
        ):
            problems.append(f"{prefix}calls: expected a non-negative integer 0-dim tensor")
        extra = state_dict.get(prefix + "_extra_state", {"every": self.every})
        if not (isinstance(extra, dict) and type(extra.get("every")) is int):
            problems.append(
                f"{prefix}_extra_state: expected {{'every': interval}} with an integer "
                f"interval, got {extra!r}"
            )
        elif extra["every"] != self.every:
            problems.append(
                f"it was saved with every={extra['every']!r}, but this Lazy has "
                f"every={self.every}; build it with the same interval"
            )
        return problems

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._calls = int(self.calls)

    def extra_repr(self) -> str:
        return f"every={self.every}, calls={self._calls}"
