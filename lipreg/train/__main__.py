"""``python -m lipreg.train`` (also under ``torchrun -m lipreg.train``): see ``--help``."""

import sys

from lipreg.train.cli import main

sys.exit(main(prog="python -m lipreg.train"))
