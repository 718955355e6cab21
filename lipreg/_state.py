"""Modules whose checkpoints are checked as a whole before anything is loaded."""

from __future__ import annotations

from typing import Any

from torch import nn


class CheckedState(nn.Module):
    """An ``nn.Module`` that validates its ``state_dict`` entries before loading any.

    ``nn.Module`` copies entries one by one and reports problems afterwards, which would leave
    running estimates half-loaded; subclasses list problems in :meth:`_state_problems` and a
    non-empty list aborts the load with a ``RuntimeError`` before the module changes. The
    check covers checked submodules too (they load after their parent), so a rejected state
    leaves the whole tree as it was.
    """

    def _state_problems(self, state_dict: dict[str, Any], prefix: str) -> list[str]:
        """What makes ``state_dict`` (keys under ``prefix``) unloadable into this module."""
        return []

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
        problems = [
            problem
            for name, module in self.named_modules(prefix=prefix.removesuffix("."))
            if isinstance(module, CheckedState)
            for problem in module._state_problems(state_dict, name + "." if name else "")
        ]
        if problems:
            raise RuntimeError(
                f"cannot load this state into {type(self).__name__}, nothing was loaded: "
                + "; ".join(problems)
            )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
