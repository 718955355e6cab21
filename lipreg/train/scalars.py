"""Scalars of a run: one JSON object per line in ``scalars.jsonl``, and TensorBoard events
when ``tensorboard`` is installed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class ScalarLog:
    """Append ``{"step": s, name: value, ...}`` lines to ``out/scalars.jsonl``.

    Opening a log with ``resume_step`` drops the lines written after that step by an
    interrupted run, so the file matches the resumed run exactly. It also repairs what a
    power loss leaves: a last line cut short, zero bytes the file system appended, or any
    other line that is not a JSON object with an integer step is dropped, and :attr:`notes`
    says so.

    Args:
        out: the run directory.
        tensorboard: also write TensorBoard events to ``out/tensorboard`` (if installed).
        resume_step: the step of the checkpoint being resumed, or None for a new run.
    """

    def __init__(self, out: Path, tensorboard: bool, resume_step: int | None = None) -> None:
        self.path = out / "scalars.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        self.notes: list[str] = []  #: what a reader of the run should know (one line each)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept, damaged = _lines_up_to(self.path.read_bytes(), resume_step)
            self.path.write_text("".join(line + "\n" for line in kept))
            if damaged:
                self.notes.append(
                    f"repaired {self.path}: dropped {damaged} damaged line(s), as a write cut "
                    "short (e.g. by a power loss) leaves them"
                )
        self._file = self.path.open("a")
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.notes.append(
                    "TensorBoard events skipped: the tensorboard package is not installed "
                    "(pip install tensorboard)"
                )
            else:
                self._tb = SummaryWriter(
                    log_dir=str(out / "tensorboard"),
                    purge_step=None if resume_step is None else resume_step + 1,
                )

    def write(self, step: int, values: dict[str, float]) -> None:
        """Log ``values`` at ``step`` (non-finite values are written as JSON null)."""
        row = {k: (v if math.isfinite(v) else None) for k, v in values.items()}
        self._file.write(json.dumps({"step": step, **row}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _lines_up_to(data: bytes, step: int) -> tuple[list[str], int]:
    """The lines of a scalars file (``data``) logged at steps ``<= step``, and the number of
    damaged lines dropped or cleaned. Zero bytes are removed: a file system that lost the
    tail of a file may have extended it with zeros."""
    kept, damaged = [], 0
    for raw in data.decode("utf-8", errors="replace").split("\n"):
        line = raw.replace("\x00", "").strip()
        zeros = "\x00" in raw
        if not line:
            damaged += zeros
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        logged = row.get("step") if isinstance(row, dict) else None
        if isinstance(logged, bool) or not isinstance(logged, int):
            damaged += 1
        else:
            damaged += zeros
            if logged <= step:
                kept.append(line)
    return kept, damaged
