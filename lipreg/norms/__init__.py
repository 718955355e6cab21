"""Norms on batch-first tensors with exact dual norms.

A norm maps ``[B, ...]`` to ``[B]`` with ``norm(x)``; ``dual(g)`` is the norm of the
functional ``h -> <g, h>`` in the dual space, which is what a Banach gradient penalty
measures on a critic's input gradient ``g``. Local norms (``Wasserstein2``) depend on a base
point and take it as ``at=``.
"""

from lipreg.norms.base import LocalNorm, Norm
from lipreg.norms.lp import L2, Lp, conjugate, lp_norm
from lipreg.norms.sobolev import Sobolev, sobolev_multiplier
from lipreg.norms.spec import parse_norm
from lipreg.norms.wasserstein2 import Wasserstein2

__all__ = [
    "L2",
    "LocalNorm",
    "Lp",
    "Norm",
    "Sobolev",
    "Wasserstein2",
    "conjugate",
    "lp_norm",
    "parse_norm",
    "sobolev_multiplier",
]
