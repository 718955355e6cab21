"""``ddp_sync(module, sync)``: skip DDP's gradient all-reduce unless ``sync``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

#: (module type name, sync) of every entered context, in order.
sync_log: list[tuple[str, bool]] = []


@contextlib.contextmanager
def ddp_sync(module: torch.nn.Module, sync: bool) -> Iterator[None]:
    sync_log.append((type(module).__name__, bool(sync)))
    if sync or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        yield
    else:
        with module.no_sync():
            yield
