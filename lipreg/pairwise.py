"""Distances ``||x_i - y_j||_B`` between all pairs of two batches, in any lipreg norm."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lipreg._validation import check_pair, described, upcast
from lipreg.norms import Norm, parse_norm


def pairwise_distances(x: Tensor, y: Tensor, norm: Norm | str) -> Tensor:
    """``d[i, j] = ||x_i - y_j||_B``: ``[B, ...]`` and ``[M, ...]`` to ``[B, M]``.

    For norms that are an ``l^p`` norm of a linear map, ``||x||_B = ||T x||_p``
    (:meth:`lipreg.Norm.lp_embedding`: ``L^p``, Sobolev), every sample is transformed once and
    ``torch.cdist`` computes all ``B M`` distances, after dividing both embeddings by their
    largest ``|entry|`` (detached; the distance is positively homogeneous) so that large ``p``
    neither under- nor overflows. Other norms take ``M`` batched calls ``norm(x - y_j)``.
    Differentiable in ``x`` and ``y``. Local norms (a metric that depends on a base point)
    define no distance between points and are rejected.
    """
    norm = parse_norm(norm)
    check_pair(x, y, "x", "y")
    if norm.local:
        raise ValueError(
            f"{norm!r} is a local norm (it measures tangent vectors at a base point) and defines "
            "no distance ||x - y||_B between two points; use a global norm such as L2(), Lp(p) or "
            "Sobolev(s)"
        )
    embedded = _embedding(norm, x)
    if embedded is None:
        return torch.stack([norm.norm(x - y[j : j + 1]) for j in range(y.shape[0])], dim=1)
    ex, p = embedded
    embedded_y = _embedding(norm, y)
    assert embedded_y is not None  # same norm, same layout
    ey = embedded_y[0]
    m = torch.maximum(ex.abs().amax(), ey.abs().amax()).detach()
    m = torch.where(m > 0, m, torch.ones_like(m))
    # The matrix-product shortcut for p = 2 loses the small distances to cancellation.
    d = torch.cdist(ex / m, ey / m, p=p, compute_mode="donot_use_mm_for_euclid_dist")
    return d * m


def _embedding(norm: Norm, x: Tensor) -> tuple[Tensor, float] | None:
    """``norm.lp_embedding(x)`` if it is ``None`` or ``(T x [B, N], p)``: a tensor of ``B``
    rows on ``x``'s device in its dtype (float32 at least) and an exponent ``1 <= p <= inf``."""
    out = norm.lp_embedding(x)
    if out is None:
        return None
    who = f"{type(norm).__name__}.lp_embedding"
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"{who} must return None or a tuple (T x, p), got {described(out)}")
    ex, p = out
    if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 1 <= p <= math.inf):
        raise ValueError(f"{who} must return an exponent 1 <= p <= inf, got p={p!r}")
    wanted = (
        f"a {str(upcast(x).dtype).removeprefix('torch.')} tensor [{x.shape[0]}, N] on {x.device}"
    )
    if not (
        isinstance(ex, Tensor)
        and ex.ndim == 2
        and ex.shape[0] == x.shape[0]
        and (ex.dtype, ex.device) == (upcast(x).dtype, x.device)
    ):
        raise ValueError(f"{who} must return T x as {wanted}, got {described(ex)}")
    return ex, float(p)
