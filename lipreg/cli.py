"""The ``lipreg`` command: ``lipreg train ...`` runs the reference trainer (``--help`` there)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lipreg.train.extra import train_extra_problem


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
