"""``no_weight_gradients(disable=True)``: a flag the hosts' custom conv reads in backward."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

weight_gradients_disabled = False
#: how many times the context was entered with ``disable=True``.
entered = 0


@contextlib.contextmanager
def no_weight_gradients(disable: bool = True) -> Iterator[None]:
    global weight_gradients_disabled, entered
    old = weight_gradients_disabled
    if disable:
        weight_gradients_disabled = True
        entered += 1
    try:
        yield
    finally:
        weight_gradients_disabled = old
