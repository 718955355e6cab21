"""Sample-quality metrics of the reference trainer.

- :func:`wasserstein1`: the exact Wasserstein-1 distance between two equal-size empirical
  measures in ``R^d`` (toy data), an assignment problem.
- :func:`sliced_wasserstein` and :func:`swd`: the sliced Wasserstein distance, and its
  multi-scale image version over a Laplacian pyramid (Karras et al. 2018, Progressive GAN);
  needs no network weights.
- :func:`frechet_distance`, :func:`fid_from_features`, :func:`kid`, :func:`inception_score`:
  FID, KID and IS from features / logits that any network produced.
- :func:`inception_metrics`: IS, FID and KID of images through torch-fidelity's Inception-v3,
  only from weights the user has on disk; :func:`inception_unavailable` says why not otherwise.

Everything returns Python floats, computed in float64 (the SWD in the images' dtype, float32
at least, on their device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lipreg._validation import check_batch, upcast
from lipreg.train.data import _check_int, _to_uint8

# ---------------------------------------------------------------------------------------
# input checks


def _check_points(x: object, name: str) -> Tensor:
    """``x`` as a finite float tensor ``[N, D]``."""
    x = check_batch(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a matrix [N, D] of N samples (features, points), got shape "
            f"{list(x.shape)}; flatten samples with {name}.flatten(1)"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_pair(
    x: object, y: object, names: tuple[str, str], same_n: bool
) -> tuple[Tensor, Tensor]:
    a, b = _check_points(x, names[0]), _check_points(y, names[1])
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension, got {a.shape[1]} and "
            f"{b.shape[1]}"
        )
    if same_n and a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must hold equally many samples (equal-size empirical "
            f"measures), got {a.shape[0]} and {b.shape[0]}; draw as many of each"
        )
    return a, b


def _float64(x: Tensor) -> np.ndarray[Any, np.dtype[np.float64]]:
    return x.detach().to("cpu", torch.float64).numpy()


# ---------------------------------------------------------------------------------------
# Wasserstein distances


def wasserstein1(x: Tensor, y: Tensor) -> float:
    """Exact ``W_1`` between the empirical measures of ``x`` and ``y`` (``[N, D]`` each).

    With equally many atoms of equal mass an optimal plan is a permutation (Birkhoff), so

        W_1 = min over permutations pi of (1/N) sum_i ||x_i - y_pi(i)||_2,

    solved exactly by ``scipy.optimize.linear_sum_assignment`` on the Euclidean cost matrix
    (``O(N^3)``: about a second for ``N = 2000``).
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    a, b = _check_pair(x, y, ("x", "y"), same_n=True)
    cost = cdist(_float64(a), _float64(b), metric="euclidean")
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
    a, b = _check_pair(a, b, ("a", "b"), same_n=True)
    _check_int(directions, "directions", 1)
    _check_int(repeats, "repeats", 1)
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
    _check_int(nhood_size, "nhood_size", 1)
    if nhood_size % 2 == 0:
        raise ValueError(f"nhood_size must be odd (a centred neighbourhood), got {nhood_size}")
    _check_int(nhoods_per_image, "nhoods_per_image", 1)
    _check_int(directions, "directions", 1)
    _check_int(repeats, "repeats", 1)
    _check_int(min_resolution, "min_resolution", 1)
    _check_int(seed, "seed", 0)
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


# ---------------------------------------------------------------------------------------
# FID, KID, IS from features


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet (2-Wasserstein squared) distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``:

        ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}).

    ``Tr (sigma1 sigma2)^{1/2}`` is computed stably as the sum of the square roots of the
    eigenvalues of the symmetric ``sigma1^{1/2} sigma2 sigma1^{1/2}`` (similar to
    ``sigma1 sigma2``), with round-off negatives clipped to zero; float64 throughout.
    """
    m1, m2 = _float64(mu1), _float64(mu2)
    s1, s2 = _float64(sigma1), _float64(sigma2)
    d = m1.shape[0] if m1.ndim == 1 else -1
    for s, name in ((m1, "mu1"), (m2, "mu2")):
        if s.shape != (d,):
            raise ValueError(
                f"mu1 and mu2 must be vectors [D] of one size, got {name} {list(s.shape)}"
            )
    for s, name in ((s1, "sigma1"), (s2, "sigma2")):
        if s.shape != (d, d):
            raise ValueError(f"{name} must be a covariance [{d}, {d}], got {list(s.shape)}")
        if not np.allclose(s, s.T, rtol=1e-6, atol=1e-8 * max(1.0, np.abs(s).max())):
            raise ValueError(f"{name} must be symmetric (a covariance matrix)")
    vals, vecs = np.linalg.eigh(s1)
    root1 = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    inner = root1 @ s2 @ root1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def fid_from_features(real: Tensor, fake: Tensor) -> float:
    """FID between feature sets ``[N1, D]`` and ``[N2, D]``: :func:`frechet_distance` of
    their means and unbiased covariances (``N - 1`` in the denominator, as ``np.cov``)."""
    a, b = _check_pair(real, fake, ("real", "fake"), same_n=False)
    for x, name in ((a, "real"), (b, "fake")):
        if x.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples for a covariance, got {x.shape[0]}")
    stats = [
        (x.double().mean(0), torch.cov(x.double().T).reshape(x.shape[1], x.shape[1]))
        for x in (a, b)
    ]
    return frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1])


def kid(
    real: Tensor,
    fake: Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): mean and standard deviation over
    ``subsets`` random subsets (``subset_size`` of each set, without replacement) of the
    unbiased MMD^2 with the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3``:

        MMD^2_u = sum_{i != j} k(x_i, x_j) / (m(m-1)) + sum_{i != j} k(y_i, y_j) / (m(m-1))
                  - 2 sum_{i, j} k(x_i, y_j) / m^2.

    Subsets are drawn with ``numpy.random.RandomState(seed).choice`` as torch-fidelity does;
    the standard deviation is the population one (``np.std``).
    """
    a, b = _check_pair(real, fake, ("real", "fake"), same_n=False)
    _check_int(subsets, "subsets", 1)
    _check_int(subset_size, "subset_size", 2)
    _check_int(seed, "seed", 0)
    if subset_size > min(a.shape[0], b.shape[0]):
        raise ValueError(
            f"subset_size={subset_size} exceeds the samples available (real {a.shape[0]}, "
            f"fake {b.shape[0]}); pass subset_size <= {min(a.shape[0], b.shape[0])}"
        )
    x_all, y_all = _float64(a), _float64(b)
    d = x_all.shape[1]
    rng = np.random.RandomState(seed)
    m = subset_size
    values = []
    for _ in range(subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2 * k_xy.sum() / m**2)
    return float(np.mean(values)), float(np.std(values))


def inception_score(
    logits: Tensor | None = None,
    *,
    probs: Tensor | None = None,
    splits: int = 10,
) -> tuple[float, float]:
    """Inception Score from class ``logits`` or ``probs`` ``[N, K]``: mean and (population)
    standard deviation over ``splits`` consecutive chunks of

        IS = exp( E_x KL(p(y|x) || p(y)) ),   p(y) = the chunk's mean of p(y|x),

    as Salimans et al. (2016) and torch-fidelity (without its shuffle). Pass exactly one of
    ``logits`` (softmax is applied) or ``probs`` (rows summing to 1).
    """
    if (logits is None) == (probs is None):
        raise TypeError("pass exactly one of logits=[N, K] or probs=[N, K]")
    if logits is not None:
        x = _check_points(logits, "logits").double()
        log_p = x.log_softmax(dim=1)
    else:
        p = _check_points(probs, "probs").double()
        if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones_like(p[:, 0]), atol=1e-6):
            raise ValueError("probs must be non-negative rows summing to 1; pass logits= instead")
        log_p = p.log()
    _check_int(splits, "splits", 1)
    n = log_p.shape[0]
    if splits > n:
        raise ValueError(f"splits={splits} exceeds the {n} samples; pass splits <= {n}")
    scores = []
    for i in range(splits):
        chunk = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = chunk.exp().mean(dim=0).log()
        # 0 log 0 = 0: classes of zero probability contribute nothing
        kl = torch.where(chunk > -math.inf, chunk.exp() * (chunk - log_marginal), 0.0).sum(1)
        scores.append(math.exp(kl.mean().item()))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------------------
# Inception-v3 through torch-fidelity, from local weights only


def inception_unavailable(weights: str | Path | None) -> str | None:
    """``None`` if :func:`inception_metrics` can run with ``weights``, otherwise a one-line
    explanation of why IS/FID/KID are skipped."""
    if weights is None:
        return (
            "IS/FID/KID skipped: no Inception weights given (pass --inception-weights PATH, "
            "e.g. torch-fidelity's weights-inception-2015-12-05-6726825d.pth; nothing is "
            "downloaded)"
        )
    if not Path(weights).is_file():
        return f"IS/FID/KID skipped: the Inception weights file {weights} does not exist"
    try:
        import torch_fidelity  # noqa: F401
    except Exception as err:  # not installed, or broken beside this torch (torchvision)
        return (
            f"IS/FID/KID skipped: torch-fidelity cannot be imported ({type(err).__name__}: {err})"
        )
    return None


def _to_uint8_rgb(images: Tensor) -> Tensor:
    """``[N, 3, H, W]`` uint8 from images in ``[-1, 1]`` (grey images repeated to RGB)."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return _to_uint8(images.detach().float())


def inception_metrics(
    real: Tensor,
    fake: Tensor,
    weights: str | Path,
    *,
    batch_size: int = 100,
    splits: int = 10,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """IS of ``fake``, FID and KID between ``real`` and ``fake`` (images ``[N, C, H, W]`` in
    ``[-1, 1]``, ``C`` = 1 or 3) with torch-fidelity's Inception-v3 loaded from ``weights``.

    The network gives 2048-d pool features (FID, KID) and the 1008 ``logits_unbiased``
    (IS), torch-fidelity's defaults; the numbers come from :func:`fid_from_features`,
    :func:`kid` (``kid_subset_size`` clipped to the smaller set) and :func:`inception_score`.
    Raises ``RuntimeError`` with :func:`inception_unavailable`'s reason when it cannot run.

    Returns:
        ``{"metric/is", "metric/is_std", "metric/fid", "metric/kid", "metric/kid_std"}``.
    """
    for x, name in ((real, "real"), (fake, "fake")):
        check_batch(x, name)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{name} must be images [N, 1 or 3, H, W], got {list(x.shape)}")
    _check_int(batch_size, "batch_size", 1)
    reason = inception_unavailable(weights)
    if reason is not None:
        raise RuntimeError(reason)
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048", "logits_unbiased"],
        feature_extractor_weights_path=str(weights),
    ).to(device)

    def features(images: Tensor) -> tuple[Tensor, Tensor]:
        pool, logits = [], []
        with torch.no_grad():
            for batch in torch.split(_to_uint8_rgb(images), batch_size):
                f, lg = net(batch.to(device))
                pool.append(f.cpu())
                logits.append(lg.cpu())
        return torch.cat(pool), torch.cat(logits)

    real_pool, _ = features(real)
    fake_pool, fake_logits = features(fake)
    is_mean, is_std = inception_score(fake_logits, splits=splits)
    size = min(kid_subset_size, real_pool.shape[0], fake_pool.shape[0])
    kid_mean, kid_std = kid(real_pool, fake_pool, subsets=kid_subsets, subset_size=size, seed=seed)
    return {
        "metric/is": is_mean,
        "metric/is_std": is_std,
        "metric/fid": fid_from_features(real_pool, fake_pool),
        "metric/kid": kid_mean,
        "metric/kid_std": kid_std,
    }
