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
    interrupted run, so the file matches the resumed run exactly.

    Args:
        out: the run directory.
        tensorboard: also write TensorBoard events to ``out/tensorboard`` (if installed).
        resume_step: the step of the checkpoint being resumed, or None for a new run.
    """

    def __init__(self, out: Path, tensorboard: bool, resume_step: int | None = None) -> None:
        self.path = out / "scalars.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._file = self.path.open("a")
        self._tb: Any = None
        self.tensorboard_note = ""
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.tensorboard_note = (
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
