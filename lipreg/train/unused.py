"""Options that other choices make meaningless, and how a run treats them.

``--lam`` does nothing with ``--penalty r1`` (gamma alone weights R1), ``--norm`` nothing with
``--penalty none`` (unless the c-transform measures costs in it), ``--lr-final`` nothing with
``--lr-decay none``, ... (:func:`unused_options` lists every such rule). A value that would
be ignored without a word is a mistake somewhere, so a run treats these options by where
their values came from:

- given explicitly (on the command line): refused, whatever the value, with the reason;
- set by a preset: reset to its default. A preset fills in a whole method; the user's
  explicit choices (``--preset bwgan-digits --penalty r2 --gamma 10``) replace the part of it
  that the preset's other values belonged to, and those give way instead of blocking them;
- anything else (Python code, a checkpoint): refused when it differs from the default.

A new option that other choices can make meaningless is one rule in :func:`unused_options`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from lipreg.train.config import TrainConfig, flag
from lipreg.train.penalties import PENALTIES

_DEFAULTS = TrainConfig()


def unused_options(config: TrainConfig) -> dict[str, str]:
    """The options (field names) that the other choices of ``config`` leave without effect,
    whatever their values, each with a sentence on why, starting with the option and its
    value."""
    c, kind = config, PENALTIES[config.penalty]
    out: dict[str, str] = {}

    def unused(name: str, why: str) -> None:
        out.setdefault(name, f"{flag(name)} {getattr(c, name)!r} {why}")

    if c.penalty == "none":
        nothing = "has no effect with --penalty none (nothing uses it)"
        for name in ("lam", "gamma", "gamma_final", "lazy_every", "penalty_fraction"):
            unused(name, nothing)
        if c.loss != "ctransform":  # the c-transform's cost is measured in the norm
            unused("norm", nothing)
    if kind.zero_centred:
        unused(
            "lam",
            f"has no effect with --penalty {c.penalty}, which --gamma alone weights "
            "(--gamma 10 is StyleGAN2's R1 weight)",
        )
    if kind.lipschitz:
        unused(
            "gamma_final",
            "has no effect: --gamma-final schedules the weight of a zero-centred penalty (r1, "
            f"r2, r1r2, approx-*); with --penalty {c.penalty} gamma is a Lipschitz constant",
        )
    if not kind.dual_gaussian:
        unused(
            "sigma",
            "has no effect: --sigma is the size of the perturbations of the derivative-free "
            f"penalties (approx-r1, approx-r2, approx-r1r2), and --penalty {c.penalty} draws none",
        )
    if c.lr_decay == "none":
        unused("lr_final", "has no effect: --lr-final is where --lr-decay linear or cosine ends")
    if c.ema == 0:
        unused("ema_half_life", "has no effect: --ema 0 turns the weight average off")
    return out


def settle(
    config: TrainConfig, given: Collection[str] = (), preset: Collection[str] = ()
) -> tuple[TrainConfig, list[str]]:
    """``config`` with the unused options that only a preset set reset to their defaults, and
    why each other unused option is refused: one that was ``given`` explicitly, or that
    differs from its default without a preset having set it.

    Args:
        config: a checked configuration.
        given: the options given explicitly (field names), checked strictly.
        preset: the options a preset set (field names); those not in ``given`` give way.
    """
    reset: dict[str, object] = {}
    problems = []
    for name, why in unused_options(config).items():
        default = getattr(_DEFAULTS, name)
        if name in given:
            problems.append(f"{why}; drop {flag(name)}")
        elif name in preset:
            reset[name] = default
        elif getattr(config, name) != default:
            problems.append(f"{why}; leave it at its default {default!r}")
    return dataclasses.replace(config, **reset), problems  # type: ignore[arg-type]
