"""Walks over a checkpoint's content (nested dicts, lists and tuples of tensors and plain
values): its digest, and the places that hold NaN or infinite numbers."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import Tensor


def digest(tree: object) -> str:
    """The SHA-256 (hex) of ``tree``'s structure and values: keys and containers in order,
    the type of every leaf, and every tensor's dtype, shape and bytes.

    ``torch.save`` followed by ``torch.load`` gives a tree with the same digest (dicts keep
    their order, floats round-trip exactly); any changed value, key or tensor byte gives
    another.
    """
    h = hashlib.sha256()
    _feed(h, tree)
    return h.hexdigest()


def _feed(h: Any, x: object) -> None:
    if isinstance(x, Tensor):
        t = x.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{list(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(x, dict):
        h.update(f"D{len(x)};".encode())
        for key, value in x.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(x, (list, tuple)):
        h.update(f"{'L' if isinstance(x, list) else 'U'}{len(x)};".encode())
        for item in x:
            _feed(h, item)
    elif isinstance(x, str):
        data = x.encode("utf-8", "surrogatepass")
        h.update(f"S{len(data)};".encode() + data)
    elif isinstance(x, bytes):
        h.update(f"B{len(x)};".encode() + x)
    else:  # None, bool, int, float (repr round-trips exactly) and anything torch.load allows
        h.update(f"{type(x).__qualname__}:{x!r};".encode())


def non_finite(tree: object, path: str = "") -> list[str]:
    """The ``/``-separated paths of the floating-point tensors and floats in ``tree`` that
    hold NaN or an infinity, e.g. ``["critic/net.0.weight"]``."""
    if isinstance(tree, Tensor):
        bad = (tree.is_floating_point() or tree.is_complex()) and not bool(
            torch.isfinite(tree.detach()).all()
        )
        return [path] if bad else []
    if isinstance(tree, float):
        return [] if math.isfinite(tree) else [path]
    if isinstance(tree, dict):
        items: Any = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return []
    return [
        found
        for key, value in items
        for found in non_finite(value, f"{path}/{key}" if path else str(key))
    ]
