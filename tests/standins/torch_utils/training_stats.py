"""``report(name, value)``: the hosts' statistics channel; here it keeps every report."""

from __future__ import annotations

from typing import Any

import torch

#: name -> list of reported values (detached float64 tensors, flattened).
reports: dict[str, list[torch.Tensor]] = {}


def report(name: str, value: Any) -> Any:
    """Record ``value`` under ``name`` and return it unchanged, like the host."""
    flat = torch.as_tensor(value).detach().to(torch.float64).flatten()
    reports.setdefault(name, []).append(flat)
    return value


def clear() -> None:
    reports.clear()
