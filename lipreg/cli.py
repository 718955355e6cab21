"""The ``lipreg`` command: ``lipreg train ...`` runs the reference trainer (``--help`` there)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence

#: What ``lipreg train`` imports from the train extra (pyproject.toml), checked before it
#: starts: some are imported only at the end of a run (plots), which must not fail then.
#: TensorBoard, also in the extra, is optional (the run says when it is missing).
TRAIN_MODULES = ("tqdm", "numpy", "scipy", "matplotlib", "PIL", "sklearn")


def _missing(modules: Sequence[str]) -> str | None:
    """The first of ``modules`` that cannot be imported (without importing any)."""
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a broken package or a blocked import
            return name
    return None


def train_extra_problem() -> str | None:
    """Why ``lipreg train`` cannot run here (a module of the train extra is missing), or
    ``None``; checked before the trainer is imported, so that the message, not a
    ``ModuleNotFoundError`` traceback, is what the user sees."""
    missing = _missing(TRAIN_MODULES)
    if missing is None:
        try:
            from lipreg.train.loop import Trainer  # noqa: F401  (what a run imports first)
        except ImportError as e:
            missing = e.name or str(e)
    if missing is None:
        return None
    return f"lipreg train needs the train extra ({missing} is missing): pip install 'lipreg[train]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``lipreg COMMAND ...``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="lipreg",
        description="Lipschitz regularisation of GAN critics in any Banach space.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "train",
        add_help=False,
        help="train a Wasserstein GAN with a lipreg penalty (lipreg train --help); needs the "
        "train extra: pip install 'lipreg[train]'",
    )
    _, rest = parser.parse_known_args(argv)  # "train" is the only command
    problem = train_extra_problem()
    if problem is not None:
        parser.error(problem)
    from lipreg.train.cli import main as train

    return train(rest, prog="lipreg train")


if __name__ == "__main__":
    sys.exit(main())
