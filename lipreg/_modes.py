"""Temporarily switching a critic to eval mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lipreg.derivative import _modules_of


@contextmanager
def eval_mode(critic: object, enabled: bool = True) -> Iterator[None]:
    """Every module of ``critic`` (a module, bound method or partial of one) in eval mode while
    ``enabled``; each module gets its own training flag back on exit."""
    modules = [m for root in _modules_of(critic) for m in root.modules()] if enabled else []
    flags = [m.training for m in modules]
    for m in modules:
        m.training = False
    try:
        yield
    finally:
        for m, flag in zip(modules, flags, strict=True):
            m.training = flag
