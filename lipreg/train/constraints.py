"""The trainer's ``--constraint``: hard Lipschitz constraints on the critic's weights.

- ``none`` (the default): the critic's weights are free (a penalty or the loss bounds it);
- ``clip[:c=C]``: WGAN weight clipping (Arjovsky et al. 2017), :class:`lipreg.WeightClip`:
  every critic parameter is clamped to ``[-C, C]`` (default 0.01, the paper's) once when the
  run is built and after every critic optimiser step;
- ``sn[:conv=power|fft]``: spectral normalisation (Miyato et al. 2018),
  :func:`lipreg.spectral_normalize`: every linear and convolution weight ``W`` of the critic
  becomes ``W / sigma(W)``, with ``sigma`` from one power-iteration step per forward
  (``power``, the default, SNGAN's) or, for convolutions, the l2 operator norm from the FFT
  of the kernel on the layer's input size (``fft``: exact for circular stride-1 layers, a
  certified bound for padded or strided ones, :mod:`lipreg.spectral`; linear layers keep
  power iteration).

Spectral normalisation is a reparametrisation of the critic: its state (the unnormalised
weights and the power iteration's vectors ``u``, ``v``) is part of the critic's state dict,
hence of every checkpoint. Weight clipping keeps its range in :meth:`Constraint.state_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from lipreg import WeightClip, spectral_normalize

KINDS = {
    "none": "no constraint on the critic's weights",
    "clip": "clip[:c=C], WGAN weight clipping: every critic parameter clamped to [-C, C] after "
    "each critic step (lipreg.WeightClip; C = 0.01 by default, the WGAN paper's)",
    "sn": "sn[:conv=power|fft], spectral normalisation of every linear and conv layer of the "
    "critic (lipreg.spectral_normalize): sigma by power iteration (SNGAN), or for conv=fft "
    "the convolutions' l2 operator norm (a certified bound for padded or strided layers) from "
    "the FFT of their kernels",
}
"""The kinds of ``--constraint``, for ``--help``."""

_OPTIONS = {"none": {}, "clip": {"c": "0.01"}, "sn": {"conv": "power"}}


@dataclass(frozen=True)
class ConstraintSpec:
    """A parsed ``--constraint``: its kind and options."""

    kind: str  #: ``"none"``, ``"clip"`` or ``"sn"``
    c: float = 0.01  #: the clip range of ``clip``
    conv: str = "power"  #: how ``sn`` normalises convolutions

    @property
    def spec(self) -> str:
        """The canonical spelling, e.g. ``"clip:c=0.01"`` or ``"sn:conv=fft"``."""
        if self.kind == "clip":
            return f"clip:c={self.c!r}"
        if self.kind == "sn":
            return f"sn:conv={self.conv}"
        return "none"

    @property
    def bounds_lipschitz(self) -> bool:
        """Whether it makes the critic 1-Lipschitz in l2 (``sn``; ``clip`` bounds the constant
        by an unknown multiple of ``C``)."""
        return self.kind == "sn"


def parse_constraint(text: str) -> ConstraintSpec:
    """The :class:`ConstraintSpec` of ``text`` (``none``, ``clip[:c=C]``,
    ``sn[:conv=power|fft]``); ``ValueError`` naming what is wrong and what is allowed."""
    if not isinstance(text, str):
        raise ValueError(f"a constraint is a text such as 'clip:c=0.01', got {text!r}")
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    if kind not in _OPTIONS:
        raise ValueError(f"unknown constraint {kind!r} in {text!r}; use one of {sorted(KINDS)}")
    values = dict(_OPTIONS[kind])
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in values:
            allowed = ", ".join(f"{k}=..." for k in values) or "no options"
            raise ValueError(f"{text!r}: {kind} takes {allowed}, got {item!r}")
        values[key.strip()] = value.strip()
    if kind == "clip":
        try:
            c = float(values["c"])
        except ValueError:
            c = math.nan
        if not (math.isfinite(c) and c > 0):
            raise ValueError(
                f"{text!r}: the clip range c must be a number > 0, got {values['c']!r}"
            )
        return ConstraintSpec("clip", c=c)
    if kind == "sn":
        if values["conv"] not in ("power", "fft"):
            raise ValueError(f"{text!r}: conv must be power or fft, got {values['conv']!r}")
        return ConstraintSpec("sn", conv=values["conv"])
    return ConstraintSpec("none")


class Constraint:
    """The constraint ``spec`` (a parsed ``--constraint``) applied to ``critic`` (in place),
    whose samples have
    ``sample_shape`` (without the batch axis; ``sn:conv=fft`` traces the convolutions' input
    sizes with it). Spectral normalisation is installed here, so build the critic's optimiser
    afterwards (the normalised layers' parameters are new); then :meth:`attach` it."""

    def __init__(
        self, spec: ConstraintSpec, critic: nn.Module, sample_shape: tuple[int, ...]
    ) -> None:
        self.spec = spec
        self.clip: WeightClip | None = None
        if self.spec.kind == "sn":
            conv: Literal["power", "fft"] = "fft" if self.spec.conv == "fft" else "power"
            spectral_normalize(critic, conv=conv, input_shape=sample_shape)
        elif self.spec.kind == "clip":
            self.clip = WeightClip(critic, self.spec.c)

    def normalised_once(self) -> AbstractContextManager[Any]:
        """For ``sn:conv=fft``, a block in which each normalised weight is computed once and
        shared by every forward (``torch.nn.utils.parametrize.cached``): the FFT and SVDs of
        a critic step's forwards on real, fake and penalty points are then done once. Power
        iteration keeps its step per forward (SNGAN's), so other kinds change nothing."""
        if self.spec.kind == "sn" and self.spec.conv == "fft":
            return parametrize.cached()
        return nullcontext()

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip now and after every step of ``optimizer`` (the critic's), for ``clip``."""
        if self.clip is not None:
            self.clip.clip()
            self.clip.attach(optimizer)

    def state_dict(self) -> dict[str, Any]:
        """The clip's range (``{}`` for the other kinds, whose state is the critic's)."""
        return {} if self.clip is None else {"clip": self.clip.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state of another kind raises ``ValueError``."""
        if set(state) != set(self.state_dict()):
            raise ValueError(
                f"the checkpoint's constraint state {dict(state)!r} is not one of "
                f"--constraint {self.spec.spec}"
            )
        if self.clip is not None:
            self.clip.load_state_dict(state["clip"])

    def __repr__(self) -> str:
        return repr(self.clip) if self.clip is not None else f"Constraint({self.spec.spec})"
