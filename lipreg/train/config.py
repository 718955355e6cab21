"""The trainer's configuration: one dataclass of plain values, and the paper's presets.

Every field is a plain Python value (str, int, float, bool, None or a tuple of floats), so a
configuration is saved in checkpoints (loadable with ``weights_only=True``) and as JSON.
Values are resolved in this order: the defaults below, then a preset, then the options given
explicitly on the command line.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, fields
from typing import Any

from lipreg.norms import parse_norm
from lipreg.train.data import DATASETS, DEFAULT_IMAGE_DATASET


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Batch sizes are global (summed over processes)."""

    # data
    data: str = DEFAULT_IMAGE_DATASET
    data_root: str | None = None
    image_size: int | None = None
    data_size: int | None = None
    # models
    model: str = "auto"
    width: int | None = None
    z_dim: int | None = None
    # penalty
    penalty: str = "gp"
    norm: str = "l2"
    lam: float | str = 10.0
    gamma: float | str = 1.0
    drift: float = 0.0
    lazy_every: int = 1
    # optimisation
    steps: int = 1000
    n_critic: int = 5
    batch_size: int = 64
    gen_batch_size: int = 128
    lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    lr_decay: str = "linear"
    ema: float = 0.999
    precision: str = "32"
    device: str = "auto"
    seed: int = 0
    # outputs
    out: str = "runs/lipreg"
    log_every: int = 10
    eval_every: int = 500
    eval_samples: int = 512
    checkpoint_every: int = 1000
    inception_weights: str | None = None
    tensorboard: bool = True
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain values (``betas`` as a list), e.g. for JSON."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys {unknown}; known: {sorted(known)}")
        values = dict(values)
        betas = values.get("betas")
        if isinstance(betas, (list, tuple)):  # JSON has no tuples; other types are refused
            values["betas"] = tuple(float(b) if isinstance(b, int) else b for b in betas)
        return cls(**values).checked()

    def checked(self) -> TrainConfig:
        """``self`` with the norm in its canonical spelling if every value is valid (so that
        ``"sobolev:s=-1.5"`` and ``"sobolev:s=-1.5,p=2,c=5"`` compare equal when a run is
        resumed); otherwise ``ValueError`` naming the first bad option."""
        for problem in _problems(self):
            raise ValueError(problem)
        return dataclasses.replace(self, norm=parse_norm(self.norm).spec)


# Options that may differ between a run and its resumption: they change what is written or
# where it runs, not the sequence of updates (the device does on GPU; on CPU it is exact),
# except ``steps``, which also moves the end of the learning-rate decay.
RUNTIME_FIELDS = frozenset(
    {
        "steps",
        "device",
        "out",
        "log_every",
        "eval_every",
        "eval_samples",
        "checkpoint_every",
        "inception_weights",
        "tensorboard",
        "progress",
        "data_root",
    }
)

_POSITIVE_INTS = (
    "steps",
    "lazy_every",
    "n_critic",
    "batch_size",
    "gen_batch_size",
    "log_every",
    "eval_samples",
)
_NON_NEGATIVE_INTS = ("eval_every", "checkpoint_every")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _has_type(value: object, hint: Any) -> bool:
    """Whether ``value`` is a plain value of the field type ``hint`` (ints count as floats,
    booleans as neither)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, h) for h in args)
    if origin is tuple:
        return (
            isinstance(value, tuple)
            and len(value) == len(args)
            and all(_has_type(v, h) for v, h in zip(value, args, strict=True))
        )
    if hint is bool or isinstance(value, bool):
        return hint is bool and isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, (int, float) if hint is float else hint)


def _type_problems(c: TrainConfig) -> list[str]:
    hints = typing.get_type_hints(TrainConfig)
    return [
        f"{_option(f.name)} must be {_type_name(hints[f.name])}, got {getattr(c, f.name)!r}"
        for f in fields(c)
        if not _has_type(getattr(c, f.name), hints[f.name])
    ]


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("NoneType", "None")


def _problems(c: TrainConfig) -> list[str]:
    out = _type_problems(c)
    if out:  # the checks below compare values of the right types
        return out
    for name in _POSITIVE_INTS:
        if getattr(c, name) < 1:
            out.append(f"{_option(name)} must be a positive integer, got {getattr(c, name)}")
    for name in _NON_NEGATIVE_INTS:
        if getattr(c, name) < 0:
            out.append(f"{_option(name)} must be >= 0 (0 turns it off), got {getattr(c, name)}")
    for name in ("width", "z_dim", "image_size", "data_size"):
        value = getattr(c, name)
        if value is not None and value < 1:
            out.append(f"{_option(name)} must be a positive integer, got {value}")
    if not (math.isfinite(c.lr) and c.lr > 0):
        out.append(f"--lr must be a positive number, got {c.lr}")
    if not all(0.0 <= b < 1.0 for b in c.betas):
        out.append(f"--betas must lie in [0, 1), got {list(c.betas)}")
    if not (0.0 <= c.ema < 1.0):
        out.append(f"--ema must be a decay in [0, 1) (0 turns the average off), got {c.ema}")
    if not (math.isfinite(c.drift) and c.drift >= 0):
        out.append(f"--drift must be a number >= 0, got {c.drift}")
    for name, low_open in (("lam", False), ("gamma", True)):
        value = getattr(c, name)
        if value == "auto":
            continue
        ok = isinstance(value, float) and math.isfinite(value) and (value > 0 or not low_open)
        if not ok or value < 0:
            need = "> 0" if low_open else ">= 0"
            out.append(f"--{name} must be 'auto' or a number {need}, got {value!r}")
    for name, allowed in (
        ("model", MODELS),
        ("precision", PRECISIONS),
        ("lr_decay", ("linear", "none")),
    ):
        if getattr(c, name) not in allowed:
            out.append(f"{_option(name)} must be one of {list(allowed)}, got {getattr(c, name)!r}")
    try:
        parse_norm(c.norm)
    except (TypeError, ValueError) as e:
        out.append(f"--norm: {e}")
    data = DATASETS.get(c.data)
    if data is not None and data.kind == "toy" and c.eval_samples > W1_MAX_SAMPLES:
        out.append(
            f"--eval-samples {c.eval_samples}: toy data are evaluated by the exact W1 between "
            "as many generated and real points, an assignment problem of n x n distances "
            f"(8 n^2 bytes, time ~ n^3); use at most {W1_MAX_SAMPLES}"
        )
    return out


#: The most ``--eval-samples`` of toy data: their exact W1 takes seconds at 4096 points.
W1_MAX_SAMPLES = 4096


MODELS = ("auto", "resnet", "dcgan", "mlp")
PRECISIONS = ("32", "bf16", "fp16")

# The paper's CIFAR-10 set-up (Adler & Lunz 2018, section 5, and its reference code): the
# WGAN-GP ResNet pair, Adam(2e-4, betas (0, 0.9)) decayed linearly to zero over 100k
# generator steps, 5 critic steps of batch 64 per generator step of batch 128, the drift
# term 1e-5 E[D(real)^2], lam and gamma estimated from the data, and a weight average of the
# generator with decay 0.99 as in the reference code. The W^{-3/2,2} run is the default;
# ``--norm lp:p=10`` gives the L^10 run.
PRESETS: dict[str, dict[str, Any]] = {
    "bwgan-cifar10": {
        "data": "cifar10",
        "model": "resnet",
        "width": 128,
        "z_dim": 128,
        "penalty": "gp",
        "norm": "sobolev:s=-1.5,p=2,c=5",
        "lam": "auto",
        "gamma": "auto",
        "drift": 1e-5,
        "steps": 100_000,
        "n_critic": 5,
        "batch_size": 64,
        "gen_batch_size": 128,
        "lr": 2e-4,
        "betas": (0.0, 0.9),
        "lr_decay": "linear",
        "ema": 0.99,
        "eval_every": 5000,
        "eval_samples": 10_000,
        "checkpoint_every": 5000,
    },
}
# WGAN-GP with the same networks and schedule (the paper's baseline, IS 7.86).
PRESETS["wgan-gp-cifar10"] = {**PRESETS["bwgan-cifar10"], "norm": "l2", "lam": 10.0, "gamma": 1.0}

PRESET_HELP = {
    "bwgan-cifar10": "the paper's CIFAR-10 run: ResNet pair, W^{-3/2,2} penalty, lam and gamma "
    "auto, drift 1e-5, 100k generator steps",
    "wgan-gp-cifar10": "the same set-up with WGAN-GP's penalty (L^2, lam 10, gamma 1)",
}
