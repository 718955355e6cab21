"""Trainer checkpoints: atomic writes, checked reads, and the random number generators' states.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so it loads
with ``torch.load(weights_only=True)``. It is written to a temporary file in the target's
directory and renamed over the target (``os.replace`` is atomic on POSIX and Windows), so a
crash or a failed write never leaves a truncated checkpoint or damages the previous one.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "lipreg.train/1"
_ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of every file torch.save writes
_KEYS = (
    "format",
    "step",
    "config",
    "generator",
    "critic",
    "ema",
    "opt_g",
    "opt_d",
    "sched_g",
    "sched_d",
    "scaler_g",
    "scaler_d",
    "penalty",
    "batches",
    "rng",
)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to this trainer."""


def save(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (``format`` is added) to ``path`` atomically; return the path.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (tensors mapped to the CPU).

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, holds anything but
            tensors and plain values, or was not written by this trainer.
    """
    source = Path(path)
    if source.is_dir():
        source = source / "checkpoint.pt"
    if not source.is_file():
        raise CheckpointError(
            f"--resume: no checkpoint at {source}; give a checkpoint file or a run directory "
            "holding checkpoint.pt"
        )
    with source.open("rb") as f:
        head = f.read(len(_ZIP_MAGIC))
    if head and head != _ZIP_MAGIC:
        # torch.save writes zip archives; anything else would reach torch's legacy unpickler,
        # which fails on foreign bytes with arbitrary exceptions.
        raise CheckpointError(
            f"--resume: {source} cannot be read as a checkpoint: it is not a file written by "
            "torch.save; resume from a checkpoint.pt of a lipreg train run"
        )
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"--resume: {source} cannot be read as a checkpoint of tensors and plain values: it "
            "is damaged or holds other objects (refused for safety)"
        ) from e
    except Exception as e:  # a damaged archive fails wherever the reader trips (IndexError, ...)
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"--resume: {source} is truncated or corrupt ({reason}); resume from an earlier "
            "checkpoint or start a new run"
        ) from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"--resume: {source} was not written by lipreg train (expected format {FORMAT!r}, "
            f"found {found!r}); resume from a checkpoint.pt of a lipreg train run"
        )
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise CheckpointError(f"--resume: {source} lacks the entries {missing}; it is damaged")
    state = dict(state)
    if isinstance(state["config"], dict) and "loss" not in state["config"]:
        # Written before --loss existed, when every run trained the Wasserstein loss.
        state["config"] = {**state["config"], "loss": "wgan"}
    return state


def rng_state() -> dict[str, Any]:
    """The states of Python's and torch's (CPU and every CUDA device) random generators, as
    tensors and plain values. (NumPy's global generator is not used in training.)"""
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators from :func:`rng_state` (CUDA states only if the device count
    matches: a run moved to another machine continues with fresh CUDA streams)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
