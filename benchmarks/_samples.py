"""Samples of a study's kept generators side by side: the same seed and the same fixed noise
for every setting, held-out real images first, every pixel drawn as a block so that
pixel-level noise shows (what an FID on coarse features misses, and the spectral metric
measures). Drawn from the kept generators (``OUT/<stem>_generators.pt``) without training,
by the study's run and by ``--redraw``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _options import DataSet
from _records import Run, generators_path, load_generators
from _stats import HF_EXCESS
from _study import restored
from torch import Tensor

COUNT, COLUMNS, PANELS_PER_ROW = 32, 8, 4
"""Samples per setting, samples per row of a panel, panels per row of the figure."""


def generated(kept: dict[str, Any], count: int = COUNT) -> tuple[Tensor, Tensor]:
    """The first ``count`` samples ``[count, C, H, W]`` in ``[-1, 1]`` of a kept generator
    (``{"config", "state"}``) from its run's fixed evaluation noise, and as many held-out
    real images at the run's resolution (the spectral metric's reference)."""
    with restored(kept) as trainer:
        evaluator = trainer.evaluator(Path(trainer.config.out))
        fake = evaluator.generate(trainer.sampler)[:count]
        real = evaluator.reference_images(trainer.data)[:count]
    return fake, real


def caption(run: Run, data: DataSet) -> str:
    """A panel's second line: the run's final FID-like metric and high-frequency excess."""
    parts = [f"{data.label} {run.final(data.fid):.1f}"]
    if HF_EXCESS.key in run.evals[-1]:
        parts.append(f"high freq. {run.final(HF_EXCESS.key):+.1f} dB")
    return ", ".join(parts)


def draw(
    saved: Path,
    runs: Sequence[Run],
    data: DataSet,
    names: Sequence[str],
    path: Path,
    seed: int = 0,
) -> Path | None:
    """Write the figure of settings ``names`` (in that order; those the study ran) of the
    study saved at ``saved`` on ``seed`` to ``path``; None (nothing written) when the study
    kept no generators or ran none of ``names``."""
    kept_path = generators_path(saved)
    by_key = {(r.name, r.seed): r for r in runs}
    names = [n for n in names if (n, seed) in by_key]
    if not kept_path.exists() or not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lipreg.train.plots import image_grid

    kept = load_generators(kept_path)
    missing = [n for n in names if (n, seed) not in kept]
    if missing:
        raise ValueError(f"{kept_path} lacks the generators of {missing} on seed {seed}")
    panels: list[tuple[str, Tensor]] = []
    real: Tensor | None = None
    for name in names:
        fake, real = generated(kept[name, seed])
        panels.append((f"{name}\n{caption(by_key[name, seed], data)}", fake))
    assert real is not None  # names is not empty
    panels.insert(0, (f"held-out real images\n{data.title}", real))
    side = real.shape[-1]
    scale = max(1, round(48 / side))  # 16 px: 3x, 28 and 32 px: 2x
    grids = [image_grid(images, nrow=COLUMNS).numpy() for _, images in panels]
    height, width = grids[0].shape[:2]
    columns = min(PANELS_PER_ROW, len(panels))
    rows = math.ceil(len(panels) / columns)
    dpi = 100
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(columns * width * scale / dpi, rows * (height * scale + 90) / dpi),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, _), grid in zip(axes.flat, panels, grids, strict=False):
        grey = grid.shape[2] == 1
        ax.imshow(grid[:, :, 0] if grey else grid, cmap="gray" if grey else None,
                  vmin=0, vmax=255, interpolation="nearest")  # fmt: skip
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"{data.heading}: samples of seed {seed}, the same noise for every setting")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
