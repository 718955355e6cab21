"""Norms on batch-first tensors with exact dual norms.

A norm maps ``[B, ...]`` to ``[B]`` with ``norm(x)``; ``dual(g)`` is the norm of the
functional ``h -> <g, h>`` in the dual space, which is what a Banach gradient penalty
measures on a critic's input gradient ``g``.
"""

from lipreg.norms.base import Norm
from lipreg.norms.lp import L2, Lp, conjugate, lp_norm
from lipreg.norms.sobolev import Sobolev, sobolev_multiplier
from lipreg.norms.spec import parse_norm

__all__ = [
    "L2",
    "Lp",
    "Norm",
    "Sobolev",
    "conjugate",
    "lp_norm",
    "parse_norm",
    "sobolev_multiplier",
]
