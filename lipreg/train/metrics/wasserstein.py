"""Wasserstein distances between samples: exact ``W_1`` for toy points, and the sliced
Wasserstein distance over a Laplacian pyramid for images (Karras et al. 2018, Progressive
GAN), which needs no network weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lipreg._validation import check_batch, upcast
from lipreg.train.data.base import check_int
from lipreg.train.metrics.checks import check_pair, float64


def wasserstein1(x: Tensor, y: Tensor) -> float:
    """Exact ``W_1`` between the empirical measures of ``x`` and ``y`` (``[N, D]`` each).

    With equally many atoms of equal mass an optimal plan is a permutation (Birkhoff), so

        W_1 = min over permutations pi of (1/N) sum_i ||x_i - y_pi(i)||_2,

    solved exactly by ``scipy.optimize.linear_sum_assignment`` on the Euclidean cost matrix
    (``O(N^3)``: about a second for ``N = 2000``).
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    a, b = check_pair(x, y, ("x", "y"), same_n=True)
    cost = cdist(float64(a), float64(b), metric="euclidean")
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def sliced_wasserstein(
    a: Tensor,
    b: Tensor,
    *,
    directions: int = 128,
    repeats: int = 4,
    generator: torch.Generator | None = None,
) -> float:
    """Monte-Carlo sliced ``W_1`` between equal-size point sets ``a``, ``b`` ``[N, D]``.

    For ``directions`` unit vectors ``theta`` drawn uniformly on the sphere (normalised
    Gaussians), the 1-D ``W_1`` between the projections is the mean absolute difference of
    the sorted projections; the result averages it over directions and ``repeats`` batches
    of directions, as Progressive GAN's ``sliced_wasserstein``:

        SW_1(a, b) ~ mean_theta (1/N) sum_i |sort(a theta)_i - sort(b theta)_i|.

    Since every projection is 1-Lipschitz, ``SW_1 <= W_1``. ``generator`` (a CPU generator)
    seeds the directions; computed in the dtype and on the device of ``a``.
    """
    a, b = check_pair(a, b, ("a", "b"), same_n=True)
    check_int(directions, "directions", 1)
    check_int(repeats, "repeats", 1)
    results = []
    for _ in range(repeats):
        theta = torch.randn(a.shape[1], directions, generator=generator, dtype=torch.float64)
        theta = (theta / theta.norm(dim=0, keepdim=True)).to(a.device, a.dtype)
        proj_a = (a @ theta).sort(dim=0).values
        proj_b = (b.to(a.dtype) @ theta).sort(dim=0).values
        results.append((proj_a - proj_b).abs().mean())
    return float(torch.stack(results).double().mean())


# Progressive GAN's 5x5 binomial filter, as cv2.pyrDown / pyrUp.
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: Tensor, gain: float) -> Tensor:
    """``gain *`` the 5x5 binomial filter per channel, mirrored edges (``d c b | a b c d``)."""
    c = x.shape[1]
    kernel = (gain * torch.outer(_BINOMIAL, _BINOMIAL)).to(x.device, x.dtype)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(padded, kernel.expand(c, 1, 5, 5), groups=c)


def _pyr_down(x: Tensor) -> Tensor:
    return _blur(x, 1.0)[:, :, ::2, ::2]


def _pyr_up(x: Tensor, shape: tuple[int, int]) -> Tensor:
    up = x.new_zeros(*x.shape[:2], *shape)
    up[:, :, ::2, ::2] = x
    # four times the filter: three of four samples of `up` are zero
    return _blur(up, 4.0)


def laplacian_pyramid(images: Tensor, levels: int) -> list[Tensor]:
    """The Laplacian pyramid ``[L_0, ..., L_{levels-1}]`` of ``images`` ``[N, C, H, W]``.

    ``G_0 = images``, ``G_{k+1} = down(G_k)`` (5x5 binomial blur, mirrored edges, every
    second pixel), ``L_k = G_k - up(G_{k+1})`` (zeros inserted, blurred with 4x the
    filter) and ``L_{levels-1} = G_{levels-1}``, as Progressive GAN (cv2.pyrDown/pyrUp);
    ``images`` is recovered exactly by adding the levels back from the coarsest.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape [N, C, H, W], got {list(images.shape)}")
    pyramid = [images]
    for _ in range(levels - 1):
        pyramid.append(_pyr_down(pyramid[-1]))
        finer = pyramid[-2]
        pyramid[-2] = finer - _pyr_up(pyramid[-1], (finer.shape[2], finer.shape[3]))
    return pyramid


def _nhood_index(
    shape: torch.Size, nhood_size: int, per_image: int, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Index tensors picking ``per_image`` neighbourhoods per image at uniform random
    centres (whole neighbourhoods inside the image) from a level of shape ``[N, C, H, W]``;
    indexing with them gives ``[N * per_image, C, nhood_size, nhood_size]``."""
    n, c, h, w = shape
    r = nhood_size // 2
    m = n * per_image
    image = (torch.arange(m) // per_image)[:, None, None, None]
    cy = torch.randint(r, h - r, (m,), generator=gen)
    cx = torch.randint(r, w - r, (m,), generator=gen)
    off = torch.arange(-r, r + 1)
    rows = (cy[:, None] + off)[:, None, :, None]
    cols = (cx[:, None] + off)[:, None, None, :]
    return image, torch.arange(c)[None, :, None, None], rows, cols


def _descriptors(level: Tensor, index: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    """``[M, C * k^2]`` neighbourhoods, normalised per channel by this set's own mean and
    standard deviation (as the reference: each set is normalised separately)."""
    i, c, y, x = (t.to(level.device) for t in index)
    desc = level[i, c, y, x]
    desc = desc - desc.mean(dim=(0, 2, 3), keepdim=True)
    desc = desc / desc.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    return desc.reshape(desc.shape[0], -1)


@dataclass(frozen=True)
class SWDResult:
    """Sliced Wasserstein distances per pyramid level (finest first) and their mean, in
    units of ``1e-3`` (multiplied by 1000, as Progressive GAN reports them)."""

    levels: tuple[float, ...]
    mean: float


def swd(
    real: Tensor,
    fake: Tensor,
    *,
    nhood_size: int = 7,
    nhoods_per_image: int = 128,
    directions: int = 128,
    repeats: int = 4,
    min_resolution: int = 16,
    seed: int = 0,
) -> SWDResult:
    """Progressive GAN's multi-scale sliced Wasserstein distance between image sets.

    Per level of the Laplacian pyramid (sides ``H, H/2, ...`` down to ``min_resolution``,
    at least the finest level), ``nhoods_per_image`` random ``nhood_size`` x ``nhood_size``
    neighbourhoods per image become descriptors, normalised per channel within each set;
    the level's distance is :func:`sliced_wasserstein` between real and fake descriptors
    (``repeats`` x ``directions`` random directions), times 1000. Both sets use the same
    random neighbourhood positions (common random numbers: identical sets give exactly 0;
    Progressive GAN draws them independently per set). Defaults are the paper's
    (7x7, 128, 4 x 128, 16). Memory: ``N * nhoods_per_image * C * nhood_size^2`` floats per
    set and level.

    Args:
        real: images ``[N, C, H, W]`` (any fixed affine scaling: each set is normalised).
        fake: images of the same shape as ``real``.
        nhood_size: the odd side of a neighbourhood; images must be at least this large.
        nhoods_per_image: descriptors drawn per image and level.
        directions: random directions per repeat.
        repeats: batches of directions averaged.
        min_resolution: coarsest pyramid side kept.
        seed: seeds the neighbourhood positions and the directions.
    """
    for x, name in ((real, "real"), (fake, "fake")):
        check_batch(x, name)
        if x.ndim != 4:
            raise ValueError(f"{name} must be images [N, C, H, W], got shape {list(x.shape)}")
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape (equally many images of one size), got "
            f"{list(real.shape)} and {list(fake.shape)}"
        )
    check_int(nhood_size, "nhood_size", 1)
    if nhood_size % 2 == 0:
        raise ValueError(f"nhood_size must be odd (a centred neighbourhood), got {nhood_size}")
    check_int(nhoods_per_image, "nhoods_per_image", 1)
    check_int(directions, "directions", 1)
    check_int(repeats, "repeats", 1)
    check_int(min_resolution, "min_resolution", 1)
    check_int(seed, "seed", 0)
    side = min(real.shape[2:])
    if side < nhood_size:
        raise ValueError(
            f"images of {real.shape[2]}x{real.shape[3]} pixels are smaller than the "
            f"{nhood_size}x{nhood_size} neighbourhoods; pass a smaller nhood_size"
        )
    levels = 1
    # mirrored 5x5 filtering needs levels of at least 3 pixels
    while side // 2**levels >= max(min_resolution, nhood_size, 3):
        levels += 1
    gen = torch.Generator().manual_seed(seed)
    # half precision would round the normalised descriptors and their projections
    r = upcast(real.detach())
    f = upcast(fake.detach()).to(r.dtype)
    dists = []
    for level_real, level_fake in zip(
        laplacian_pyramid(r, levels),
        laplacian_pyramid(f, levels),
        strict=True,
    ):
        index = _nhood_index(level_real.shape, nhood_size, nhoods_per_image, gen)
        d_real, d_fake = _descriptors(level_real, index), _descriptors(level_fake, index)
        sw = sliced_wasserstein(
            d_real, d_fake, directions=directions, repeats=repeats, generator=gen
        )
        dists.append(1e3 * sw)
    return SWDResult(levels=tuple(dists), mean=sum(dists) / len(dists))
