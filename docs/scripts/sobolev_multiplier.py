"""docs/img/sobolev_multiplier.png: the Fourier multiplier (1 + c|xi|^2)^(s/2) of W^{s,2}.

Drawn from ``lipreg.norms.sobolev_multiplier`` itself (the grid the norms use), for a
32-pixel axis and several s, and as a 2-D map on the 32 x 32 grid for the dual of the
paper's W^{-3/2,2} (exponent +3/2).

    python docs/scripts/sobolev_multiplier.py [--out docs/img]
"""

from __future__ import annotations

import torch
from _common import parse_out  # first: selects matplotlib's Agg backend
from matplotlib import pyplot as plt

from lipreg.norms import sobolev_multiplier

N, C = 32, 5.0
S_VALUES = (-2.0, -1.5, -1.0, 0.0, 1.0, 2.0)


def main() -> None:
    out = parse_out(__doc__ or "")
    cpu, f64 = torch.device("cpu"), torch.float64
    xi = torch.arange(N // 2 + 1, dtype=f64) / (N // 2)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for s in S_VALUES:
        m = sobolev_multiplier((N,), s, C, cpu, f64)
        ax.semilogy(xi, m, marker=".", label=f"s = {s:g}")
    ax.set_xlabel(r"$\xi_k = \min(k, N - k) / (N/2)$ along one axis ($N = 32$)")
    ax.set_ylabel(r"$(1 + c\,\xi^2)^{s/2}$, $c = 5$")
    ax.set_title(r"Multiplier of $W^{s,2}$: $s > 0$ weights high frequencies")
    ax.legend(ncol=2, fontsize=8)
    ax.grid(True, which="both", alpha=0.3)

    # rfft grid [N, N // 2 + 1] mirrored to the full grid, zero frequency in the centre.
    half = sobolev_multiplier((N, N), 1.5, C, cpu, f64)
    full = torch.cat([half, half[:, 1 : N // 2].flip(1)], dim=1)
    full = torch.fft.fftshift(full)
    ticks = torch.arange(-(N // 2), N // 2) / (N // 2)
    image = ax2.imshow(
        full, origin="lower", extent=(ticks[0], ticks[-1], ticks[0], ticks[-1]), cmap="viridis"
    )
    fig.colorbar(image, ax=ax2)
    ax2.set_xlabel(r"$\xi_x$")
    ax2.set_ylabel(r"$\xi_y$")
    ax2.set_title(r"Dual of $W^{-3/2,2}$: multiplier $(1 + c|\xi|^2)^{3/4}$ on 32 x 32")
    fig.savefig(out / "sobolev_multiplier.png", dpi=110)


if __name__ == "__main__":
    main()
