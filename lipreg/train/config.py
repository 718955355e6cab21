"""The trainer's configuration: one dataclass of plain values.

Every field is a plain Python value (str, int, float, bool, None or a tuple of floats), so a
configuration is saved in checkpoints (loadable with ``weights_only=True``) and as JSON.
Values are resolved in this order: the defaults below, then a preset
(:mod:`lipreg.train.presets`), then the options given explicitly on the command line. A run
parses it once into typed parts (:class:`lipreg.train.plan.Plan`); its text specs (``norm``,
``constraint``) are parsed here, by :meth:`TrainConfig.parsed`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, fields
from typing import Any

from lipreg.derivative_free import DEFAULT_SIGMA
from lipreg.losses import LOSSES
from lipreg.norms import Norm, parse_norm
from lipreg.train.constraints import ConstraintSpec, parse_constraint
from lipreg.train.data import DATASETS, DEFAULT_IMAGE_DATASET


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Batch sizes are global (summed over processes)."""

    # data
    data: str = DEFAULT_IMAGE_DATASET
    data_root: str | None = None
    image_size: int | None = None
    data_size: int | None = None
    download: bool = False
    # models
    model: str = "auto"
    width: int | None = None
    z_dim: int | None = None
    # objective and penalty
    loss: str = "auto"
    penalty: str = "gp"
    norm: str = "l2"
    lam: float | str = 10.0
    gamma: float | str = 1.0
    gamma_final: float | None = None
    drift: float = 0.0
    lazy_every: int = 1
    penalty_fraction: float = 1.0
    sigma: float = DEFAULT_SIGMA
    critic_scale: str = "gamma"
    constraint: str = "none"
    # optimisation
    steps: int = 1000
    n_critic: int = 5
    batch_size: int = 64
    gen_batch_size: int = 128
    lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    lr_decay: str = "linear"
    lr_final: float | None = None
    decay_steps: int | None = None
    beta2_final: float | None = None
    ema: float = 0.999
    ema_half_life: float | None = None
    precision: str = "32"
    device: str = "auto"
    seed: int = 0
    # outputs
    out: str = "runs/lipreg"
    log_every: int = 10
    eval_every: int = 500
    eval_samples: int = 512
    checkpoint_every: int = 1000
    inception: bool = True
    inception_weights: str | None = None
    inception_weights_unverified: bool = False
    tensorboard: bool = True
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain values (``betas`` as a list), e.g. for JSON."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_saved(cls, values: dict[str, Any], check: bool = True) -> TrainConfig:
        """:meth:`from_dict` of a configuration saved in a checkpoint: options added since it
        was written take the value that reproduces its run (:data:`SAVED_DEFAULTS`)."""
        return cls.from_dict({**SAVED_DEFAULTS, **values}, check=check)

    @classmethod
    def from_dict(cls, values: dict[str, Any], check: bool = True) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``. The result is
        :meth:`checked` unless ``check`` is false (for a caller that parses it next, as
        :meth:`lipreg.train.plan.Plan.parse` does)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys {unknown}; known: {sorted(known)}")
        values = dict(values)
        betas = values.get("betas")
        if isinstance(betas, (list, tuple)):  # JSON has no tuples; other types are refused
            values["betas"] = tuple(float(b) if isinstance(b, int) else b for b in betas)
        config = cls(**values)
        return config.checked() if check else config

    def checked(self) -> TrainConfig:
        """``self`` with the norm and the constraint in their canonical spelling if every
        value is valid (so that ``"sobolev:s=-1.5"`` and ``"sobolev:s=-1.5,p=2,c=5"`` compare
        equal when a run is resumed); otherwise ``ValueError`` naming the first bad option."""
        return self.parsed()[0]

    def parsed(self) -> tuple[TrainConfig, Norm, ConstraintSpec]:
        """:meth:`checked`'s configuration with its parsed norm and constraint: the one place
        where the text specs are parsed (``ValueError`` naming the first bad option)."""
        for problem in _problems(self):
            raise ValueError(problem)
        norm = _spec("--norm", parse_norm, self.norm)
        constraint = _spec("--constraint", parse_constraint, self.constraint)
        canonical = dataclasses.replace(self, norm=norm.spec, constraint=constraint.spec)
        return canonical, norm, constraint


_Spec = typing.TypeVar("_Spec")


def _spec(option: str, parse: typing.Callable[[str], _Spec], text: str) -> _Spec:
    """``parse(text)``, its ``TypeError`` or ``ValueError`` as a ``ValueError`` naming
    ``option``."""
    try:
        return parse(text)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{option}: {e}") from None


# Options added after checkpoints existed, with the value that older checkpoints ran with.
# Before --loss, every run trained the Wasserstein loss; before --constraint, none was applied;
# before --penalty-fraction, the penalty saw the whole batch. (--sigma needs no entry: no
# older run had a penalty that uses it, and the unused option is left at its default.)
SAVED_DEFAULTS: dict[str, Any] = {
    "critic_scale": "none",
    "loss": "wgan",
    "constraint": "none",
    "penalty_fraction": 1.0,
}

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
        "inception",
        "inception_weights",
        "inception_weights_unverified",
        "tensorboard",
        "progress",
        "data_root",
        "download",
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


def flag(name: str) -> str:
    """The command-line option of the field ``name`` (``"lr_final"`` -> ``"--lr-final"``)."""
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
        f"{flag(f.name)} must be {_type_name(hints[f.name])}, got {getattr(c, f.name)!r}"
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
            out.append(f"{flag(name)} must be a positive integer, got {getattr(c, name)}")
    for name in _NON_NEGATIVE_INTS:
        if getattr(c, name) < 0:
            out.append(f"{flag(name)} must be >= 0 (0 turns it off), got {getattr(c, name)}")
    for name in ("width", "z_dim", "image_size", "data_size", "decay_steps"):
        value = getattr(c, name)
        if value is not None and value < 1:
            out.append(f"{flag(name)} must be a positive integer, got {value}")
    if not (math.isfinite(c.lr) and c.lr > 0):
        out.append(f"--lr must be a positive number, got {c.lr}")
    if not all(0.0 <= b < 1.0 for b in c.betas):
        out.append(f"--betas must lie in [0, 1), got {list(c.betas)}")
    if not (0.0 <= c.ema < 1.0):
        out.append(f"--ema must be a decay in [0, 1) (0 turns the average off), got {c.ema}")
    out += _schedule_problems(c)
    if c.loss not in LOSS_CHOICES:
        out.append(f"--loss must be one of {list(LOSS_CHOICES)}, got {c.loss!r}")
    elif c.loss == "rpgan" and c.gen_batch_size % c.batch_size:
        out.append(
            "--loss rpgan pairs every generated sample of a generator step with a real one, "
            "drawn as whole real batches: --gen-batch-size must be a multiple of --batch-size, "
            f"got {c.gen_batch_size} and {c.batch_size}"
        )
    if not (math.isfinite(c.drift) and c.drift >= 0):
        out.append(f"--drift must be a number >= 0, got {c.drift}")
    if not (0 < c.penalty_fraction <= 1):
        out.append(
            "--penalty-fraction must be a number in (0, 1], the share of each batch the "
            f"penalty sees, got {c.penalty_fraction}"
        )
    if not (math.isfinite(c.sigma) and c.sigma > 0):
        out.append(f"--sigma must be a number > 0, got {c.sigma}")
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
        ("lr_decay", LR_DECAYS),
        ("critic_scale", CRITIC_SCALES),
    ):
        if getattr(c, name) not in allowed:
            out.append(f"{flag(name)} must be one of {list(allowed)}, got {getattr(c, name)!r}")
    data = DATASETS.get(c.data)
    if data is not None and data.kind == "toy" and c.eval_samples > W1_MAX_SAMPLES:
        out.append(
            f"--eval-samples {c.eval_samples}: toy data are evaluated by the exact W1 between "
            "as many generated and real points, an assignment problem of n x n distances "
            f"(8 n^2 bytes, time ~ n^3); use at most {W1_MAX_SAMPLES}"
        )
    return out


def _schedule_problems(c: TrainConfig) -> list[str]:
    out = []
    if c.lr_final is not None and not (math.isfinite(c.lr_final) and c.lr_final >= 0):
        out.append(f"--lr-final must be a number >= 0, got {c.lr_final}")
    if c.beta2_final is not None and not (0.0 <= c.beta2_final < 1.0):
        out.append(f"--beta2-final must lie in [0, 1), got {c.beta2_final}")
    if c.gamma_final is not None and not (math.isfinite(c.gamma_final) and c.gamma_final >= 0):
        out.append(f"--gamma-final must be a number >= 0, got {c.gamma_final}")
    if c.ema_half_life is not None and not (math.isfinite(c.ema_half_life) and c.ema_half_life > 0):
        out.append(f"--ema-half-life must be a number of steps > 0, got {c.ema_half_life}")
    return out


#: The most ``--eval-samples`` of toy data: their exact W1 takes seconds at 4096 points.
W1_MAX_SAMPLES = 4096


MODELS = ("auto", "resnet", "dcgan", "mlp")
# The score losses of lipreg.losses, and the c-transform critic (lipreg.CTransformLoss), which
# takes the critic itself rather than its scores (lipreg.train.ctransform).
LOSS_CHOICES = ("auto", *LOSSES, "ctransform")
CRITIC_SCALES = ("gamma", "none")
LR_DECAYS = ("linear", "cosine", "none")
PRECISIONS = ("32", "bf16", "fp16")
