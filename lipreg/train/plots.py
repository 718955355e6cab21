"""Pictures of the reference trainer, written as PNG files.

- :func:`plot_critic_surface`: a toy critic's value surface on a 2-D grid, with real and
  generated points; :func:`plot_norm_comparison`: several of them side by side on a shared
  grid (one panel per norm).
- :func:`image_grid` / :func:`save_image_grid`: a grid of image samples (no torchvision).
- :func:`plot_scalars`: curves of the scalars a run logged to JSONL, grouped into files.

matplotlib is imported inside the functions (``import lipreg.train.data`` stays light) and
only through ``matplotlib.figure.Figure``, whose Agg canvas writes the file: no pyplot, no
global backend switch, safe beside a user's interactive session.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from lipreg.derivative import call_critic, running_stats_frozen
from lipreg.train.data.base import to_uint8

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Critic = Callable[[Tensor], Tensor]
"""A critic ``[B, 2] -> [B]`` or ``[B, 1]`` (any callable; ``nn.Module`` s included)."""

Panel = tuple[str, Critic, Tensor, Tensor]
"""``(title, critic, real [N, 2], fake [M, 2])`` of :func:`plot_norm_comparison`."""

# Colours of WGAN-GP's toy plots: real orange, generated green.
_REAL, _FAKE = "tab:orange", "tab:green"
_MAX_POINTS = 1000  # points drawn per set; more only hide the surface


def _png(path: str | Path, name: str = "path") -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"{name} must name a .png file, got {str(path)!r}")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _points(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be 2-D points, a tensor [N, 2] with N >= 1, got {shape}")
    return x.detach().float().cpu()


def _extent(sets: Sequence[Tensor], margin: float = 0.1) -> tuple[float, float, float, float]:
    """A square ``(x0, x1, y0, y1)`` around the finite points of ``sets`` plus ``margin``."""
    pts = torch.cat(list(sets))
    pts = pts[torch.isfinite(pts).all(1)]
    if pts.numel() == 0:
        return (-1.0, 1.0, -1.0, 1.0)
    lo, hi = pts.min(0).values, pts.max(0).values
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2
    half = (half if half > 0 else 1.0) * (1 + margin)
    cx, cy = float(centre[0]), float(centre[1])
    return (cx - half, cx + half, cy - half, cy + half)


def _device_of(critic: Critic) -> tuple[torch.device, torch.dtype]:
    if isinstance(critic, nn.Module):
        for p in critic.parameters():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def critic_values(
    critic: Critic, extent: tuple[float, float, float, float], resolution: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The critic on a ``resolution`` x ``resolution`` grid over ``extent`` ``(x0, x1, y0, y1)``.

    Returns ``xs [R]``, ``ys [R]`` and ``values [R, R]`` (``values[i, j] = D(xs[j], ys[i])``)
    on the CPU. Evaluated without gradients and without touching batch-norm running
    statistics, on the device and in the dtype of the critic's parameters.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    x0, x1, y0, y1 = extent
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"extent must be (x0, x1, y0, y1) with x0 < x1 and y0 < y1, got {extent}")
    device, dtype = _device_of(critic)
    xs = torch.linspace(x0, x1, resolution, dtype=torch.float64)
    ys = torch.linspace(y0, y1, resolution, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(device, dtype)
    with torch.no_grad(), running_stats_frozen(critic):
        values = call_critic(critic, grid)
    return xs, ys, values.detach().double().cpu().reshape(resolution, resolution)


def _draw_surface(
    ax: Axes,
    fig: Figure,
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    extent: tuple[float, float, float, float],
    resolution: int,
    title: str | None,
) -> None:
    xs, ys, values = critic_values(critic, extent, resolution)
    filled = ax.contourf(xs.numpy(), ys.numpy(), values.numpy(), levels=20, cmap="viridis")
    ax.contour(xs.numpy(), ys.numpy(), values.numpy(), levels=10, colors="k", linewidths=0.3)
    fig.colorbar(filled, ax=ax, label="D(x)")
    for pts, colour, label in ((real, _REAL, "real"), (fake, _FAKE, "generated")):
        shown = pts[:_MAX_POINTS]
        ax.scatter(shown[:, 0], shown[:, 1], s=3, c=colour, label=label, alpha=0.7)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize="small", markerscale=3)
    if title:
        ax.set_title(title)


def plot_critic_surface(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    path: str | Path,
    *,
    title: str | None = None,
    resolution: int = 128,
    extent: tuple[float, float, float, float] | None = None,
) -> Path:
    """Write the critic's value surface with real and generated points to ``path`` (PNG).

    Args:
        critic: ``[B, 2] -> [B]`` or ``[B, 1]``.
        real: real points ``[N, 2]`` (at most 1000 drawn).
        fake: generated points ``[M, 2]`` (at most 1000 drawn).
        path: the ``.png`` file (parent folders are created).
        title: the plot's title.
        resolution: grid points per axis.
        extent: ``(x0, x1, y0, y1)``; default a square around all points plus 10%.

    Returns:
        ``path`` as a ``Path``.
    """
    from matplotlib.figure import Figure

    out = _png(path)
    r, f = _points(real, "real"), _points(fake, "fake")
    box = _extent([r, f]) if extent is None else extent
    fig = Figure(figsize=(6, 5), layout="constrained")
    _draw_surface(fig.add_subplot(), fig, critic, r, f, box, resolution, title)
    fig.savefig(out, dpi=100)
    return out


def plot_norm_comparison(
    panels: Sequence[Panel],
    path: str | Path,
    *,
    resolution: int = 96,
    columns: int | None = None,
    extent: tuple[float, float, float, float] | None = None,
) -> Path:
    """Write the value surfaces of several critics side by side on one grid (PNG).

    Args:
        panels: ``(title, critic, real [N, 2], fake [M, 2])`` per panel, e.g. one per norm
            trained on the same data.
        path: the ``.png`` file (parent folders are created).
        resolution: grid points per axis in each panel.
        columns: panels per row (default: all in one row up to 4).
        extent: ``(x0, x1, y0, y1)`` shared by all panels; default a square around all
            panels' points plus 10%, so that the panels compare.

    Returns:
        ``path`` as a ``Path``.
    """
    from matplotlib.figure import Figure

    out = _png(path)
    if not isinstance(panels, (list, tuple)) or not panels:
        raise ValueError("panels must be a non-empty list of (title, critic, real, fake)")
    checked = []
    for i, panel in enumerate(panels):
        if not isinstance(panel, tuple) or len(panel) != 4 or not callable(panel[1]):
            raise ValueError(f"panels[{i}] must be a tuple (title, critic, real, fake)")
        title, critic, real, fake = panel
        checked.append(
            (
                str(title),
                critic,
                _points(real, f"panels[{i}] real"),
                _points(fake, f"panels[{i}] fake"),
            )
        )
    ncols = min(len(checked), 4) if columns is None else columns
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"columns must be an integer >= 1, got {columns!r}")
    nrows = math.ceil(len(checked) / ncols)
    box = _extent([p for c in checked for p in c[2:]]) if extent is None else extent
    fig = Figure(figsize=(4.6 * ncols, 4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (title, critic, real, fake) in zip(axes.flat, checked, strict=False):
        _draw_surface(ax, fig, critic, real, fake, box, resolution, title)
    for ax in axes.flat[len(checked) :]:
        ax.set_axis_off()
    fig.savefig(out, dpi=100)
    return out


def image_grid(
    images: Tensor, *, nrow: int | None = None, padding: int = 2, pad_value: float = -1.0
) -> Tensor:
    """Tile images ``[N, C, H, W]`` in ``[-1, 1]`` (``C`` = 1 or 3) into one uint8 picture.

    ``nrow`` images per row (default ``ceil(sqrt(N))``), ``padding`` pixels of
    ``pad_value`` between and around them; values map to ``round((x + 1) * 127.5)``,
    clamped to ``0..255``.

    Returns:
        ``[rows (H + padding) + padding, nrow (W + padding) + padding, C]`` uint8 (HWC).
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor [N, C, H, W] with C = 1 or 3, got {shape}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("images must hold at least one image, got N = 0")
    x = images.detach().float().cpu()
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values (has training diverged?)")
    cols = math.ceil(math.sqrt(n)) if nrow is None else nrow
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise ValueError(f"nrow must be an integer >= 1, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    rows = math.ceil(n / cols)
    grid = torch.full(
        (c, rows * (h + padding) + padding, cols * (w + padding) + padding), float(pad_value)
    )
    for i in range(n):
        top = padding + (i // cols) * (h + padding)
        left = padding + (i % cols) * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    return to_uint8(grid).permute(1, 2, 0)


def save_image_grid(
    images: Tensor,
    path: str | Path,
    *,
    nrow: int | None = None,
    padding: int = 2,
    pad_value: float = -1.0,
    scale: int = 1,
) -> Path:
    """Write :func:`image_grid` of ``images`` ``[N, C, H, W]`` in ``[-1, 1]`` to ``path``
    (PNG, grey for ``C = 1``, RGB for ``C = 3``; parent folders are created), each pixel
    drawn as a ``scale`` x ``scale`` block (small images stay legible)."""
    from PIL import Image

    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    grid = image_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)
    out = _png(path)
    array = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1).numpy()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(out)
    return out


# Files of plot_scalars, in order: (file suffix, title, does this key belong here?).
SCALAR_GROUPS: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    (
        "losses",
        "losses",
        lambda k: k.startswith("loss/") or k in ("wasserstein", "critic_gap", "penalty", "drift"),
    ),
    (
        "dual_norm",
        "dual gradient norm ||dD(x_hat)||_{B*}",
        lambda k: k.startswith("dual_norm") or k == "frac_above_gamma",
    ),
    ("lam_gamma", "lam and gamma", lambda k: k in ("lam", "gamma")),
    ("metrics", "metrics", lambda k: k.startswith("metric/")),
)


#: The y-axis labels of :func:`plot_scalars` for keys whose name does not say what they are
#: (the others are labelled with their key).
Y_LABELS = {
    "wasserstein": "W1 estimate (E D(real) - E D(fake)) / gamma",
    "critic_gap": "E D(real) - E D(fake)",
    "penalty": "penalty",
    "drift": "drift term",
    "dual_norm_mean": "mean ||dD(x_hat)||_{B*}",
    "dual_norm_max": "max ||dD(x_hat)||_{B*}",
    "frac_above_gamma": "share with ||dD(x_hat)||_{B*} > gamma",
    "lr": "learning rate",
    "images_per_s": "real images per second",
    "metric/w1": "W1 (exact, generated vs real)",
    "metric/swd": "SWD x 1e3",
    "metric/spectral_distance": "spectral distance (dB)",
    "metric/spectral_hf_distance": "high-frequency distance (dB)",
    "metric/spectral_hf_excess": "high-frequency excess (dB; 0: as real)",
}

#: Horizontal reference lines of :func:`plot_scalars`: the value of real data for signed
#: metrics, above which samples have too much and below which too little.
REFERENCE_LINES = {"metric/spectral_hf_excess": 0.0}


def read_scalars(path: str | Path) -> dict[str, tuple[list[float], list[float]]]:
    """The numeric series of a JSONL scalars file: ``key -> (steps, values)``.

    Each non-blank line is a JSON object; its ``"step"`` (else the line's index) is the
    x-coordinate of every other numeric value on the line (booleans, strings, nested values
    are skipped; ``null`` and non-finite numbers are kept as NaN gaps).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"scalars file {p} does not exist")
    series: dict[str, tuple[list[float], list[float]]] = {}
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record: Any = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{p}, line {lineno}: not valid JSON ({err.msg})") from err
            if not isinstance(record, dict):
                raise ValueError(
                    f"{p}, line {lineno}: expected a JSON object per line, got "
                    f"{type(record).__name__}"
                )
            step = record.get("step", lineno - 1)
            if isinstance(step, bool) or not isinstance(step, (int, float)):
                raise ValueError(f"{p}, line {lineno}: 'step' must be a number, got {step!r}")
            for key, value in record.items():
                if key == "step" or isinstance(value, bool):
                    continue
                if value is None or isinstance(value, (int, float)):
                    xs, ys = series.setdefault(key, ([], []))
                    xs.append(float(step))
                    ys.append(math.nan if value is None else float(value))
    return series


def group_scalars(keys: Iterable[str]) -> list[tuple[str, str, list[str]]]:
    """``(file suffix, title, keys)`` per group of :data:`SCALAR_GROUPS` plus ``other`` for
    the keys no group claims, keys in their given order, empty groups included."""
    remaining = list(keys)
    groups = []
    for suffix, title, belongs in SCALAR_GROUPS:
        groups.append((suffix, title, [k for k in remaining if belongs(k)]))
        remaining = [k for k in remaining if not belongs(k)]
    groups.append(("other", "other scalars", remaining))
    return groups


def plot_scalars(path: str | Path, out_dir: str | Path, *, prefix: str = "") -> list[Path]:
    """PNG plots of the scalars logged to the JSONL file ``path``, one file per group.

    Groups (:data:`SCALAR_GROUPS`): ``losses`` (``loss/*``, ``wasserstein``, ``critic_gap``,
    ``penalty``, ``drift``), ``dual_norm`` (``dual_norm*``, ``frac_above_gamma``),
    ``lam_gamma`` (``lam``, ``gamma``), ``metrics`` (``metric/*``) and ``other`` (every
    remaining numeric key); one subplot per key against ``step``. Groups without keys write
    no file.

    Returns:
        the written files ``out_dir/{prefix}{group}.png`` in the order above.
    """
    from matplotlib.figure import Figure

    series = read_scalars(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, title, keys in group_scalars(series):
        if not keys:
            continue
        ncols = min(3, len(keys))
        nrows = math.ceil(len(keys) / ncols)
        fig = Figure(figsize=(4.5 * ncols, 3 * nrows), layout="constrained")
        fig.suptitle(title)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, key in zip(axes.flat, keys, strict=False):
            xs, ys = series[key]
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, linewidth=1)
            ax.set_title(key, fontsize="medium")
            ax.set_xlabel("generator step")
            ax.set_ylabel(Y_LABELS.get(key, key))
            if key in REFERENCE_LINES:
                ax.axhline(REFERENCE_LINES[key], color="0.5", linewidth=0.8, linestyle="--")
            ax.grid(alpha=0.3)
        for ax in axes.flat[len(keys) :]:
            ax.set_axis_off()
        file = out / f"{prefix}{suffix}.png"
        fig.savefig(file, dpi=100)
        written.append(file)
    return written
