"""lipreg: Lipschitz regularisation of GAN critics in any Banach space.

The one line::

    from lipreg import BanachGP, Sobolev
    penalty = BanachGP(norm=Sobolev(s=-1.5), lam="auto", gamma="auto")
    d_loss = d_fake.mean() - d_real.mean() + penalty(critic, real, fake)
"""

from lipreg.calibration import Calibration
from lipreg.derivative import input_gradient, running_stats_frozen
from lipreg.norms import L2, Lp, Norm, Sobolev, parse_norm
from lipreg.penalty import BanachGP, PenaltyStats
from lipreg.sampling import Sampler, interpolate

__version__ = "0.1.0"

__all__ = [
    "L2",
    "BanachGP",
    "Calibration",
    "Lp",
    "Norm",
    "PenaltyStats",
    "Sampler",
    "Sobolev",
    "__version__",
    "input_gradient",
    "interpolate",
    "parse_norm",
    "running_stats_frozen",
]
