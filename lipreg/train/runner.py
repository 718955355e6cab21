"""Running a :class:`~lipreg.train.loop.Trainer`: the loop with logging, evaluations,
checkpoints and a clean stop on SIGINT/SIGTERM (:meth:`Runner.run`), and what it prints.

The trainer holds the run's state and takes its steps; a :class:`Runner` holds the trainer
and decides when to step, log, evaluate and save, and what to say.
"""

from __future__ import annotations

import json
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from lipreg.train.distributed import any_rank
from lipreg.train.evaluate import Evaluator
from lipreg.train.loop import Trainer
from lipreg.train.penalties import layers
from lipreg.train.scalars import ScalarLog
from lipreg.train.signals import Interrupted, StopRequest


@dataclass
class Summary:
    """The outcome of :meth:`Runner.run`."""

    step: int  #: generator steps done
    out: Path  #: the run directory
    interrupted: bool  #: stopped by SIGINT/SIGTERM (a checkpoint was saved)
    files: list[Path] = field(default_factory=list)  #: files written at the end
    #: the metrics (``metric/...``) of this run's evaluation at ``step``; empty on ranks other
    #: than 0, when interrupted, or when the run made no evaluation at ``step``
    metrics: dict[str, float] = field(default_factory=dict)


def describe(penalty: nn.Module) -> str:
    """``Name(options)`` on one line (with lam and gamma for calibrated penalties), with its
    wrappers: ``Lazy(every=8) of Subsampled(fraction=0.25) of BanachGP(...)``."""

    def one(layer: nn.Module) -> str:
        calibration = getattr(layer, "calibration", None)
        settings = "" if calibration is None else ", " + calibration.extra_repr()
        return f"{type(layer).__name__}({layer.extra_repr()}{settings})"

    return " of ".join(one(layer) for layer in layers(penalty))


class Runner:
    """The run of ``trainer``: :meth:`run` trains it to ``--steps``."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._saved_at = -1  #: the step of the checkpoint this run wrote last (or resumed)
        self._busy = ""  #: "iteration" or "checkpoint" while the state is not a whole step

    def run(self) -> Summary:
        """Train until ``steps`` (or a signal), logging, evaluating and checkpointing.

        The first SIGINT or SIGTERM stops the run after the current iteration (or
        evaluation) with a checkpoint. A second SIGINT stops it at once: a checkpoint is then
        saved if the networks are between two iterations (in a single process), otherwise
        the last one is kept.
        """
        t = self.trainer
        c, main = t.config, t.ctx.main
        out = Path(c.out)
        resumed = t.step if t.step > 0 else None
        evaluator = t.evaluator(out) if main else None  # reads data: fails before writing
        log = ScalarLog(out, c.tensorboard, resume_step=resumed) if main else None
        if main:
            (out / "config.json").write_text(json.dumps(c.to_dict(), indent=2) + "\n")
            self._announce(log, evaluator)
        bar = self._progress_bar()
        stop = StopRequest(announce=main)
        self._saved_at = t.step if resumed is not None else -1
        metrics: dict[str, float] = {}
        files: list[Path] = []
        stopped = at_once = False
        with stop.installed():
            try:
                metrics, stopped = self._train(out, log, evaluator, bar, stop, resumed is None)
                if main and not stopped:
                    assert log is not None
                    assert evaluator is not None
                    if not c.eval_every or t.step % c.eval_every:
                        metrics = evaluator.evaluate(t.step, t.sampler)
                        self._write_metrics(log, metrics)
                    files = evaluator.finish(t.step, log.path, t.sampler, t.d)
            except Interrupted:
                stopped = at_once = True
                self._save_what_can_be_saved(out)
            finally:
                if bar is not None:
                    bar.close()
                if log is not None:
                    log.close()
        if main and stopped:
            print(self._stopped_message(stop.signal_name or "a signal", at_once, out))
        return Summary(
            step=t.step,
            out=out,
            interrupted=stopped,
            files=files,
            metrics={} if stopped else metrics,
        )

    def _train(
        self,
        out: Path,
        log: ScalarLog | None,
        evaluator: Evaluator | None,
        bar: Any,
        stop: StopRequest,
        fresh: bool,
    ) -> tuple[dict[str, float], bool]:
        """The loop of :meth:`run`: the last evaluation's metrics and whether a signal
        stopped it (a checkpoint of the last step is on disk either way)."""
        t = self.trainer
        c = t.config
        metrics: dict[str, float] = {}
        if evaluator is not None and c.eval_every and fresh:
            # the starting point of the curves
            self._write_metrics(log, evaluator.evaluate(0, t.sampler))
        tick, ticked_at = time.perf_counter(), t.step
        stopped = False
        while t.step < c.steps:
            self._busy = "iteration"
            t.iteration()
            self._busy = ""
            if t.step % c.log_every == 0 or t.step == c.steps:
                now = time.perf_counter()
                images = (t.step - ticked_at) * c.n_critic * c.batch_size
                rate = images / max(now - tick, 1e-9)
                tick, ticked_at = now, t.step
                self._log(log, bar, rate)
            if evaluator is not None and c.eval_every and t.step % c.eval_every == 0:
                started = time.perf_counter()
                metrics = evaluator.evaluate(t.step, t.sampler)
                self._write_metrics(log, metrics)
                tick += time.perf_counter() - started  # images/s counts training only
            if any_rank(stop.requested, t.ctx):
                stopped = True
                break
            if c.checkpoint_every and t.step % c.checkpoint_every == 0:
                self._checkpoint(out)
        if self._saved_at != t.step:
            self._checkpoint(out)
        return metrics, stopped

    def _checkpoint(self, out: Path) -> None:
        t = self.trainer
        self._busy = "checkpoint"
        t.save(out / "checkpoint.pt")
        self._saved_at = t.step
        self._busy = ""

    def _save_what_can_be_saved(self, out: Path) -> None:
        """After a second SIGINT: save the step if the state is whole and unsaved (saving is
        collective, so a single process only)."""
        t = self.trainer
        if self._busy or t.ctx.distributed or self._saved_at == t.step:
            return
        # yet another SIGINT aborts the save, which is atomic: the last checkpoint stays
        with suppress(Interrupted):
            self._checkpoint(out)

    def _stopped_message(self, name: str, at_once: bool, out: Path) -> str:
        t = self.trainer
        resume = f"Continue with: lipreg train --resume {out}"
        if self._saved_at == t.step and not self._busy:
            how = "at once by a second SIGINT" if at_once else f"by {name}"
            return f"lipreg train: stopped {how} after step {t.step}; checkpoint saved. {resume}"
        where = (
            f"while saving step {t.step}"
            if self._busy == "checkpoint"
            else f"during step {t.step + 1}"
        )
        if self._saved_at < 0:
            return (
                f"lipreg train: stopped at once by a second SIGINT {where}, before a "
                "checkpoint was saved; start the run again"
            )
        return (
            f"lipreg train: stopped at once by a second SIGINT {where}; the checkpoint of step "
            f"{self._saved_at} is kept (later steps are lost). {resume}"
        )

    def _log(self, log: ScalarLog | None, bar: Any, rate: float) -> None:
        t = self.trainer
        if log is None:
            return
        values = {**t.scalars(), "images_per_s": rate}
        log.write(t.step, values)
        if bar is not None:
            shown = {"W": "wasserstein", "pen": "penalty", "lam": "lam", "gamma": "gamma"}
            if "wasserstein" not in values:  # other losses: the gap of the critic's scores
                shown = {"gap": "critic_gap", **shown}
            post = {k: f"{values[v]:.4g}" for k, v in shown.items() if v in values}
            bar.set_postfix(**post, img_s=f"{rate:.0f}", refresh=False)
            bar.update(t.step - bar.n)

    def _write_metrics(self, log: ScalarLog | None, metrics: dict[str, float]) -> None:
        if log is not None and metrics:
            log.write(self.trainer.step, metrics)

    def _progress_bar(self) -> Any:
        t = self.trainer
        if not (t.config.progress and t.ctx.main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=t.config.steps, initial=t.step, unit="step", dynamic_ncols=True)

    def _announce(self, log: ScalarLog | None, evaluator: Evaluator | None) -> None:
        t = self.trainer
        c = t.config
        sizes = [sum(p.numel() for p in m.parameters()) for m in (t.g, t.d)]
        print(
            f"lipreg train: {t.data!r}; generator {type(t.g).__name__} "
            f"({sizes[0]:,} parameters), critic {type(t.d).__name__} ({sizes[1]:,}); "
            f"loss {c.loss}; penalty {describe(t.penalty)}"
            + ("" if c.constraint == "none" else f"; constraint {t.constraint!r}")
            + f"; {c.steps} steps on "
            f"{t.ctx.world} x {t.device}, precision {c.precision}; writing to {c.out}"
        )
        for note in [*(log.notes if log else []), evaluator.note if evaluator else ""]:
            if note:
                print(f"lipreg train: {note}")
