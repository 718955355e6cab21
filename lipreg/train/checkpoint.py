"""Trainer checkpoints: atomic writes, checked reads, and the random number generators' states.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so it loads
with ``torch.load(weights_only=True)``. It is written to a temporary file in the target's
directory and renamed over the target (``os.replace`` is atomic on POSIX and Windows), so a
crash or a failed write never leaves a truncated checkpoint or damages the previous one;
temporary files that a killed process left behind are removed by the next save.

Every checkpoint carries the SHA-256 of its content (:func:`lipreg.train.integrity.digest`):
a byte changed on disk inside tensor data still loads in torch, so the digest is what tells
a damaged file from the run it was saved from. A checkpoint is also refused when its step is
not a count within its run, when it holds NaN or infinite numbers, or when a random
generator's state would not restore: each before anything is loaded.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import torch

from lipreg.train.integrity import digest, non_finite

FORMAT = "lipreg.train/2"
_UNCHECKED_FORMAT = "lipreg.train/1"  # written before checkpoints carried a checksum
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
    """Write ``state`` (``format`` and ``checksum`` are added) to ``path`` atomically; return
    the path.

    On any error the temporary file is removed and ``path`` is left as it was. Temporary
    files of earlier saves to ``path`` that were killed mid-write are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    content = {"format": FORMAT, **state}
    content["checksum"] = digest(content)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(content, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def locate(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file that ``--resume path`` means: ``path`` itself, or
    ``path/checkpoint.pt`` for a run directory."""
    source = Path(path).expanduser()
    return source / "checkpoint.pt" if source.is_dir() else source


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (tensors mapped to the CPU).

    Raises:
        CheckpointError: the file is missing, truncated or corrupt (including a checksum
            that does not match), holds anything but tensors and plain values, was not
            written by this trainer, or holds a step, numbers or random states that cannot
            be those of a run. The message names the file.
    """
    source = locate(path)
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
    formats = (FORMAT, _UNCHECKED_FORMAT)
    if not isinstance(state, dict) or state.get("format") not in formats:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"--resume: {source} was not written by lipreg train (expected format {FORMAT!r}, "
            f"found {found!r}); resume from a checkpoint.pt of a lipreg train run"
        )
    checked = state["format"] == FORMAT
    missing = [k for k in (*_KEYS, "checksum") if k not in state and (checked or k != "checksum")]
    if missing:
        raise CheckpointError(f"--resume: {source} lacks the entries {missing}; it is damaged")
    state = dict(state)
    saved_sum = state.pop("checksum", None)
    if (saved_sum is not None) != checked or (checked and saved_sum != digest(state)):
        raise CheckpointError(
            f"--resume: {source} fails its integrity check (the checksum of its content does "
            "not match the one saved with it): the file was damaged after it was written. "
            "Resume from an earlier checkpoint or a backup copy"
        )
    problem = _problem(state)
    if problem:
        raise CheckpointError(f"--resume: {source} {problem}")
    return state


def _problem(state: dict[str, Any]) -> str:
    """What makes a readable checkpoint ``state`` unusable, or ``""``."""
    config, step = state["config"], state["step"]
    if not isinstance(config, dict):
        return f"holds a damaged configuration ({type(config).__name__}, not a dict)"
    steps = config.get("steps")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"holds a damaged step {step!r} (a count of generator steps >= 0 was expected)"
    if isinstance(steps, int) and step > steps:
        return f"holds step {step}, beyond the {steps} steps of its own run: it was altered"
    bad = non_finite(state)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        return (
            f"holds NaN or infinite values in {', '.join(bad[:3])}{more}: the run it was saved "
            "from had diverged, or the file was altered. Resume from an earlier checkpoint"
        )
    rng = state["rng"]
    if not isinstance(rng, list) or not rng:
        return "holds no random generator states (a list with one per process was expected)"
    for rank, generators in enumerate(rng):
        reason = rng_problem(generators)
        if reason:
            return f"holds a damaged random generator state of process {rank}: {reason}"
    return ""


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


def rng_problem(state: object) -> str:
    """Why :func:`set_rng_state` would fail on ``state`` (``""`` if it would not). Tried on the
    real generators, which are restored afterwards."""
    if not isinstance(state, dict) or set(state) != {"python", "torch", "cuda"}:
        keys = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        return f"expected the entries ['cuda', 'python', 'torch'], got {keys}"
    cuda = state["cuda"]
    if not isinstance(cuda, list) or not all(
        isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda
    ):
        return "'cuda' must be a list of uint8 tensors"
    current = rng_state()
    try:
        set_rng_state(state)
    except Exception as e:  # random.setstate and torch raise TypeError, ValueError, ...
        return f"{type(e).__name__}: {e}"
    finally:
        set_rng_state(current)
    return ""
