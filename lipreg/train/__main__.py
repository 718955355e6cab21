"""``python -m lipreg.train`` (also under ``torchrun -m lipreg.train``): see ``--help``."""

import sys

from lipreg.train.extra import train_extra_problem

PROG = "python -m lipreg.train"

problem = train_extra_problem()
if problem is not None:
    print(f"{PROG}: error: {problem}", file=sys.stderr)
    sys.exit(2)  # a usage error, as argparse reports them

from lipreg.train.cli import main  # noqa: E402  (after the check: it needs the extra)

sys.exit(main(prog=PROG))
