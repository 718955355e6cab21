"""The quality studies (benchmarks/norm_study.py, method_race.py, gamma_parametrisation.py)
and their shared machinery (benchmarks/_study.py): statistics against scipy and hand
computations, reports on hand-made histories, and smoke runs of each script with --quick (no
timed assertions)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _study  # noqa: E402
import gamma_parametrisation  # noqa: E402
import method_race  # noqa: E402
import norm_study  # noqa: E402
import sn_operator_norms  # noqa: E402
from _study import CLASSES, FID, Run  # noqa: E402

from lipreg.train.config import TrainConfig  # noqa: E402


def history(name: str, seed: int, points: list[tuple[int, float, float]], classes: float = 10):
    """A run whose evaluations are ``(step, seconds, digits FID)``."""
    evals = [{"step": s, "seconds": t, FID: f, CLASSES: classes} for s, t, f in points]
    return Run(name=name, seed=seed, seconds=points[-1][1], evals=evals, steps=points[-1][0])


# ---- statistics --------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[1.0, 2.0], [3.0, 1.0, 4.0, 1.0, 5.0], [0.5] * 3 + [2.5]])
def test_mean_ci_is_scipys_t_interval(values: list[float]) -> None:
    mean, half = _study.mean_ci(values)
    sem = scipy.stats.sem(values)
    low, high = scipy.stats.t.interval(
        0.95, len(values) - 1, loc=sum(values) / len(values), scale=sem
    )
    assert mean - half == pytest.approx(low, rel=1e-12)
    assert mean + half == pytest.approx(high, rel=1e-12)
    assert math.isnan(_study.mean_ci([4.0])[1]) and _study.mean_ci([4.0])[0] == 4.0


def test_paired_test_by_hand() -> None:
    """d = a - b = 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), t = 3 / (sqrt(2.5) / sqrt(5))."""
    a, b = [2.0, 4.0, 6.0, 8.0, 10.0], [1.0, 2.0, 3.0, 4.0, 5.0]
    diff, half, p = _study.paired(a, b)
    t = 3 / (math.sqrt(2.5) / math.sqrt(5))
    assert diff == 3.0
    assert half == pytest.approx(scipy.stats.t.ppf(0.975, 4) * math.sqrt(2.5) / math.sqrt(5))
    assert p == pytest.approx(2 * scipy.stats.t.sf(t, 4), rel=1e-12)
    assert p == pytest.approx(0.013236, abs=1e-6)
    assert math.isnan(_study.paired([2.0, 3.0], [1.0, 2.0])[2])  # constant differences: no test


def test_holm_by_hand() -> None:
    # sorted: 0.005 (x4), 0.01 (x3), 0.03 (x2), 0.04 (x1) -> 0.02, 0.03, 0.06, max(0.06, 0.04)
    assert _study.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    got = _study.holm([0.01, math.nan, 0.04])  # nan is no test and does not count in m
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.04)
    assert _study.holm([0.5, 0.6]) == [1.0, 1.0]
    assert _study.holm([]) == []


@given(st.lists(st.floats(0, 1), min_size=1, max_size=15))
def test_holm_never_lowers_keeps_the_order_and_at_most_bonferroni(pvalues: list[float]) -> None:
    adjusted = _study.holm(pvalues)
    m = len(pvalues)
    for p, q in zip(pvalues, adjusted, strict=True):
        assert p <= q <= min(1.0, m * p) + 1e-12
    for (p1, q1), (p2, q2) in zip(
        sorted(zip(pvalues, adjusted, strict=True)),
        sorted(zip(pvalues, adjusted, strict=True))[1:],
        strict=False,
    ):
        assert q1 <= q2 or p1 == p2


def test_time_to_threshold_is_the_first_evaluation_at_or_below() -> None:
    run = history("a", 0, [(0, 0.0, 900.0), (10, 5.0, 120.0), (20, 9.0, 80.0), (30, 14.0, 95.0)])
    assert _study.time_to(run, FID, 100.0) == 9.0
    assert _study.time_to(run, FID, 120.0) == 5.0  # at the threshold counts
    assert _study.time_to(run, FID, 900.0) == 0.0
    assert _study.time_to(run, FID, 79.9) is None


def test_curves_average_each_evaluation_over_seeds() -> None:
    runs = [
        history("a", 0, [(0, 0.0, 10.0), (5, 2.0, 6.0), (10, 4.0, 2.0)]),
        history("a", 1, [(0, 0.0, 12.0), (5, 3.0, 8.0)]),  # stopped early
    ]
    curve = _study.by_step(runs, FID)
    assert [(x, y) for x, y, _ in curve] == [(0.0, 11.0), (2.5, 7.0)]
    assert curve[1][2] == pytest.approx(scipy.stats.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2))


def test_runs_round_trip_through_json_with_infinities(tmp_path: Path) -> None:
    runs = [history("a", 0, [(0, 0.0, math.inf)]), history("b", 1, [(0, 0.0, 3.5)])]
    _study.save_runs(runs, tmp_path / "r.json", {"steps": 3})
    loaded, meta = _study.load_runs(tmp_path / "r.json")
    assert loaded == runs and meta == {"steps": 3}


def test_estimate_adds_steps_evaluations_and_builds() -> None:
    config = _study.base_config(steps=100, eval_every=25)
    probes = {"a": _study.Probe(build=2.0, iteration=0.5, cpu=0.25, evaluation=1.0)}
    jobs = [("a", 0, config, None), ("a", 1, config, None)]
    quiet, now = _study.estimate(jobs, probes, workers=2)
    per_run = 2.0 + 5 * 1.0  # build, evaluations at steps 0, 25, 50, 75, 100
    assert quiet == pytest.approx((per_run + 100 * 0.25) / 60)
    assert now == pytest.approx((per_run + 100 * 0.5) / 60)


def test_studies_take_the_preset_and_change_only_their_own_choices() -> None:
    from lipreg.train.config import TrainConfig
    from lipreg.train.presets import PRESETS

    config = _study.base_config(**_study.study_overrides(800, 10, quick=False))
    preset = PRESETS[_study.PRESET]
    own = {"steps", "eval_every", "log_every", "tensorboard", "progress", "inception"}
    expected = TrainConfig.from_dict(preset)  # the preset's values, canonically spelt
    for key in preset:
        if key not in own:
            assert getattr(config, key) == getattr(expected, key), key
    assert (config.steps, config.eval_every) == (800, 80)


def tiny(**overrides: object) -> TrainConfig:
    """The quick digits task, 2 steps, evaluated on 64 samples at steps 0, 1 and 2."""
    study = {**_study.study_overrides(2, 2, quick=True), "eval_samples": 64}
    return _study.base_config(**study, **overrides)


def test_a_diverged_generator_scores_infinity_and_no_class(tmp_path: Path) -> None:
    from lipreg.train.loop import Trainer

    trainer = Trainer(dataclasses.replace(tiny(), out=str(tmp_path)))
    evaluator = trainer.evaluator(tmp_path)
    assert math.isfinite(_study.evaluate(trainer, evaluator)[FID])
    with torch.no_grad():
        for q in trainer.sampler.parameters():
            q.fill_(math.nan)
    assert _study.evaluate(trainer, evaluator) == {FID: math.inf, CLASSES: 0.0}


@pytest.mark.slow
def test_runs_in_worker_processes_equal_runs_in_this_one() -> None:
    jobs = [("a", seed, tiny(), None) for seed in (0, 1)]
    here, there = _study.train_all(jobs, 1), _study.train_all(jobs, 2)
    assert [r.seed for r in there] == [0, 1] and [r.steps for r in there] == [2, 2]
    for a, b in zip(here, there, strict=True):
        assert [row["step"] for row in a.evals] == [0, 1, 2]
        drop = ("seconds",)
        assert [{k: v for k, v in row.items() if k not in drop} for row in a.evals] == [
            {k: v for k, v in row.items() if k not in drop} for row in b.evals
        ]
        assert a.train == b.train  # every logged loss, bit for bit
    assert here[0].evals[-1] != here[1].evals[-1]  # the seeds differ


# ---- the reports -------------------------------------------------------------------------


def test_norm_study_pairs_by_seed_and_corrects_for_twelve_comparisons() -> None:
    fids = {norm_study.BASELINE: [50.0, 60.0, 55.0, 52.0, 58.0]}
    for i, name in enumerate(list(norm_study.settings())[1:]):
        fids[name] = [f + i - 5.5 for f in fids[norm_study.BASELINE]]  # constant shifts
    fids["W^{-1.5,2}"] = [40.0, 49.0, 46.0, 41.0, 47.0]  # about 10 better, varying
    fids["L^10"] = [50.5, 60.4, 55.6, 52.3, 58.7]  # a little worse
    runs = [
        history(name, seed, [(0, 0.0, 800.0), (10, 1.0, f)])
        for name, values in fids.items()
        for seed, f in enumerate(values)
    ]
    groups = _study.by_name(runs)
    diffs = _study.comparisons(groups, FID, norm_study.BASELINE)
    assert len(diffs) == 12
    d = [-10.0, -11.0, -9.0, -11.0, -11.0]
    expected = scipy.stats.ttest_1samp(d, 0.0).pvalue
    assert diffs["W^{-1.5,2}"][0] == pytest.approx(-10.4)
    assert diffs["W^{-1.5,2}"][2] == pytest.approx(expected)
    text = norm_study.report(runs, {"steps": 10, "machine": "m", "eval_samples": 1000})
    row = next(line for line in text.splitlines() if line.startswith("| W^{-1.5,2} | -10.40"))
    holm = _study.holm([p for _, _, p in diffs.values()])[list(diffs).index("W^{-1.5,2}")]
    assert holm == pytest.approx(2 * expected)  # two finite p-values: constant shifts have none
    assert row.endswith("| yes, better |") and "Significant after Holm" in text
    row = next(line for line in text.splitlines() if line.startswith("| L^10 | 0.50"))
    assert row.endswith("| yes, worse |")


def test_norm_study_marks_diverged_runs() -> None:
    assert _study.cell([1.0, math.inf, 3.0]) == "2.0 ± 12.7 (diverged 1)"
    assert _study.cell([math.inf, math.inf]) == "diverged (2/2)"


def race(times: dict[str, list[list[tuple[int, float, float]]]]) -> list[Run]:
    return [
        history(name, seed, points)
        for name, seeds in times.items()
        for seed, points in enumerate(seeds)
    ]


def test_the_goal_sentence_says_yes_with_the_numbers() -> None:
    gp = [[(0, 0, 900.0), (100, 50.0, 60.0), (200, 100.0, 40.0)]] * 2
    fast = [[(0, 0, 900.0), (300, 40.0, 39.0), (600, 100.0, 20.0)]] * 2
    slow = [[(0, 0, 900.0), (100, 60.0, 39.0), (200, 100.0, 30.0)]] * 2
    text, target, half = method_race.goal(
        _study.by_name(race({"WGAN-GP": gp, "c-transform": fast, "R1": slow}))
    )
    assert (target, half) == (40.0, 50.0)
    assert "Yes: in every seed, within 50 s: c-transform (40 s on average)." in text
    assert "R1" not in text


def test_the_goal_sentence_says_no_with_the_closest_method() -> None:
    gp = [[(0, 0, 900.0), (200, 100.0, 40.0)]] * 3
    close = [[(0, 0, 900.0), (9, 45.0, 39.0)]] * 2 + [[(0, 0, 900.0), (9, 70.0, 39.0)]]
    never = [[(0, 0, 900.0), (9, 100.0, 80.0)]] * 3
    groups = _study.by_name(race({"WGAN-GP": gp, "SN (power)": close, "R2": never}))
    text, _, _ = method_race.goal(groups)
    assert (
        "No method does so in every seed. The closest is SN (power): it reaches that FID " in text
    )
    assert "in 3/3 seeds, after 53 s on average, within 50 s in 2/3." in text
    groups = _study.by_name(race({"WGAN-GP": gp, "R2": never}))
    assert method_race.goal(groups)[0].endswith("No: no method reaches that FID in any seed.")


def test_the_race_table_says_never_and_counts_seeds() -> None:
    gp = [[(0, 0, 900.0), (200, 100.0, 40.0)]] * 2
    never = [[(0, 0, 900.0), (9, 100.0, 180.0)]] * 2
    meta = {"fid_threshold": 100.0, "methods": {}}
    text = method_race.report(race({"WGAN-GP": gp, "R2": never}), meta)
    row = next(line for line in text.splitlines() if line.startswith("| R2 |"))
    assert "| never (0/2) | never (0/2) | 0/2 |" in row
    row = next(line for line in text.splitlines() if line.startswith("| WGAN-GP |"))
    assert "| 100 ± 0 s (2/2) | 100 ± 0 s (2/2) | 0/2 |" in row  # 100 s is not within 50 s


def test_the_race_compares_final_quality_with_wgan_gp_paired_by_seed() -> None:
    gp = [[(0, 0, 900.0), (200, 100.0, f)] for f in (40.0, 50.0, 45.0)]
    better = [[(0, 0, 900.0), (400, 100.0, f)] for f in (30.0, 41.0, 34.0)]
    text = method_race.report(race({"WGAN-GP": gp, "R1+R2": better}), {"methods": {}})
    d = [-10.0, -9.0, -11.0]
    p = scipy.stats.ttest_1samp(d, 0.0).pvalue
    row = next(line for line in text.splitlines() if line.startswith("| R1+R2 | -10.00"))
    half = _study.mean_ci(d)[1]
    assert row == f"| R1+R2 | -10.00 ± {half:.2f} | {p:.3g} | {p:.3g} | yes, better |"
    assert "digits FID: difference to WGAN-GP, paired by seed (lower is better)" in text


def test_a_common_wall_clock_budget_gives_cheap_methods_more_steps() -> None:
    probe = _study.Probe(build=0.0, iteration=9.0, evaluation=0.0, cpu=0.2)
    probes = {"WGAN-GP": probe, "c-transform": _study.Probe(0.0, 9.0, 0.05, 0.0)}
    assert method_race.budgeted(500, probes, "wall") == {"WGAN-GP": 500, "c-transform": 2000}
    assert method_race.budgeted(500, probes, "steps") == {"WGAN-GP": 500, "c-transform": 500}


def test_every_race_method_is_a_valid_run_of_the_preset() -> None:
    from lipreg.train.objectives import method_problems

    for overrides, _ in method_race.METHODS.values():
        config = _study.base_config(**overrides)
        assert method_problems(config) == [], overrides
    for overrides in norm_study.settings().values():
        assert method_problems(_study.base_config(**overrides)) == []


def race_rows() -> dict[str, str]:
    """The studies page's method table: method -> its "changes to the preset" cell."""
    text = (ROOT / "docs" / "studies.md").read_text()
    table = text.split("| method | changes to the preset |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        name, changes = (cell.strip() for cell in line.split("|")[1:3])
        rows[name.replace("`", "")] = changes
    return rows


def test_the_race_methods_run_as_written_on_the_command_line() -> None:
    """Each row's changes to the preset, given to ``lipreg train --preset bwgan-digits``, make
    exactly the race's configuration of that method: the preset's options that the method
    leaves unused (its lam and gamma 'auto', its Sobolev norm) give way."""
    import shlex

    from lipreg.train.cli import parse_command

    rows = race_rows()
    assert set(rows) == set(method_race.METHODS)
    quiet = {"tensorboard": False, "progress": False, "checkpoint_every": 0, "inception": False}
    for name, changes in rows.items():
        argv = [] if changes == "none (the preset)" else shlex.split(changes.strip("`"))
        assert all(not a.startswith("`") for a in argv), (name, changes)
        command = parse_command(["--preset", _study.PRESET, *argv])
        asked = dataclasses.replace(command.config, **quiet)
        assert asked == _study.base_config(**method_race.METHODS[name][0]), name


# ---- the scripts, end to end -------------------------------------------------------------


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "stem", "pictures", "runs"),
    [
        ("norm_study.py", "norm_study", ["norm_study_lp.png", "norm_study_sobolev.png"], 13),
        ("method_race.py", "method_race", ["method_race.png"], 13),
        ("gamma_parametrisation.py", "gamma_parametrisation", ["gamma_parametrisation.png"], 3),
    ],
)
def test_scripts_run_quick_and_redraw_from_their_json(
    tmp_path: Path, script: str, stem: str, pictures: list[str], runs: int
) -> None:
    done = run_script(script, "--quick", "--out", str(tmp_path))
    assert "estimated duration:" in done.stdout and "machine:" in done.stdout
    record = json.loads((tmp_path / f"{stem}.json").read_text())
    assert len(record["runs"]) == 2 * runs  # every setting, two seeds
    assert record["meta"]["machine"] and record["meta"]["command"].endswith(
        "--out " + str(tmp_path)
    )
    assert sorted(p.name for p in tmp_path.glob("*.png")) == pictures
    table = (tmp_path / f"{stem}.md").read_text()
    for path in [tmp_path / f"{stem}.md", *(tmp_path / p for p in pictures)]:
        path.unlink()
    again = run_script(script, "--redraw", "--out", str(tmp_path))
    assert "estimated duration:" not in again.stdout  # nothing trained
    assert (tmp_path / f"{stem}.md").read_text() == table
    assert sorted(p.name for p in tmp_path.glob("*.png")) == pictures
    if script == "method_race.py":  # another threshold, from the same runs
        assert "| time to FID <= 100 |" in table
        run_script(script, "--redraw", "--out", str(tmp_path), "--fid-threshold", "900")
        assert "| time to FID <= 900 |" in (tmp_path / f"{stem}.md").read_text()


def test_the_gamma_study_logs_the_critics_weights(tmp_path: Path) -> None:
    from lipreg.train.loop import Trainer

    trainer = Trainer(dataclasses.replace(tiny(), out=str(tmp_path)))
    gamma_parametrisation.probe_weights(trainer)
    before = torch.cat([p.detach().flatten() for p in trainer.d.parameters()])
    trainer.iteration()
    values = trainer.scalars()
    after = torch.cat([p.detach().flatten() for p in trainer.d.parameters()])
    assert values["critic_weight_norm"] == pytest.approx(float(after.norm()))
    assert values["critic_moved"] == pytest.approx(float((after - before).norm() / after.norm()))
    assert "dual_norm_mean" in values  # the trainer's own scalars are still there


def test_fft_spectral_normalisation_bounds_each_convolution_and_power_iteration_does_not() -> None:
    fft = sn_operator_norms.measure("fft")
    power = sn_operator_norms.measure("power")
    assert len(fft) == len(power) == 2
    assert all(v <= 1 + 1e-6 for v in fft), fft  # certified: every layer at most 1-Lipschitz
    assert max(power) > 1, power  # the reshaped kernel's sigma understates the operator norm


KEPT = [
    (gamma_parametrisation, "gamma", "gamma_parametrisation", "theory.md"),
    (norm_study, "norm", "norm_study", "studies.md"),
    (method_race, "race", "method_race", "studies.md"),
]


@pytest.mark.parametrize(
    ("script", "folder", "stem", "page"), KEPT, ids=[folder for _, folder, _, _ in KEPT]
)
def test_kept_results_give_the_tables_the_docs_show(
    script: object, folder: str, stem: str, page: str
) -> None:
    """The docs' numbers come from the kept runs: their report, rebuilt from the JSON, is the
    kept Markdown, and every table row of it stands on the page."""
    kept = ROOT / "benchmarks" / "results" / folder
    if not (kept / f"{stem}.json").exists():
        pytest.skip(f"no kept runs in {kept}")
    runs, meta = _study.load_runs(kept / f"{stem}.json")
    text = script.report(runs, meta)  # type: ignore[attr-defined]
    assert text == (kept / f"{stem}.md").read_text()
    shown = (ROOT / "docs" / page).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    if "| method | settings and source |" in rows:  # the page lists them with CLI spellings
        rows = rows[: rows.index("| method | settings and source |")]
    missing = [row for row in rows if row not in shown]
    assert not missing, f"docs/{page} lacks rows of {stem}.md: {missing[:3]}"


def test_every_race_method_is_drawn_in_exactly_one_panel() -> None:
    for name, (overrides, _) in method_race.METHODS.items():
        assert sum(shows(overrides) for shows in method_race.PANELS.values()) == 1, name
