"""lipreg: Lipschitz regularisation of GAN critics in any Banach space.

The one line::

    from lipreg import BanachGP, Sobolev
    penalty = BanachGP(norm=Sobolev(s=-1.5), lam="auto", gamma="auto")
    d_loss = d_fake.mean() - d_real.mean() + penalty(critic, real, fake)
"""

from lipreg.bounds import LayerBound, layer_bounds, lipschitz_upper_bound
from lipreg.calibration import Calibration
from lipreg.constraints import FFTSpectralNorm, WeightClip, spectral_normalize
from lipreg.ctransform import CTransformLoss, c_transform
from lipreg.derivative import input_gradient, running_stats_frozen
from lipreg.diagnostics import LipschitzEstimate, estimate_lipschitz
from lipreg.finite_difference import FiniteDifferenceGP, FiniteDifferenceStats
from lipreg.lazy import Lazy
from lipreg.norms import L2, Lp, Norm, Sobolev, parse_norm
from lipreg.pairwise import pairwise_distances
from lipreg.penalty import BanachGP, GradientPenalty, PenaltyStats, Stats
from lipreg.sampling import Sampler, interpolate
from lipreg.scaling import GammaScale, scale_by_gamma
from lipreg.spectral import ConvGeometry, circular_conv_norm, conv_lipschitz_bound
from lipreg.zero_centred import BanachR1, BanachR2, ZeroCentredStats

__version__ = "0.1.0"

__all__ = [
    "L2",
    "BanachGP",
    "BanachR1",
    "BanachR2",
    "CTransformLoss",
    "Calibration",
    "ConvGeometry",
    "FFTSpectralNorm",
    "FiniteDifferenceGP",
    "FiniteDifferenceStats",
    "GammaScale",
    "GradientPenalty",
    "LayerBound",
    "Lazy",
    "LipschitzEstimate",
    "Lp",
    "Norm",
    "PenaltyStats",
    "Sampler",
    "Sobolev",
    "Stats",
    "WeightClip",
    "ZeroCentredStats",
    "__version__",
    "c_transform",
    "circular_conv_norm",
    "conv_lipschitz_bound",
    "estimate_lipschitz",
    "input_gradient",
    "interpolate",
    "layer_bounds",
    "lipschitz_upper_bound",
    "pairwise_distances",
    "parse_norm",
    "running_stats_frozen",
    "scale_by_gamma",
    "spectral_normalize",
]
