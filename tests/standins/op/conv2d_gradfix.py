"""Stand-in for rosinality's ``op.conv2d_gradfix.no_weight_gradients``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

weight_gradients_disabled = False
#: how many times the context was entered.
entered = 0


@contextlib.contextmanager
def no_weight_gradients() -> Iterator[None]:
    global weight_gradients_disabled, entered
    old, weight_gradients_disabled = weight_gradients_disabled, True
    entered += 1
    try:
        yield
    finally:
        weight_gradients_disabled = old
