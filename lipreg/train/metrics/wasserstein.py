"""Wasserstein distances between samples: exact ``W_1`` for toy points, and the sliced
Wasserstein distance over a Laplacian pyramid for images (Karras et al. 2018, Progressive
GAN), which needs no network weights.

The image distance is computed in blocks of at most :data:`BLOCK` numbers (descriptors of
some neighbourhoods, or the projections of all of them on some directions), so that its
memory beside the images and their pyramids does not grow with the number of images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lipreg._validation import check_batch, upcast
from lipreg.train.data.base import check_int
from lipreg.train.metrics.checks import check_pair, float64

#: The most numbers one block of :func:`swd` holds: the projections of one set's
#: descriptors on some directions (2**25 float32: 128 MiB; two such blocks are held, and
#: descriptors are cut in blocks of a sixteenth of it). Every block of directions takes one
#: pass over the descriptors, so a smaller block costs time: at 10,000 images a pass gives
#: 26 directions, 20 passes for each set and level.
BLOCK = 2**25


def _sorted_rows(x: Tensor) -> Tensor:
    """``x`` ``[R, M]`` with each row sorted: NumPy's vectorised sort in place on the CPU (an
    order of magnitude faster than torch's there), torch's elsewhere."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        x.numpy().sort(axis=1)
        return x
    return x.sort(dim=1).values


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
        proj_a = _sorted_rows((theta.T @ a.T).contiguous())
        proj_b = _sorted_rows((theta.T @ b.to(a.dtype).T).contiguous())
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
    ``images`` is recovered exactly by adding the levels back from the coarsest. Computed for
    a few images at a time: the blur's convolution needs a buffer of 25 numbers per pixel.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape [N, C, H, W], got {list(images.shape)}")
    if levels == 1:
        return [images]
    step = max(1, BLOCK // 16 // (25 * images[0].numel()))
    out: list[Tensor] = []
    for first in range(0, images.shape[0], step):
        part = _pyramid(images[first : first + step], levels)
        if not out:
            out = [level.new_empty(images.shape[0], *level.shape[1:]) for level in part]
        for level, values in zip(out, part, strict=True):
            level[first : first + step] = values
    return out


def _pyramid(images: Tensor, levels: int) -> list[Tensor]:
    pyramid = [images]
    for _ in range(levels - 1):
        pyramid.append(_pyr_down(pyramid[-1]))
        finer = pyramid[-2]
        pyramid[-2] = finer - _pyr_up(pyramid[-1], (finer.shape[2], finer.shape[3]))
    return pyramid


def _nhood_centres(
    shape: torch.Size, nhood_size: int, per_image: int, gen: torch.Generator
) -> Tensor:
    """``[N * per_image, 2]`` (row, column) centres of neighbourhoods drawn uniformly where the
    whole ``nhood_size`` x ``nhood_size`` neighbourhood lies inside a level of shape
    ``[N, C, H, W]``; neighbourhood ``m`` belongs to image ``m // per_image``. The rows are
    drawn first, then the columns, each with one ``torch.randint`` from ``gen``."""
    n, _, h, w = shape
    r = nhood_size // 2
    m = n * per_image
    rows = torch.randint(r, h - r, (m,), generator=gen)
    cols = torch.randint(r, w - r, (m,), generator=gen)
    return torch.stack([rows, cols], dim=1)


def _crop_offsets(
    centres: Tensor, per_image: int, shape: torch.Size, nhood_size: int
) -> tuple[Tensor, Tensor]:
    """Where the ``k`` x ``k`` neighbourhoods at ``centres`` ``[M, 2]`` lie in a flattened
    level of ``shape`` ``[N, C, H, W]``: the position of each one's first number ``[M]`` and
    the offsets of all its numbers from there ``[C * k^2]``, in the order of
    ``level[image, :, rows, cols].flatten()``."""
    _, c, h, w = shape
    r = nhood_size // 2
    image = torch.arange(centres.shape[0]) // per_image
    corners = image * (c * h * w) + (centres[:, 0] - r) * w + (centres[:, 1] - r)
    k = torch.arange(nhood_size)
    pattern = torch.arange(c)[:, None, None] * (h * w) + k[:, None] * w + k
    return corners, pattern.reshape(-1)


class _Descriptors:
    """The neighbourhood descriptors ``[M, C * k^2]`` of one pyramid level, normalised per
    channel by this set's own mean and standard deviation (as the reference: each set is
    normalised separately; a channel without variation is left at zero), cut in blocks of
    a sixteenth of :data:`BLOCK` numbers, never all at once."""

    def __init__(self, level: Tensor, centres: Tensor, nhood_size: int, per_image: int) -> None:
        self.flat = level.contiguous().view(-1)
        corners, pattern = _crop_offsets(centres, per_image, level.shape, nhood_size)
        self.corners, self.pattern = corners.to(level.device), pattern.to(level.device)
        self.count, self.dim = centres.shape[0], pattern.numel()
        channels = level.shape[1]
        # one pass for the moments per channel, in float64 (millions of terms)
        total = torch.zeros(channels, dtype=torch.float64, device=level.device)
        squares = torch.zeros_like(total)
        for _, raw in self.raw():
            per_channel = raw.view(raw.shape[0], channels, -1).double()
            total += per_channel.sum(dim=(0, 2))
            squares += per_channel.square().sum(dim=(0, 2))
        n = self.count * nhood_size**2
        mean = total / n
        std = (squares / n - mean.square()).clamp_min(0).sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))
        self.mean = mean.to(level.dtype).repeat_interleave(nhood_size**2)
        self.std = std.to(level.dtype).repeat_interleave(nhood_size**2)

    def raw(self) -> Iterator[tuple[int, Tensor]]:
        """``(first, descriptors [B, C * k^2])`` of consecutive blocks, not normalised."""
        step = max(1, BLOCK // 16 // self.dim)
        for first in range(0, self.count, step):
            offsets = self.corners[first : first + step, None] + self.pattern
            yield first, self.flat.index_select(0, offsets.view(-1)).view(-1, self.dim)

    def projections(self, theta: Tensor) -> Tensor:
        """The descriptors projected on the directions ``theta`` ``[C * k^2, D]``, each
        direction's values sorted: ``[D, M]``. The normalisation is folded into the
        directions: ``((x - mean) / std) theta = x (theta / std) - (mean / std) theta``."""
        scaled = theta / self.std[:, None]  # scaled.T @ raw.T fills rows of out contiguously
        out = self.flat.new_empty(theta.shape[1], self.count)
        for first, raw in self.raw():
            out[:, first : first + raw.shape[0]] = scaled.T @ raw.T
        out -= ((self.mean / self.std) @ theta)[:, None]
        return _sorted_rows(out)


def _sliced_descriptors(
    a: _Descriptors, b: _Descriptors, directions: int, repeats: int, gen: torch.Generator
) -> float:
    """:func:`sliced_wasserstein` between the descriptors of ``a`` and ``b`` (the same
    random directions), projected on a block of directions at a time."""
    step = max(1, min(directions, BLOCK // a.count))
    results = []
    for _ in range(repeats):
        theta = torch.randn(a.dim, directions, generator=gen, dtype=torch.float64)
        theta = (theta / theta.norm(dim=0, keepdim=True)).to(a.flat.device, a.flat.dtype)
        total = torch.zeros((), dtype=torch.float64, device=a.flat.device)
        for j in range(0, directions, step):
            block = theta[:, j : j + step]
            diff = a.projections(block).sub_(b.projections(block))
            # per direction in the projections' dtype (a float64 sum would copy the block)
            total += diff.abs_().sum(dim=1).double().sum()
        results.append(total / (a.count * directions))
    return float(torch.stack(results).mean())


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
    (7x7, 128, 4 x 128, 16). Memory: the images and their pyramids, plus blocks of at most
    :data:`BLOCK` numbers (the ``N * nhoods_per_image * C * nhood_size^2`` descriptors per
    set and level are cut again for each block of directions, never held at once).

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
    for x, name in ((real, "real"), (fake, "fake")):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
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
        centres = _nhood_centres(level_real.shape, nhood_size, nhoods_per_image, gen)
        d_real, d_fake = (
            _Descriptors(level, centres, nhood_size, nhoods_per_image)
            for level in (level_real, level_fake)
        )
        dists.append(1e3 * _sliced_descriptors(d_real, d_fake, directions, repeats, gen))
    return SWDResult(levels=tuple(dists), mean=sum(dists) / len(dists))
