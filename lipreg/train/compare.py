"""``lipreg train --compare-norms``: one toy run per norm on the same data, side by side.

The runs share every option but ``--norm``: the same seed, hence the same data, initial
weights, real batches, noise and interpolation weights, so that the only difference is the
norm of the penalty (and, with ``--lam auto`` / ``--gamma auto``, the constants estimated in
it). Run ``k`` is an ordinary run of :class:`~lipreg.train.loop.Trainer` (identical to
``lipreg train --norm NORM_k`` with the same options) in ``OUT/<NORM_k>``, the norm's
canonical spec with ``:`` written as ``_`` (``OUT/lp_p=1``); each can be continued with
``--resume``. ``OUT/norm_comparison.png`` then shows every final critic's value surface with
the real points and the generated points of the final evaluation, on one shared grid, each
panel titled with the exact Wasserstein-1 distance between those two point sets (Euclidean,
``metric/w1``, the same yardstick for every norm).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from lipreg._modes import eval_mode
from lipreg.norms import parse_norm
from lipreg.train import plots
from lipreg.train.config import TrainConfig
from lipreg.train.data import DATASETS
from lipreg.train.distributed import launched_world
from lipreg.train.loop import Trainer
from lipreg.train.penalties import check_norm
from lipreg.train.runner import Runner

FIGURE = "norm_comparison.png"
"""The comparison figure's file name in the output directory."""

_TOY_SAMPLE_SHAPE = (2,)  # every toy data set holds points in the plane


class ComparisonError(ValueError):
    """The options or norms do not make a comparison; raised before the run concerned
    writes anything (for bad norms or data, before any run starts)."""


@dataclass(frozen=True)
class NormRun:
    """One finished run of a comparison."""

    norm: str  #: the canonical norm spec
    out: Path  #: its run directory
    w1: float  #: exact W1 between its final generated points and the real evaluation points


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_norms`."""

    runs: list[NormRun]  #: the finished runs, in the order of the norms
    figure: Path | None  #: ``norm_comparison.png``, ``None`` if a run was interrupted
    interrupted: bool  #: a run was stopped by SIGINT/SIGTERM (its checkpoint was saved)


def run_directory(out: str | Path, norm: str) -> Path:
    """The directory of the run of ``norm`` (a canonical spec) under ``out``."""
    return Path(out) / norm.replace(":", "_")


def check_comparison(config: TrainConfig, norms: Sequence[str]) -> list[str]:
    """The canonical specs of ``norms`` if ``config`` can be trained once per norm and the
    runs compared; otherwise :class:`ComparisonError` naming ``--compare-norms`` and the
    fix.

    Every spec goes through :func:`lipreg.parse_norm` and must apply to toy points; at least
    two distinct norms, toy data, a single process.
    """
    if isinstance(norms, str) or len(norms) < 2:
        raise ComparisonError(
            f"--compare-norms needs at least two norms to compare, got {norms!r}; e.g. "
            "--compare-norms l2 lp:p=1 lp:p=inf"
        )
    spec = DATASETS.get(config.data)
    if spec is None or spec.kind != "toy":
        toy = ", ".join(k for k, v in DATASETS.items() if v.kind == "toy")
        raise ComparisonError(
            f"--compare-norms draws critic surfaces in the plane and needs toy 2-D data "
            f"(--data {toy}), got --data {config.data}"
        )
    if launched_world() > 1:
        raise ComparisonError(
            "--compare-norms trains its runs one after another in a single process; start it "
            "without torchrun (or outside a process group)"
        )
    canonical: list[str] = []
    for text in norms:
        try:
            parsed = parse_norm(text)
            check_norm(parsed, _TOY_SAMPLE_SHAPE)
        except (TypeError, ValueError) as e:
            raise ComparisonError(f"--compare-norms {text}: {e}") from None
        norm = parsed.spec
        if norm in canonical:
            raise ComparisonError(
                f"--compare-norms names the norm {norm} twice ({text!r}); give each norm once"
            )
        canonical.append(norm)
    return canonical


def compare_norms(config: TrainConfig, norms: Sequence[str]) -> Comparison:
    """Train ``config`` once per norm of ``norms`` and draw the critics side by side.

    Args:
        config: the shared configuration (toy data); its ``norm`` is replaced by each of
            ``norms`` in turn and its ``out`` is the parent of the runs' directories.
        norms: at least two distinct norm specs (``"l2"``, ``"lp:p=1"``, ...).

    Returns:
        the runs with their final W1 and the figure ``config.out/norm_comparison.png``; if a
        run is stopped by SIGINT/SIGTERM the comparison stops there, without the figure.

    Raises:
        ComparisonError: from :func:`check_comparison` (nothing is trained or written then),
            or when a run cannot be built from ``config`` (before it writes anything).
    """
    specs = check_comparison(config, norms)
    runs: list[NormRun] = []
    panels: list[plots.Panel] = []
    with ExitStack() as critics_in_eval_mode:
        for norm in specs:
            run_config = dataclasses.replace(
                config, norm=norm, out=str(run_directory(config.out, norm))
            )
            try:
                trainer = Trainer(run_config)
            except ValueError as e:
                raise ComparisonError(f"--compare-norms, run of {norm}: {e}") from e
            try:
                summary = Runner(trainer).run()
            finally:
                trainer.close()
            if summary.interrupted:
                return Comparison(runs=runs, figure=None, interrupted=True)
            w1 = summary.metrics["metric/w1"]
            runs.append(NormRun(norm=norm, out=summary.out, w1=w1))
            # The points of the final evaluation: the evaluator's real subset and noise are
            # fixed by the seed, so a new one reproduces them exactly.
            evaluator = trainer.evaluator(summary.out)
            critics_in_eval_mode.enter_context(eval_mode(trainer.d))
            fake = evaluator.generate(trainer.sampler)
            panels.append((f"{norm}: W1 = {w1:.4g}", trainer.d, evaluator.real, fake))
        figure = plots.plot_norm_comparison(panels, Path(config.out) / FIGURE)
    return Comparison(runs=runs, figure=figure, interrupted=False)
