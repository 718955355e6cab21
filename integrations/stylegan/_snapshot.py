"""The penalty's state in the hosts' snapshot pickles: attached to ``D``, so that every
``network-snapshot-*.pkl`` carries it, and read back from one with ``resume_pkl``."""

from __future__ import annotations

import importlib
import pickle
import warnings
from typing import Any

from torch import nn

#: Name under which the penalty is attached to the discriminator, so that the hosts'
#: snapshot pickles (which save ``D``) carry its state.
ATTRIBUTE = "lipreg_penalty"


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper."""
    inner = getattr(module, "module", None)
    if isinstance(module, nn.parallel.DistributedDataParallel) and isinstance(inner, nn.Module):
        return inner
    return module


def saved_penalty(path: str) -> dict[str, Any] | None:
    """The ``state_dict`` of the penalty in the snapshot ``path`` (a file or a URL, read as
    the host reads ``--resume``), or ``None`` with a warning when the snapshot's ``D`` has
    none: NVIDIA's pretrained networks, or runs of the host's own loss (transfer learning
    then starts the penalty's estimates afresh)."""
    snapshot = _read(path)
    D = snapshot.get("D") if isinstance(snapshot, dict) else None
    if not isinstance(D, nn.Module):
        raise ValueError(
            f"resume_pkl={path!r} is not a host snapshot: expected a dict with the networks "
            f"'G', 'D', 'G_ema', got {type(snapshot).__name__}"
        )
    saved = getattr(D, ATTRIBUTE, None)
    if not isinstance(saved, nn.Module):
        warnings.warn(
            f"resume_pkl={path!r} holds no lipreg penalty (D.{ATTRIBUTE}), as NVIDIA's "
            "pretrained networks and runs of the host's own loss: the penalty starts with "
            "fresh estimates",
            UserWarning,
            stacklevel=3,
        )
        return None
    state: dict[str, Any] = saved.state_dict()
    return state


def _read(path: str) -> object:
    """The snapshot at ``path`` through the host's ``dnnlib.util.open_url`` (paths and URLs,
    cached downloads) and ``legacy.load_network_pkl`` (which also converts TensorFlow
    pickles); with plain ``pickle`` for local files where the host's modules are absent."""
    try:
        util = importlib.import_module("dnnlib.util")
        legacy = importlib.import_module("legacy")
    except ImportError:
        if "://" in path:
            raise ValueError(
                f"resume_pkl={path!r} is a URL, which the host's dnnlib.util.open_url "
                "downloads: run inside the host (train.py from its repository's root), or "
                "download the file and pass its path"
            ) from None
        with open(path, "rb") as f:
            return pickle.load(f)  # the host's own snapshot format
    with util.open_url(path) as f:
        return legacy.load_network_pkl(f)
