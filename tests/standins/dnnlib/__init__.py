"""A stand-in for the StyleGAN hosts' ``dnnlib`` (written for lipreg): ``EasyDict``, the
config dict of their ``train.py``, and ``util.open_url``."""

from __future__ import annotations

from typing import Any

from . import util


class EasyDict(dict[str, Any]):
    """A dict whose keys are also attributes; reading a missing one raises AttributeError
    (as the hosts' configs do)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


__all__ = ["EasyDict", "util"]
