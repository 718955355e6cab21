"""The trainer's pictures: the critic grid against the critic evaluated by hand, image grids
pixel by pixel, PNG files written and readable, scalars grouped into files, and light
imports (no matplotlib until a plot is drawn)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lipreg.train.plots import (
    critic_values,
    group_scalars,
    image_grid,
    plot_critic_surface,
    plot_norm_comparison,
    plot_scalars,
    read_scalars,
    save_image_grid,
)


def linear_critic(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0] - 2 * x[:, 1]


def test_critic_values_on_the_grid() -> None:
    xs, ys, values = critic_values(linear_critic, (-1.0, 3.0, 0.0, 2.0), 5)
    assert torch.allclose(xs, torch.tensor([-1.0, 0.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    assert torch.allclose(ys, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0], dtype=torch.float64))
    for i in range(5):
        for j in range(5):
            assert values[i, j].item() == pytest.approx(xs[j].item() - 2 * ys[i].item())


def test_critic_values_leave_batch_norm_alone() -> None:
    critic = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    _, _, values = critic_values(critic, (-1.0, 1.0, -1.0, 1.0), 4)
    assert values.shape == (4, 4) and critic.training
    for k, v in critic.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in critic.parameters())


def test_critic_values_bad_input() -> None:
    with pytest.raises(ValueError) as info:
        critic_values(linear_critic, (1.0, 0.0, 0.0, 1.0), 4)
    assert "x0 < x1" in str(info.value)
    with pytest.raises(ValueError) as info:
        critic_values(linear_critic, (0.0, 1.0, 0.0, 1.0), 1)
    assert "resolution must be an integer >= 2" in str(info.value)
    with pytest.raises(ValueError) as info:
        critic_values(lambda x: x, (0.0, 1.0, 0.0, 1.0), 3)
    assert "one score per sample" in str(info.value)


def test_plot_critic_surface_writes_png(tmp_path: Path) -> None:
    critic = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    real, fake = torch.randn(300, 2), torch.randn(2000, 2) * 0.3 + 1
    out = plot_critic_surface(critic, real, fake, tmp_path / "sub" / "surface.png", title="L2")
    assert out == tmp_path / "sub" / "surface.png"
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (600, 500)
        assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 20


def test_plot_critic_surface_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        plot_critic_surface(linear_critic, torch.zeros(3, 3), torch.zeros(3, 2), tmp_path / "a.png")
    assert "real must be 2-D points" in str(info.value)
    with pytest.raises(ValueError) as info:
        plot_critic_surface(linear_critic, torch.zeros(3, 2), torch.zeros(3, 2), tmp_path / "a.jpg")
    assert ".png" in str(info.value)
    assert not (tmp_path / "a.png").exists()


def test_plot_norm_comparison(tmp_path: Path) -> None:
    real = torch.randn(100, 2)
    panels = [
        (name, nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)), real, real + shift)
        for name, shift in (("L2", 0.5), ("L1", 1.0), ("Linf", 2.0))
    ]
    out = plot_norm_comparison(panels, tmp_path / "norms.png", resolution=32)
    with Image.open(out) as img:
        assert img.size == (3 * 460, 400)
    out = plot_norm_comparison(panels, tmp_path / "norms2.png", resolution=16, columns=2)
    with Image.open(out) as img:
        assert img.size == (2 * 460, 800)
    for bad, expect in [
        ([], "non-empty list"),
        ([("L2", linear_critic, real)], "panels[0] must be a tuple"),
        ([("L2", linear_critic, real, torch.zeros(4))], "panels[0] fake must be 2-D points"),
    ]:
        with pytest.raises(ValueError) as info:
            plot_norm_comparison(bad, tmp_path / "bad.png")  # type: ignore[arg-type]
        assert expect in str(info.value)
    with pytest.raises(ValueError) as info:
        plot_norm_comparison(panels, tmp_path / "bad.png", columns=0)
    assert "columns must be an integer >= 1" in str(info.value)


def test_image_grid_places_every_image() -> None:
    n, h, w, p = 5, 3, 4, 2
    levels = torch.linspace(-1, 1, n)
    images = levels[:, None, None, None].expand(n, 3, h, w).clone()
    images[:, 1] = 0.0  # green channel constant
    grid = image_grid(images, nrow=3, padding=p)
    assert grid.shape == (2 * (h + p) + p, 3 * (w + p) + p, 3) and grid.dtype == torch.uint8
    for i in range(n):
        top, left = p + (i // 3) * (h + p), p + (i % 3) * (w + p)
        tile = grid[top : top + h, left : left + w]
        expect = round((levels[i].item() + 1) * 127.5)
        assert (tile[..., 0] == expect).all() and (tile[..., 1] == 128).all()
    assert (grid[:p] == 0).all() and (grid[:, :p] == 0).all()  # black padding
    assert (grid[h + 2 * p :, 2 * (w + p) + p :] == 0).all()  # the empty sixth cell


def test_image_grid_defaults_and_clamping() -> None:
    images = torch.tensor([-3.0, 3.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    grid = image_grid(images, padding=0, pad_value=1.0)
    assert grid.shape == (2, 4, 1)  # ceil(sqrt(2)) = 2 per row
    assert grid[:, :2].eq(0).all() and grid[:, 2:].eq(255).all()


def test_save_image_grid_round_trip(tmp_path: Path) -> None:
    rgb = torch.rand(7, 3, 6, 5) * 2 - 1
    out = save_image_grid(rgb, tmp_path / "g" / "rgb.png", nrow=4)
    with Image.open(out) as img:
        assert img.mode == "RGB"
        assert np.array_equal(np.asarray(img), image_grid(rgb, nrow=4).numpy())
    grey = torch.rand(4, 1, 8, 8) * 2 - 1
    out = save_image_grid(grey, tmp_path / "grey.png")
    with Image.open(out) as img:
        assert img.mode == "L"
        assert np.array_equal(np.asarray(img), image_grid(grey).numpy()[:, :, 0])


@pytest.mark.parametrize(
    ("images", "kwargs", "expect"),
    [
        (torch.zeros(2, 2, 4, 4), {}, "C = 1 or 3"),
        (torch.zeros(2, 4, 4), {}, "[N, C, H, W]"),
        (torch.zeros(0, 3, 4, 4), {}, "at least one image"),
        (torch.full((1, 3, 2, 2), math.nan), {}, "NaN"),
        (torch.zeros(1, 3, 2, 2), {"nrow": 0}, "nrow must be an integer >= 1"),
        (torch.zeros(1, 3, 2, 2), {"padding": -1}, "padding must be an integer >= 0"),
    ],
)
def test_image_grid_bad_input(images: torch.Tensor, kwargs: dict[str, int], expect: str) -> None:
    with pytest.raises(ValueError) as info:
        image_grid(images, **kwargs)
    assert expect in str(info.value)


def write_jsonl(path: Path, records: list[object]) -> None:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")


def test_plot_scalars_groups_files(tmp_path: Path) -> None:
    log = tmp_path / "scalars.jsonl"
    records: list[object] = []
    for step in range(0, 50, 5):
        rec = {
            "step": step,
            "loss/critic": -0.1 * step,
            "loss/generator": 0.05 * step,
            "wasserstein": 1 / (1 + step),
            "penalty": 0.01,
            "dual_norm_mean": 1.0,
            "dual_norm_max": 1.5,
            "frac_above_gamma": 0.5,
            "critic_gap": 0.3,
            "lam": 10.0,
            "gamma": 2.0,
            "lr": 2e-4,
            "run": "name",  # text: skipped
        }
        if step % 20 == 0:
            rec["metric/w1"] = 1.0 / (1 + step)
        records.append(rec)
    write_jsonl(log, records)
    paths = plot_scalars(log, tmp_path / "plots", prefix="run_")
    names = [p.name for p in paths]
    assert names == [
        "run_losses.png",
        "run_dual_norm.png",
        "run_lam_gamma.png",
        "run_metrics.png",
        "run_other.png",
    ]
    for p in paths:
        with Image.open(p) as img:
            assert img.format == "PNG"
    series = read_scalars(log)
    assert series["metric/w1"] == ([0.0, 20.0, 40.0], [1.0, 1 / 21, 1 / 41])
    assert series["loss/critic"][0] == [float(s) for s in range(0, 50, 5)]
    assert "run" not in series and "step" not in series
    groups = {suffix: keys for suffix, _, keys in group_scalars(series)}
    assert groups == {
        "losses": ["loss/critic", "loss/generator", "wasserstein", "penalty", "critic_gap"],
        "dual_norm": ["dual_norm_mean", "dual_norm_max", "frac_above_gamma"],
        "lam_gamma": ["lam", "gamma"],
        "metrics": ["metric/w1"],
        "other": ["lr"],
    }


def test_plot_scalars_only_some_groups(tmp_path: Path) -> None:
    log = tmp_path / "s.jsonl"
    write_jsonl(log, [{"lam": 1.0, "gamma": None, "flag": True}, {"lam": 2.0, "gamma": 3.0}])
    paths = plot_scalars(log, tmp_path)
    assert [p.name for p in paths] == ["lam_gamma.png"]
    series = read_scalars(log)
    assert series["lam"] == ([0.0, 1.0], [1.0, 2.0])  # line index without "step"
    assert series["gamma"][1][1] == 3.0 and math.isnan(series["gamma"][1][0])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert plot_scalars(empty, tmp_path / "none") == []


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('{"step": 1}\n{"step": 2,\n', "line 2: not valid JSON"),
        ("[1, 2]\n", "line 1: expected a JSON object"),
        ('{"step": "a", "lam": 1}\n', "'step' must be a number"),
    ],
)
def test_read_scalars_bad_lines(tmp_path: Path, text: str, expect: str) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text(text)
    with pytest.raises(ValueError) as info:
        read_scalars(log)
    assert expect in str(info.value) and "bad.jsonl" in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_scalars(tmp_path / "missing.jsonl")


def test_imports_stay_light() -> None:
    """Importing the data, metrics and plots modules loads neither matplotlib, nor
    scikit-learn, scipy, PIL or torch-fidelity; they load when used."""
    code = (
        "import sys, lipreg.train.data, lipreg.train.metrics, lipreg.train.plots\n"
        "print(sorted(m for m in ('matplotlib', 'sklearn', 'scipy', 'PIL', 'torch_fidelity')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_every_plot_labels_both_axes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each curve says what it shows on its y-axis (and steps on its x-axis), each surface
    its coordinates; colour bars say what their colours mean."""
    from matplotlib.figure import Figure

    figures: list[Figure] = []
    savefig = Figure.savefig

    def recording(self: Figure, *args: object, **kwargs: object) -> None:
        figures.append(self)
        savefig(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Figure, "savefig", recording)
    log = tmp_path / "scalars.jsonl"
    keys = ("loss/critic", "dual_norm_mean", "lam", "metric/swd", "lr", "images_per_s")
    keys += ("metric/spectral_hf_excess",)
    write_jsonl(log, [{"step": s, **dict.fromkeys(keys, 1.0 + s)} for s in range(3)])
    plot_scalars(log, tmp_path / "plots")
    real = torch.randn(20, 2)
    plot_critic_surface(linear_critic, real, real + 1, tmp_path / "s.png", resolution=8)
    plot_norm_comparison([("L2", linear_critic, real, real)], tmp_path / "n.png", resolution=8)
    assert len(figures) == 7
    labelled = 0
    for figure in figures:
        for ax in figure.axes:
            if not ax.axison:
                continue
            assert ax.get_ylabel(), (figure.get_suptitle(), ax.get_title())
            if not hasattr(ax, "_colorbar"):
                assert ax.get_xlabel(), ax.get_title()
            labelled += 1
    assert labelled >= len(keys) + 4  # the curves, two surfaces and their colour bars
    # a signed metric shows the real data's level, 0 dB
    (excess,) = [ax for f in figures for ax in f.axes if ax.get_title().endswith("hf_excess")]
    assert "(dB" in excess.get_ylabel()
    assert any(list(line.get_ydata()) == [0.0, 0.0] for line in excess.get_lines())
