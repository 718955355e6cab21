"""Whether the ``train`` extra is installed: checked by ``lipreg train`` and
``python -m lipreg.train`` before the trainer is imported, so that a missing package is a
one-line message, not a ``ModuleNotFoundError`` traceback. It imports nothing of the extra.
"""

from __future__ import annotations

import importlib.util
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
    ``None``."""
    missing = _missing(TRAIN_MODULES)
    if missing is None:
        try:
            from lipreg.train.loop import Trainer  # noqa: F401  (what a run imports first)
        except ImportError as e:
            missing = e.name or str(e)
    if missing is None:
        return None
    return f"lipreg train needs the train extra ({missing} is missing): pip install 'lipreg[train]'"
