"""docs/img/dual_gradients.png: what each norm's dual does to an image.

Top row: the dual-filtered image ``T_{-s} x`` of ``W^{s,2}`` for several s, whose l^2 norm
is ``||x||_{W^{-s,2}}``: the quantity ``dual(g)`` takes of a critic's input gradient ``g``,
and ``gamma="auto"`` of real images. Bottom row: for ``L^p``, the unit perturbation ``h``
attaining ``sup <g, h> / ||h||_p = ||g||_q`` (Hoelder's equality case), i.e. the direction
in which a critic with input gradient ``g`` rises fastest measured in ``L^p``:
``h ~ sign(g) |g|^(q - 1)`` (one pixel for ``p = 1``, ``sign(g)`` for ``p = inf``); last,
the same for the Wasserstein-2 metric at the image itself, ``h ~ M g`` with ``M`` the graph
Laplacian weighted by the image's density (``lipreg.norms.Wasserstein2.metric``). The
image ``x`` (used as ``g``) is scikit-learn's bundled photograph at 64 x 64.

    python docs/scripts/dual_gradients.py [--out docs/img]
"""

from __future__ import annotations

import math

import torch
from _common import parse_out, photograph  # first: selects matplotlib's Agg backend
from matplotlib import pyplot as plt

from lipreg import Lp, Sobolev
from lipreg.norms import Wasserstein2

S_VALUES = (-2.0, -1.0, 0.0, 1.0, 2.0)
P_VALUES = (1.0, 2.0, 10.0, math.inf)


def holder_maximiser(g: torch.Tensor, p: float) -> torch.Tensor:
    """A unit-``L^p`` ``h`` with ``<g, h> = ||g||_q``."""
    if p == 1:  # q = inf: all mass on one largest |g_i|
        flat = torch.zeros_like(g).flatten()
        i = int(g.abs().flatten().argmax())
        flat[i] = g.flatten()[i].sign()
        return flat.view_as(g)
    h = g.sign() if math.isinf(p) else g.sign() * g.abs().pow(Lp(p).q - 1)
    return h / Lp(p).norm(h).view(-1, 1, 1, 1)


def tex(v: float) -> str:
    """``v`` for a TeX label: ``\\infty``, no ``-0``, three significant digits."""
    return r"\infty" if math.isinf(v) else f"{v + 0.0:.3g}"


def main() -> None:
    out = parse_out(__doc__ or "")
    g = photograph(64)
    cols = max(len(S_VALUES), len(P_VALUES) + 2)
    fig, axes = plt.subplots(2, cols, figsize=(2.3 * cols, 5.2), constrained_layout=True)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, s in zip(axes[0], S_VALUES, strict=False):
        norm = Sobolev(s=s)
        filtered = norm.filter(g, -s)[0, 0]
        assert torch.allclose(filtered.norm(), norm.dual(g)[0])  # what dual(g) measures
        lim = float(filtered.abs().max())
        ax.imshow(filtered, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(
            f"$s = {tex(s)}$: $T_{{{tex(-s)}}}\\,x$\n"
            f"$\\|x\\|_{{W^{{{tex(-s)},2}}}} = {float(norm.dual(g)[0]):.3g}$",
            fontsize=9,
        )
    axes[1, 0].imshow(g[0, 0], cmap="gray")
    axes[1, 0].set_title("the image $x$ (used as $g$)", fontsize=9)
    for ax, p in zip(axes[1, 1:], P_VALUES, strict=False):
        h = holder_maximiser(g, p)
        assert torch.allclose((g * h).sum(), Lp(p).dual(g)[0])  # Hoelder's equality case
        lim = float(h.abs().max())
        ax.imshow(h[0, 0], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(
            f"steepest unit $h$ in $L^{{{tex(p)}}}$\n"
            f"$\\langle g, h\\rangle = \\|g\\|_{{{tex(Lp(p).q)}}} = {float(Lp(p).dual(g)[0]):.3g}$",
            fontsize=9,
        )
    w2 = Wasserstein2()
    h = w2.metric(g, at=g)
    dual = w2.dual(g, at=g)
    h = h / dual.view(-1, 1, 1, 1)
    assert torch.allclose((g * h).sum(), dual[0])  # attained at h = M g
    lim = float(h.abs().max())
    axes[1, -1].imshow(h[0, 0], cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[1, -1].set_title(
        f"steepest unit $h$, $W_2$ metric at $x$\n"
        f"$\\langle g, h\\rangle = \\|g\\|_{{x*}} = {float(dual[0]):.3g}$",
        fontsize=9,
    )
    fig.suptitle(
        r"Top: dual-filtered image of $W^{s,2}$ (its $\ell^2$ norm is the dual norm). "
        r"Bottom: the direction of fastest ascent in $L^p$ and $W_2$ for a gradient $g$.",
        fontsize=10,
    )
    fig.savefig(out / "dual_gradients.png", dpi=110)


if __name__ == "__main__":
    main()
