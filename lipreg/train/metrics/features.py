"""FID, KID and IS from features or logits that any network produced (Heusel et al. 2017;
Bińkowski et al. 2018; Salimans et al. 2016)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lipreg.train.data.base import check_int
from lipreg.train.metrics.checks import check_pair, check_points, float64


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet (2-Wasserstein squared) distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``:

        ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}).

    ``Tr (sigma1 sigma2)^{1/2}`` is computed stably as the sum of the square roots of the
    eigenvalues of the symmetric ``sigma1^{1/2} sigma2 sigma1^{1/2}`` (similar to
    ``sigma1 sigma2``), with round-off negatives clipped to zero; float64 throughout.
    """
    m1, m2 = float64(mu1), float64(mu2)
    s1, s2 = float64(sigma1), float64(sigma2)
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
    a, b = check_pair(real, fake, ("real", "fake"), same_n=False)
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
    a, b = check_pair(real, fake, ("real", "fake"), same_n=False)
    check_int(subsets, "subsets", 1)
    check_int(subset_size, "subset_size", 2)
    check_int(seed, "seed", 0)
    if subset_size > min(a.shape[0], b.shape[0]):
        raise ValueError(
            f"subset_size={subset_size} exceeds the samples available (real {a.shape[0]}, "
            f"fake {b.shape[0]}); pass subset_size <= {min(a.shape[0], b.shape[0])}"
        )
    x_all, y_all = float64(a), float64(b)
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
        x = check_points(logits, "logits").double()
        log_p = x.log_softmax(dim=1)
    else:
        p = check_points(probs, "probs").double()
        if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones_like(p[:, 0]), atol=1e-6):
            raise ValueError("probs must be non-negative rows summing to 1; pass logits= instead")
        log_p = p.log()
    check_int(splits, "splits", 1)
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
