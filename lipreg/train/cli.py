"""``lipreg train`` / ``python -m lipreg.train``: the command line of the reference trainer.

Options resolve as: the defaults of :class:`~lipreg.train.config.TrainConfig`, then
``--preset``, then the options given explicitly; with ``--resume`` the checkpoint's
configuration takes the place of the defaults. The result is parsed once into a
:class:`~lipreg.train.plan.Plan`, in which the options a preset set that the explicit ones
make meaningless give way (:mod:`lipreg.train.unused`). ``--compare-norms`` trains that
configuration once per norm (:mod:`lipreg.train.compare`). The options themselves are
defined in :mod:`lipreg.train.options`, the presets in :mod:`lipreg.train.presets`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lipreg.train.config import TrainConfig
from lipreg.train.options import build_parser
from lipreg.train.plan import Plan
from lipreg.train.presets import PRESETS


@dataclass(frozen=True)
class Command:
    """What a ``lipreg train`` command line asks for."""

    #: the configuration asked for (with ``compare_norms``: of every run, but for its norm),
    #: its specs spelt canonically and the options a preset set that the explicit ones make
    #: meaningless at their defaults; ``loss`` as given (``plan.config`` has it resolved)
    config: TrainConfig
    plan: Plan  #: ``config`` parsed
    resume: dict[str, Any] | None = None  #: the checkpoint to continue (``--resume``)
    compare_norms: tuple[str, ...] = ()  #: canonical specs of ``--compare-norms``, or ``()``


def parse_command(
    argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None
) -> Command:
    """The configuration, the checkpoint to resume and the norms to compare that ``argv``
    asks for; a bad option exits through ``parser.error`` with a message naming it."""
    from lipreg.train import checkpoint
    from lipreg.train.compare import ComparisonError, check_comparison

    parser = parser or build_parser()
    given = vars(parser.parse_args(argv))
    resume_path = given.pop("resume", None)
    preset = given.pop("preset", None)
    compare = given.pop("compare_norms", None)
    if compare is not None and resume_path is not None:
        parser.error(
            "--compare-norms starts new runs and cannot be combined with --resume; continue one "
            "of its runs with --resume OUT/SPEC instead"
        )
    if compare is not None and "norm" in given:
        parser.error("--compare-norms sets the norm of each run; drop --norm")
    resume = None
    values: dict[str, Any] = {}
    if resume_path is not None:
        try:
            resume = checkpoint.load(resume_path)
            saved = TrainConfig.from_saved(resume["config"])
        except checkpoint.CheckpointError as e:
            parser.error(str(e))
        except ValueError as e:
            parser.error(f"--resume: the configuration saved in {resume_path} is damaged: {e}")
        values.update(saved.to_dict())
        # A copied run continues in its copy, not in the directory it was copied from.
        values["out"] = str(checkpoint.locate(resume_path).parent)
    preset_values = PRESETS[preset] if preset is not None else {}
    values.update(preset_values)
    values.update(given)
    try:
        asked = TrainConfig.from_dict(values, check=False)
        plan = Plan.parse(asked, given=set(given), preset=set(preset_values))
    except ValueError as e:
        parser.error(str(e))
    config = dataclasses.replace(plan.config, loss=asked.loss)
    norms: tuple[str, ...] = ()
    if compare is not None:
        try:
            norms = tuple(check_comparison(config, compare))
        except ComparisonError as e:
            parser.error(str(e))
    return Command(config, plan, resume, norms)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run ``lipreg train`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code
    (130 when Ctrl-C comes before a run has installed its own handlers)."""
    parser = build_parser(prog)
    try:
        return _main(argv, parser)
    except KeyboardInterrupt:  # while data load or networks are built: nothing to save yet
        print(f"\n{parser.prog}: interrupted before training started", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None, parser: argparse.ArgumentParser) -> int:
    from lipreg.train.checkpoint import CheckpointError
    from lipreg.train.evaluate import describe_metrics
    from lipreg.train.loop import Trainer
    from lipreg.train.runner import Runner

    command = parse_command(argv, parser)
    if command.compare_norms:
        return _compare(command, parser)
    try:
        trainer = Trainer(command.plan, command.resume)
    except (ValueError, CheckpointError) as e:
        parser.error(str(e))
    try:
        summary = Runner(trainer).run()
    except OSError as e:  # unreadable data, a full disk: the user's files, not a bug
        parser.error(str(e))
    finally:
        trainer.close()
    if trainer.ctx.main and summary.files:
        print("lipreg train: wrote " + ", ".join(str(f) for f in summary.files))
    if trainer.ctx.main and summary.metrics:
        print(f"lipreg train: step {summary.step}: {describe_metrics(summary.metrics)}")
    return 0


def _compare(command: Command, parser: argparse.ArgumentParser) -> int:
    from lipreg.train.compare import ComparisonError, compare_norms

    try:
        comparison = compare_norms(command.config, command.compare_norms)
    except ComparisonError as e:
        parser.error(str(e))
    except OSError as e:
        parser.error(str(e))
    for run in comparison.runs:
        print(f"lipreg train: {run.norm}: W1 = {run.w1:.4g} ({run.out})")
    if comparison.figure is not None:
        print(f"lipreg train: wrote {comparison.figure}")
    else:
        print(
            f"lipreg train: --compare-norms stopped after {len(comparison.runs)} of "
            f"{len(command.compare_norms)} runs; no comparison figure written"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
