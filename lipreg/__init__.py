"""lipreg: Lipschitz regularisation of GAN critics in any Banach space.

The one line::

    from lipreg import BanachGP, Sobolev
    penalty = BanachGP(norm=Sobolev(s=-1.5), lam="auto", gamma="auto")
    d_loss = d_fake.mean() - d_real.mean() + penalty(critic, real, fake)

and with the other objectives of :mod:`lipreg.losses`, e.g. R3GAN's in a Sobolev norm::

    r1r2 = BanachR1R2(norm=Sobolev(s=-1), gamma=0.05)
    d_loss = rpgan_critic_loss(d_real, d_fake) + r1r2(critic, real, fake)
"""

from lipreg.bounds import LayerBound, layer_bounds, lipschitz_upper_bound
from lipreg.calibration import Calibration
from lipreg.constraints import FFTSpectralNorm, WeightClip, spectral_normalize
from lipreg.ctransform import CTransformLoss, c_transform
from lipreg.derivative import input_gradient, running_stats_frozen
from lipreg.derivative_free import (
    ApproxR1,
    ApproxR1R2,
    ApproxR1R2Stats,
    ApproxR2,
    ApproxStats,
    estimate_dual_squared,
)
from lipreg.diagnostics import LipschitzEstimate, estimate_lipschitz
from lipreg.finite_difference import FiniteDifferenceGP, FiniteDifferenceStats
from lipreg.lazy import Lazy
from lipreg.losses import (
    GANLoss,
    hinge_critic_loss,
    hinge_generator_loss,
    ns_critic_loss,
    ns_generator_loss,
    rpgan_critic_loss,
    rpgan_generator_loss,
    wgan_critic_loss,
    wgan_generator_loss,
)
from lipreg.norms import L2, Lp, Norm, Sobolev, parse_norm
from lipreg.pairwise import pairwise_distances
from lipreg.penalty import BanachGP, GradientPenalty, PenaltyStats, Stats
from lipreg.sampling import Sampler, interpolate
from lipreg.scaling import GammaScale, scale_by_gamma
from lipreg.spectral import ConvGeometry, circular_conv_norm, conv_lipschitz_bound
from lipreg.subsample import Subsampled
from lipreg.zero_centred import BanachR1, BanachR1R2, BanachR2, R1R2Stats, ZeroCentredStats

__version__ = "0.1.0"

__all__ = [
    "L2",
    "ApproxR1",
    "ApproxR1R2",
    "ApproxR1R2Stats",
    "ApproxR2",
    "ApproxStats",
    "BanachGP",
    "BanachR1",
    "BanachR1R2",
    "BanachR2",
    "CTransformLoss",
    "Calibration",
    "ConvGeometry",
    "FFTSpectralNorm",
    "FiniteDifferenceGP",
    "FiniteDifferenceStats",
    "GANLoss",
    "GammaScale",
    "GradientPenalty",
    "LayerBound",
    "Lazy",
    "LipschitzEstimate",
    "Lp",
    "Norm",
    "PenaltyStats",
    "R1R2Stats",
    "Sampler",
    "Sobolev",
    "Stats",
    "Subsampled",
    "WeightClip",
    "ZeroCentredStats",
    "__version__",
    "c_transform",
    "circular_conv_norm",
    "conv_lipschitz_bound",
    "estimate_dual_squared",
    "estimate_lipschitz",
    "hinge_critic_loss",
    "hinge_generator_loss",
    "input_gradient",
    "interpolate",
    "layer_bounds",
    "lipschitz_upper_bound",
    "ns_critic_loss",
    "ns_generator_loss",
    "pairwise_distances",
    "parse_norm",
    "rpgan_critic_loss",
    "rpgan_generator_loss",
    "running_stats_frozen",
    "scale_by_gamma",
    "spectral_normalize",
    "wgan_critic_loss",
    "wgan_generator_loss",
]
