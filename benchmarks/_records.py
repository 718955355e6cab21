"""What the quality studies keep: every run's evaluation history as JSON (``<stem>.json``,
read back by ``--redraw``) and every run's final generator (``<stem>_generators.pt``, read
back by ``--rescore``), beside each other in the study's folder.

The generators are the weight averages the runs were evaluated with, in float16: 2 bytes a
parameter (344 kB a run for the digits preset's 167,521 parameters and buffers), half of
float32, so that a study of 65 runs adds about 22 MB to the repository. What float16 costs
was measured with ``benchmarks/kept_precision.py`` (see :data:`KEPT_DTYPE`). The file is one
``torch.save`` of plain tensors, numbers and strings, loadable with ``weights_only=True``::

    {"format": FORMAT, "dtype": "float16",
     "runs": [{"name": str, "seed": int, "config": TrainConfig.to_dict(),
               "state": {parameter or buffer name: tensor}}, ...]}

A tensor whose values float16 cannot hold (beyond +-65504) stays float32.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import lipreg


@dataclass
class Run:
    """One finished training run of a study."""

    name: str  #: the setting, e.g. "W^{-1.5,2}"
    seed: int
    #: CPU seconds of the training iterations, evaluations excluded: runs are single-threaded,
    #: so this is their wall time on a quiet core, whatever else the machine runs
    seconds: float
    evals: list[dict[str, float]]  #: the evaluation rows: step, seconds so far, metric/...
    train: list[dict[str, float]] = field(default_factory=list)  #: logged training scalars
    steps: int = 0  #: generator steps trained
    #: the final generator's state (float32) and configuration, until they are kept; not
    #: part of the JSON record
    generator: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def final(self, key: str) -> float:
        """``key`` (e.g. ``"metric/digits_fid"``) at the last evaluation (``nan`` if that
        evaluation did not measure it)."""
        return self.evals[-1].get(key, math.nan)


def machine() -> str:
    """One line: CPU, cores, Python, torch, lipreg."""
    cpu = platform.processor() or platform.machine()
    with_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                with_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{with_model or cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, lipreg {lipreg.__version__}"
    )


_JSON_FIELDS = [f.name for f in dataclasses.fields(Run) if f.name != "generator"]


def save_runs(runs: Sequence[Run], path: Path, meta: dict[str, Any] | None = None) -> None:
    """Every run's evaluation history as JSON, with ``meta`` (the command, machine, options),
    so the tables and plots can be redrawn from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{name: getattr(r, name) for name in _JSON_FIELDS} for r in runs]
    record = {"meta": meta or {}, "runs": rows}
    path.write_text(json.dumps(record, indent=1) + "\n")


def load_runs(path: Path) -> tuple[list[Run], dict[str, Any]]:
    """The runs and ``meta`` of :func:`save_runs`' file ``path``."""
    record = json.loads(path.read_text())
    return [Run(**r) for r in record["runs"]], record["meta"]


# ---- kept generators ----------------------------------------------------------------------

FORMAT = "lipreg-study-generators/1"
KEPT_DTYPE = torch.float16
"""The precision of kept generators. Measured with ``python benchmarks/kept_precision.py``
(3 runs of the digits preset, 400 steps, seeds 0-2, digits FID about 37): rescoring the
float16 copy instead of the float32 original moved the digits FID by at most 0.006 (0.015 %),
the classes not at all, the confidence by 1e-5; bfloat16 moved the FID by up to 0.07. Both
take 344 kB a run against float32's 684 kB; the seed-to-seed spread of a study is several
FID. Rescoring the float32 original reproduces the recorded metrics exactly."""

FID_TOLERANCE = 1e-3
"""How far a kept generator's rescored FID-like metric may lie from the one its run recorded,
relative to the value: the measured float16 cost (0.015 % on trained runs, 0.003 % on the
tiny ``--quick`` ones) with a margin."""

_FLOAT16_MAX = float(torch.finfo(torch.float16).max)


def generators_path(saved: Path) -> Path:
    """The kept generators beside the study's JSON ``saved`` (``x.json`` -> ``x_generators.pt``)."""
    return saved.with_name(saved.stem + "_generators.pt")


def compact(state: dict[str, Tensor], dtype: torch.dtype = KEPT_DTYPE) -> dict[str, Tensor]:
    """``state`` with its floating tensors in ``dtype`` (those ``dtype`` cannot hold stay
    float32), others (batch norm's counters) unchanged; on the CPU, contiguous."""
    out = {}
    for name, t in state.items():
        t = t.detach().cpu()
        fits = dtype != torch.float16 or not t.numel() or float(t.abs().max()) <= _FLOAT16_MAX
        out[name] = (t.to(dtype) if t.is_floating_point() and fits else t).contiguous()
    return out


def save_generators(runs: Sequence[Run], path: Path) -> None:
    """Keep every run's final generator (``run.generator``) in one file ``path`` (see the
    module docstring); runs without one are skipped."""
    kept = [
        {
            "name": r.name,
            "seed": r.seed,
            "config": r.generator["config"],
            "state": compact(r.generator["state"]),
        }
        for r in runs
        if r.generator is not None
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "dtype": str(KEPT_DTYPE)[6:], "runs": kept}, path)


def load_generators(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The kept generators of ``path`` by ``(name, seed)``: ``{"config", "state"}``."""
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a file of kept study generators ({FORMAT})")
    return {
        (r["name"], r["seed"]): {"config": r["config"], "state": r["state"]} for r in record["runs"]
    }
