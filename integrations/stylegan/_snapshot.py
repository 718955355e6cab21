"""The penalty's state in the hosts' snapshot pickles: attached to ``D``, so that every
``network-snapshot-*.pkl`` carries it, and read back from one with ``resume_pkl`` when the
snapshot's penalty is like the loss's (otherwise transfer learning, with a warning)."""

from __future__ import annotations

import importlib
import pickle
import warnings
from collections.abc import Mapping
from typing import Any

from torch import nn

from lipreg.norms import Norm

#: Name under which the penalty is attached to the discriminator, so that the hosts'
#: snapshot pickles (which save ``D``) carry its state.
ATTRIBUTE = "lipreg_penalty"


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper."""
    inner = getattr(module, "module", None)
    if isinstance(module, nn.parallel.DistributedDataParallel) and isinstance(inner, nn.Module):
        return inner
    return module


def saved_penalty(
    path: str, penalty: nn.Module, options: Mapping[type[nn.Module], str]
) -> dict[str, Any] | None:
    """The ``state_dict`` of the penalty in the snapshot ``path`` (a file or a URL, read as
    the host reads ``--resume``) when it was made by a penalty like ``penalty``: of the same
    class and for the same norm.

    Otherwise the snapshot is transfer learning, as the hosts' ``--resume`` also is: the host
    takes its networks, and this returns ``None`` with a warning saying why the penalty starts
    with fresh estimates. Three cases, one rule: the snapshot's ``D`` holds no penalty
    (NVIDIA's pretrained networks, runs of the host's own loss), a penalty of another class
    (an R1 snapshot resumed with ``penalty="gp"``), or one made for another norm. The warning
    names the loss options that would continue the snapshot's run instead (``options`` maps a
    penalty class to the loss's option, e.g. ``BanachGP`` to ``penalty='gp'``).
    """
    snapshot = _read(path)
    D = snapshot.get("D") if isinstance(snapshot, dict) else None
    if not isinstance(D, nn.Module):
        raise ValueError(
            f"resume_pkl={path!r} is not a host snapshot: expected a dict with the networks "
            f"'G', 'D', 'G_ema', got {type(snapshot).__name__}"
        )
    saved = getattr(D, ATTRIBUTE, None)
    why = _unrestorable(saved, penalty, options)
    if why is not None:
        warnings.warn(
            f"resume_pkl={path!r} {why}: the networks resume from it as usual, the lipreg "
            "penalty starts with fresh estimates",
            UserWarning,
            stacklevel=3,
        )
        return None
    assert isinstance(saved, nn.Module)
    state: dict[str, Any] = saved.state_dict()
    return state


def _unrestorable(
    saved: object, penalty: nn.Module, options: Mapping[type[nn.Module], str]
) -> str | None:
    """Why ``saved`` (the snapshot's ``D.lipreg_penalty``) cannot restore ``penalty``, or
    ``None`` when it can."""
    if not isinstance(saved, nn.Module):
        return (
            f"holds no lipreg penalty (D.{ATTRIBUTE}), as NVIDIA's pretrained networks and "
            "runs of the host's own loss"
        )
    if type(saved) is not type(penalty):
        option = options.get(type(saved))
        advice = f"; pass {option} to continue that run" if option is not None else ""
        return (
            f"holds a {type(saved).__name__} penalty, this loss a "
            f"{type(penalty).__name__} ({options.get(type(penalty))}){advice}"
        )
    saved_norm, norm = getattr(saved, "norm", None), getattr(penalty, "norm", None)
    if isinstance(saved_norm, Norm) and isinstance(norm, Norm) and saved_norm.spec != norm.spec:
        return (
            f"holds a penalty for norm {saved_norm.spec!r}, this loss one for {norm.spec!r}; "
            f"pass norm={saved_norm.spec!r} to continue that run (the estimates of E||X||_B "
            "depend on the norm)"
        )
    return None


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
