"""The norm interface: a Banach space B on batch-first tensors and its dual B*."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from torch import Tensor

from lipreg._validation import check_batch, upcast


def format_number(v: float) -> str:
    """Shortest text that parses back to ``v`` (``10`` rather than ``10.0``; ``inf``)."""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return str(int(v)) if v.is_integer() else repr(v)


class Norm(ABC):
    """A norm ``||.||_B`` on batch-first tensors together with its dual norm ``||.||_{B*}``.

    Both methods reduce every non-batch axis: ``norm(x)`` maps ``x: [B, ...]`` to
    ``[B]`` with entry ``b`` equal to ``||x_b||_B``, and ``dual(g)`` maps ``g: [B, ...]`` to
    ``[B]`` with entry ``b`` equal to

        ||g_b||_{B*} = sup_{h != 0} <g_b, h> / ||h||_B,    <g, h> = sum_i g_i h_i,

    i.e. the norm of the linear functional ``h -> <g_b, h>``. With ``g`` the Euclidean
    gradient of a critic ``D`` at ``x``, ``dual(g)`` is ``||dD(x)||_{B*}``, the local
    Lipschitz constant of ``D`` in ``B`` (Lemma 1 of Adler & Lunz, 2018). Discrete conventions
    apply throughout: plain sums, no cell-volume factor, so ``L2()`` is the WGAN-GP norm.

    Half-precision inputs are computed in float32. Subclasses implement ``_norm``,
    ``_dual``, ``params``, ``space`` and ``dual_space``, and extend ``check`` when they need a
    particular layout.
    """

    #: Name of the norm in text specs (see :func:`lipreg.parse_norm`).
    name: str

    def norm(self, x: Tensor) -> Tensor:
        """``||x_b||_B`` for every sample: ``[B, ...] -> [B]``."""
        self.check(x, "x")
        return self._norm(upcast(x))

    def dual(self, g: Tensor) -> Tensor:
        """``||g_b||_{B*}`` for every sample: ``[B, ...] -> [B]``."""
        self.check(g, "g")
        return self._dual(upcast(g))

    def check(self, x: Tensor, name: str) -> None:
        """Raise if ``x`` (called ``name`` in messages) is not a valid input of this norm."""
        check_batch(x, name)

    @abstractmethod
    def _norm(self, x: Tensor) -> Tensor: ...

    @abstractmethod
    def _dual(self, g: Tensor) -> Tensor: ...

    @property
    @abstractmethod
    def params(self) -> dict[str, float]:
        """The constructor arguments that define the norm, by name."""

    @property
    @abstractmethod
    def space(self) -> str:
        """Name of ``B``, e.g. ``"W^{-1.5,2}"``."""

    @property
    @abstractmethod
    def dual_space(self) -> str:
        """Name of ``B*``, e.g. ``"W^{1.5,2}"``."""

    @property
    def spec(self) -> str:
        """Text spec that :func:`lipreg.parse_norm` turns back into an equal norm."""
        if not self.params:
            return self.name
        args = ",".join(f"{k}={format_number(float(v))}" for k, v in self.params.items())
        return f"{self.name}:{args}"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={format_number(float(v))}" for k, v in self.params.items())
        return f"{type(self).__name__}({args}) [B = {self.space}, B* = {self.dual_space}]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Norm) and (type(self), self.params) == (type(other), other.params)

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.params.items())))
