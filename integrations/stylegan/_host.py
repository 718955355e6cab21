"""The host's ``torch_utils`` helpers, imported when a loss is built (never at import time).

NVlabs' training scripts run from their repository root, so ``torch_utils`` is importable
whenever the host builds the loss; lipreg itself never needs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from torch import Tensor, nn

from .._imports import import_host_module


@dataclass(frozen=True)
class Host:
    """The helpers a loss uses, from whichever host is running."""

    training_stats: ModuleType
    conv2d_gradfix: ModuleType
    misc: ModuleType | None  #: StyleGAN2-ADA's ``misc.ddp_sync``; StyleGAN3 has no DDP wrapper
    upfirdn2d: ModuleType | None  #: StyleGAN3's blur filter

    def report(self, name: str, value: Tensor) -> None:
        self.training_stats.report(name, value)

    def ddp_sync(self, module: nn.Module, sync: bool) -> contextlib.AbstractContextManager[Any]:
        """The host's DDP gradient-sync context (StyleGAN2-ADA); a no-op for StyleGAN3."""
        if self.misc is None:
            return contextlib.nullcontext()
        context: contextlib.AbstractContextManager[Any] = self.misc.ddp_sync(module, sync)
        return context

    @contextlib.contextmanager
    def no_weight_gradients(self, disable: bool = True) -> Iterator[None]:
        """Skip weight gradients in the host's custom conv during an input-gradient pass
        (the hosts' R1 and path-length trick); StyleGAN2-ADA's version takes no argument."""
        if not disable:
            yield
            return
        with self.conv2d_gradfix.no_weight_gradients():
            yield


def load_host(protocol: str) -> Host:
    """Import the host's helpers; ``protocol`` is ``"ada"`` or ``"sg3"``."""

    def need(name: str) -> ModuleType:
        return import_host_module(
            name,
            "lipreg.integrations.stylegan.BanachLoss (which runs inside NVlabs' "
            "stylegan2-ada-pytorch or stylegan3 training code)",
            "run train.py from the host repository's root (as its README says), or put that "
            "directory on sys.path",
        )

    return Host(
        training_stats=need("torch_utils.training_stats"),
        conv2d_gradfix=need("torch_utils.ops.conv2d_gradfix"),
        misc=need("torch_utils.misc") if protocol == "ada" else None,
        upfirdn2d=need("torch_utils.ops.upfirdn2d") if protocol == "sg3" else None,
    )
