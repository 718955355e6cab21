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

from lipreg.losses import LOSSES
from lipreg.norms import parse_norm
from lipreg.train.constraints import parse_constraint
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
    def from_saved(cls, values: dict[str, Any]) -> TrainConfig:
        """:meth:`from_dict` of a configuration saved in a checkpoint: options added since it
        was written take the value that reproduces its run (:data:`SAVED_DEFAULTS`)."""
        return cls.from_dict({**SAVED_DEFAULTS, **values})

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
        return dataclasses.replace(
            self, norm=parse_norm(self.norm).spec, constraint=parse_constraint(self.constraint).spec
        )


# Options added after checkpoints existed, with the value that older checkpoints ran with.
# Before --loss, every run trained the Wasserstein loss; before --constraint, none was applied.
SAVED_DEFAULTS: dict[str, Any] = {"critic_scale": "none", "loss": "wgan", "constraint": "none"}

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
    for name in ("width", "z_dim", "image_size", "data_size", "decay_steps"):
        value = getattr(c, name)
        if value is not None and value < 1:
            out.append(f"{_option(name)} must be a positive integer, got {value}")
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
            out.append(f"{_option(name)} must be one of {list(allowed)}, got {getattr(c, name)!r}")
    try:
        parse_norm(c.norm)
    except (TypeError, ValueError) as e:
        out.append(f"--norm: {e}")
    try:
        parse_constraint(c.constraint)
    except ValueError as e:
        out.append(f"--constraint: {e}")
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
    if c.lr_final is not None:
        if not (math.isfinite(c.lr_final) and c.lr_final >= 0):
            out.append(f"--lr-final must be a number >= 0, got {c.lr_final}")
        elif c.lr_decay == "none":
            out.append("--lr-final is where --lr-decay linear or cosine ends; drop it with none")
    if c.beta2_final is not None and not (0.0 <= c.beta2_final < 1.0):
        out.append(f"--beta2-final must lie in [0, 1), got {c.beta2_final}")
    if c.gamma_final is not None and not (math.isfinite(c.gamma_final) and c.gamma_final >= 0):
        out.append(f"--gamma-final must be a number >= 0, got {c.gamma_final}")
    if c.ema_half_life is not None:
        if not (math.isfinite(c.ema_half_life) and c.ema_half_life > 0):
            out.append(f"--ema-half-life must be a number of steps > 0, got {c.ema_half_life}")
        elif c.ema == 0:
            out.append("--ema 0 turns the weight average off; drop --ema-half-life or --ema 0")
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
        # The reference code's critic is the network itself (slope gamma ~ E||X||_B*);
        # "gamma" would be the same objective, reached faster under Adam.
        "critic_scale": "none",
        "eval_every": 5000,
        "eval_samples": 10_000,
        "checkpoint_every": 5000,
    },
}
# WGAN-GP with the same networks and schedule (the paper's baseline, IS 7.86).
PRESETS["wgan-gp-cifar10"] = {**PRESETS["bwgan-cifar10"], "norm": "l2", "lam": 10.0, "gamma": 1.0}

# R3GAN's CIFAR-10 objective and schedules (Huang et al., NeurIPS 2024), read from the public
# code github.com/brownvc/R3GAN at commit 19a7ddf463fbac2bd39b4c1c73d63f1c441c7403: train.py's
# CIFAR10 preset (lines 178-196), the README's CIFAR-10 command (--batch=512, line 36),
# training/training_loop.py (the schedules, lines 29-38 and 307-331; the EMA, line 351) and
# R3GAN/Trainer.py (the losses). Its schedules run in images over decay_nimg = 2e7 (train.py
# line 190); one iteration is one D and one G step on batch_size = 512 images each
# (training_loop.py lines 218-227, 287-305, 358), so 2e7 images are 2e7 / 512 = 39062.5 of
# lipreg's generator steps (rounded up). lipreg's ResNet pair replaces R3GAN's networks; see
# docs/trainer.md for what differs.
_R3GAN_BATCH = 512  # README.md line 36: --batch=512
_R3GAN_HORIZON = math.ceil(2e7 / _R3GAN_BATCH)  # train.py line 190: decay_nimg = 2e7
PRESETS["r3gan-cifar10"] = {
    "data": "cifar10",
    "model": "resnet",
    "width": 128,  # lipreg's ResNet (R3GAN: 768 channels per stage, train.py line 179)
    "z_dim": 64,  # train.py line 183: NoiseDimension = 64
    "loss": "rpgan",  # R3GAN/Trainer.py: softplus(-(D(real) - D(fake))) and its mirror for G
    "penalty": "r1r2",  # R3GAN/Trainer.py: (Gamma / 2) * (R1Penalty + R2Penalty)
    "norm": "l2",  # R3GAN/Trainer.py: Gradient.square().sum([1, 2, 3])
    "gamma": 0.05,  # train.py line 195: gamma_scheduler base_value 0.05
    "gamma_final": 0.005,  # train.py line 195: final_value 0.005
    "drift": 0.0,
    "lazy_every": 1,
    "steps": _R3GAN_HORIZON,  # R3GAN trains until stopped (--kimg default 1e7 kimg, line 143)
    "decay_steps": _R3GAN_HORIZON,
    "n_critic": 1,  # training_loop.py lines 218-227: one D phase, one G phase
    "batch_size": _R3GAN_BATCH,
    "gen_batch_size": _R3GAN_BATCH,  # the G phase also draws batch_size (lines 290-305)
    "lr": 2e-4,  # train.py line 194: lr_scheduler base_value 2e-4
    "lr_final": 5e-5,  # train.py line 194: final_value 5e-5
    "lr_decay": "cosine",  # training_loop.py lines 29-38: cosine_decay_with_warmup, no warm-up
    "betas": (0.0, 0.9),  # training_loop.py line 331: betas (0, beta2); train.py line 196: 0.9
    "beta2_final": 0.99,  # train.py line 196: beta2_scheduler final_value 0.99
    # train.py lines 189 and 192: EMA half-life from 0 to ema_nimg = 5e6 images, in steps
    "ema_half_life": 5e6 / _R3GAN_BATCH,
    "eval_every": 5000,
    "eval_samples": 50_000,  # train.py line 142: --metrics default fid50k_full
    "checkpoint_every": 5000,
}

# The README's main job: a Banach Wasserstein GAN on scikit-learn's digits, resized to 16x16
# (the DCGAN pair needs sides 4 * 2**k), trained in a few minutes on a laptop CPU: the paper's
# loss, penalty (W^{-3/2,2}, lam and gamma estimated from the data), optimiser and critic
# steps, with the critic parametrised as D = gamma * f (--critic-scale gamma) so that
# gamma = E||X||_B* trains in so short a run; the digits quality metric at every evaluation.
PRESETS["bwgan-digits"] = {
    "data": "digits",
    "image_size": 16,
    "model": "dcgan",
    "width": 32,
    "z_dim": 128,
    "penalty": "gp",
    "norm": "sobolev:s=-1.5,p=2,c=5",
    "lam": "auto",
    "gamma": "auto",
    "critic_scale": "gamma",
    "drift": 1e-5,
    "steps": 600,
    "n_critic": 5,
    "batch_size": 64,
    "gen_batch_size": 128,
    "lr": 2e-4,
    "betas": (0.0, 0.9),
    "lr_decay": "linear",
    "ema": 0.999,
    "eval_every": 100,
    "eval_samples": 1000,
    "checkpoint_every": 0,
}

PRESET_HELP = {
    "bwgan-digits": "the README's main job: digits at 16x16, DCGAN pair of width 32, "
    "W^{-3/2,2} penalty with lam and gamma auto and D = gamma * f, 600 steps (about 3 minutes "
    "on 2 CPU cores), the digits quality metric every 100 steps",
    "bwgan-cifar10": "the paper's CIFAR-10 run: ResNet pair, W^{-3/2,2} penalty, lam and gamma "
    "auto, drift 1e-5, 100k generator steps",
    "wgan-gp-cifar10": "the same set-up with WGAN-GP's penalty (L^2, lam 10, gamma 1)",
    "r3gan-cifar10": "R3GAN's CIFAR-10 objective on the ResNet pair: RpGAN loss, R1 + R2 with "
    "gamma 0.05 -> 0.005, Adam 2e-4 -> 5e-5 with beta2 0.9 -> 0.99 (cosines over 39063 steps), "
    "batch 512, one critic step, EMA half-life growing to 9766 steps",
}
