"""The quality studies (benchmarks/norm_study.py, method_race.py, tuned_race.py,
dfree_race.py, gamma_parametrisation.py) and their shared machinery (benchmarks/_study.py,
_stats.py, _records.py, _options.py): statistics against scipy and hand computations, reports
on hand-made histories, kept generators re-scored, and smoke runs of each script with --quick
(no timed assertions)."""

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

import _options  # noqa: E402
import _records  # noqa: E402
import _samples  # noqa: E402
import _stats  # noqa: E402
import _study  # noqa: E402
import dfree_race  # noqa: E402
import dfree_stability  # noqa: E402
import gamma_parametrisation  # noqa: E402
import method_race  # noqa: E402
import norm_study  # noqa: E402
import side_by_side  # noqa: E402
import sn_operator_norms  # noqa: E402
import tuned_race  # noqa: E402
from _records import Run  # noqa: E402
from _study import CLASSES, FID  # noqa: E402

DIGITS = _options.DATASETS["digits"]
FASHION = _options.DATASETS["fashion-mnist"]

from lipreg.train.config import TrainConfig  # noqa: E402


def history(name: str, seed: int, points: list[tuple[int, float, float]], classes: float = 10):
    """A run whose evaluations are ``(step, seconds, digits FID)``."""
    evals = [{"step": s, "seconds": t, FID: f, CLASSES: classes} for s, t, f in points]
    return Run(name=name, seed=seed, seconds=points[-1][1], evals=evals, steps=points[-1][0])


# ---- statistics --------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[1.0, 2.0], [3.0, 1.0, 4.0, 1.0, 5.0], [0.5] * 3 + [2.5]])
def test_mean_ci_is_scipys_t_interval(values: list[float]) -> None:
    mean, half = _stats.mean_ci(values)
    sem = scipy.stats.sem(values)
    low, high = scipy.stats.t.interval(
        0.95, len(values) - 1, loc=sum(values) / len(values), scale=sem
    )
    assert mean - half == pytest.approx(low, rel=1e-12)
    assert mean + half == pytest.approx(high, rel=1e-12)
    assert math.isnan(_stats.mean_ci([4.0])[1]) and _stats.mean_ci([4.0])[0] == 4.0


def test_paired_test_by_hand() -> None:
    """d = a - b = 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), t = 3 / (sqrt(2.5) / sqrt(5))."""
    a, b = [2.0, 4.0, 6.0, 8.0, 10.0], [1.0, 2.0, 3.0, 4.0, 5.0]
    diff, half, p = _stats.paired(a, b)
    t = 3 / (math.sqrt(2.5) / math.sqrt(5))
    assert diff == 3.0
    assert half == pytest.approx(scipy.stats.t.ppf(0.975, 4) * math.sqrt(2.5) / math.sqrt(5))
    assert p == pytest.approx(2 * scipy.stats.t.sf(t, 4), rel=1e-12)
    assert p == pytest.approx(0.013236, abs=1e-6)
    assert math.isnan(_stats.paired([2.0, 3.0], [1.0, 2.0])[2])  # constant differences: no test


def test_holm_by_hand() -> None:
    # sorted: 0.005 (x4), 0.01 (x3), 0.03 (x2), 0.04 (x1) -> 0.02, 0.03, 0.06, max(0.06, 0.04)
    assert _stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    got = _stats.holm([0.01, math.nan, 0.04])  # nan is no test and does not count in m
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.04)
    assert _stats.holm([0.5, 0.6]) == [1.0, 1.0]
    assert _stats.holm([]) == []


@given(st.lists(st.floats(0, 1), min_size=1, max_size=15))
def test_holm_never_lowers_keeps_the_order_and_at_most_bonferroni(pvalues: list[float]) -> None:
    adjusted = _stats.holm(pvalues)
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
    assert _stats.time_to(run, FID, 100.0) == 9.0
    assert _stats.time_to(run, FID, 120.0) == 5.0  # at the threshold counts
    assert _stats.time_to(run, FID, 900.0) == 0.0
    assert _stats.time_to(run, FID, 79.9) is None


def test_curves_average_each_evaluation_over_seeds() -> None:
    runs = [
        history("a", 0, [(0, 0.0, 10.0), (5, 2.0, 6.0), (10, 4.0, 2.0)]),
        history("a", 1, [(0, 0.0, 12.0), (5, 3.0, 8.0)]),  # stopped early
    ]
    curve = _stats.by_step(runs, FID)
    assert [(x, y) for x, y, _ in curve] == [(0.0, 11.0), (2.5, 7.0)]
    assert curve[1][2] == pytest.approx(scipy.stats.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2))


def test_runs_round_trip_through_json_with_infinities(tmp_path: Path) -> None:
    runs = [history("a", 0, [(0, 0.0, math.inf)]), history("b", 1, [(0, 0.0, 3.5)])]
    _records.save_runs(runs, tmp_path / "r.json", {"steps": 3})
    loaded, meta = _records.load_runs(tmp_path / "r.json")
    assert loaded == runs and meta == {"steps": 3}


def test_estimate_adds_steps_evaluations_and_builds() -> None:
    config = _options.base_config(steps=100, eval_every=25)
    probes = {"a": _study.Probe(build=2.0, iteration=0.5, cpu=0.25, evaluation=1.0)}
    jobs = [_study.Job("a", 0, config), _study.Job("a", 1, config)]
    quiet, now = _study.estimate(jobs, probes, workers=2)
    per_run = 2.0 + 5 * 1.0  # build, evaluations at steps 0, 25, 50, 75, 100
    assert quiet == pytest.approx((per_run + 100 * 0.25) / 60)
    assert now == pytest.approx((per_run + 100 * 0.5) / 60)
    # a run stopped on its clock after 10 s: 40 steps at 0.25 s, evaluations at 0, 25 and 40
    short = [_study.Job("a", 0, config, seconds=10.0, initial=False)]
    quiet, _ = _study.estimate(short, probes, workers=1)
    assert quiet == pytest.approx((2.0 + 2 * 1.0 + 10.0) / 60)


def test_studies_take_the_preset_and_change_only_their_own_choices() -> None:
    from lipreg.train.config import TrainConfig
    from lipreg.train.presets import PRESETS

    config = _options.base_config(**_options.study_overrides(800, 10, quick=False))
    preset = PRESETS[_options.DATASETS["digits"].preset]
    own = {"steps", "eval_every", "log_every", "tensorboard", "progress", "inception"}
    expected = TrainConfig.from_dict(preset)  # the preset's values, canonically spelt
    for key in preset:
        if key not in own:
            assert getattr(config, key) == getattr(expected, key), key
    assert (config.steps, config.eval_every) == (800, 80)


def tiny(**overrides: object) -> TrainConfig:
    """The quick digits task, 2 steps, evaluated on 64 samples at steps 0, 1 and 2."""
    study = {**_options.study_overrides(2, 2, quick=True), "eval_samples": 64}
    return _options.base_config(**{**study, **overrides})


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
    jobs = [_study.Job("a", seed, tiny()) for seed in (0, 1)]
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


def test_a_kept_generator_scores_as_its_run_did(tmp_path: Path) -> None:
    """Scoring the float32 original reproduces the run's final evaluation exactly; the kept
    float16 copy within the tolerance; ``rescore`` writes the values into the record."""
    run = _study.train(_study.Job("a", 3, tiny()))
    assert run.generator is not None and run.generator["config"]["seed"] == 3
    recorded = {k: v for k, v in run.evals[-1].items() if k.startswith("metric/")}
    assert _study.score(run.generator) == recorded
    saved = tmp_path / "study.json"
    _records.save_runs([run], saved, {"steps": 2})
    _records.save_generators([run], _records.generators_path(saved))
    assert "generator" not in json.loads(saved.read_text())["runs"][0]
    kept = _records.load_generators(tmp_path / "study_generators.pt")[("a", 3)]
    assert kept["config"] == run.generator["config"]
    for name, t in kept["state"].items():
        original = run.generator["state"][name]
        assert t.dtype == (torch.float16 if original.is_floating_point() else original.dtype)
        assert torch.equal(t, original.to(t.dtype))
    rescored = _study.score(kept)
    assert rescored[FID] == pytest.approx(recorded[FID], rel=_records.FID_TOLERANCE)
    assert rescored[CLASSES] == recorded[CLASSES]
    runs, meta = _study.rescore(saved, workers=1)
    assert runs[0].evals[-1] == {**run.evals[-1], **rescored}
    assert runs[0].evals[:-1] == run.evals[:-1]
    assert meta["rescored"]["keys"] == sorted(recorded) and meta["steps"] == 2
    assert _records.load_runs(saved)[0][0].evals == runs[0].evals


def test_float16_keeps_what_it_can_hold_and_refuses_foreign_files(tmp_path: Path) -> None:
    state = {"w": torch.tensor([1.0, -2.5]), "big": torch.tensor([1e6]), "n": torch.tensor(3)}
    kept = _records.compact(state)
    assert kept["w"].dtype == torch.float16 and kept["n"].dtype == torch.int64
    assert kept["big"].dtype == torch.float32  # beyond float16's 65504
    torch.save({"runs": []}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a file of kept study generators"):
        _records.load_generators(tmp_path / "other.pt")
    _records.save_runs([], tmp_path / "none.json")
    with pytest.raises(FileNotFoundError, match="kept no generators"):
        _study.rescore(tmp_path / "none.json", workers=1)


def test_a_run_stopped_on_its_clock_keeps_the_decay_of_its_configured_steps() -> None:
    """``Job.seconds``: the run stops once its training clock reaches the limit (here after
    the first iteration), evaluates there, and its learning rate decays over the configured
    50 steps rather than the ones it trained."""
    config = tiny(steps=50, eval_every=25, log_every=1)
    run = _study.train(_study.Job("a", 0, config, seconds=1e-9, initial=False))
    assert run.steps == 1 and [row["step"] for row in run.evals] == [1]
    assert run.train[0]["lr"] == pytest.approx(config.lr * (1 - 1 / 50))


def test_probes_shuffle_each_round_and_pool_the_rounds() -> None:
    names = [f"m{i}" for i in range(8)]
    order = list(_study.probe_order(names, 3))
    rounds = [[n for r, n in order if r == k] for k in range(3)]
    assert all(sorted(r) == names for r in rounds)  # every setting once per round
    assert rounds[0] != rounds[1] != rounds[2]  # in other orders, so other neighbours
    assert list(_study.probe_order(names, 3)) == order  # seeded: the same plan every time
    configs = {"a": tiny(), "b": tiny(n_critic=1)}
    probes = _study.probe_all(configs, 1, _study.Timing(iterations=2, warmup=1, rounds=2))
    assert set(probes) == {"a", "b"}
    for probe in probes.values():
        assert probe.iterations == 4 and probe.cpu > 0 and probe.iteration > 0
        assert probe.evaluation > 0 and probe.build > 0


def test_a_saved_plan_gives_its_steps_and_timings(tmp_path: Path) -> None:
    probe = _study.Probe(build=1.0, iteration=0.3, cpu=0.2, evaluation=0.5, iterations=32)
    meta = _study.record("x.py", [], {"a": probe}, plan={"a": 123})
    _records.save_runs([], tmp_path / "x.json", meta)
    assert _study.saved_plan(tmp_path / "x.json") == ({"a": 123}, {"a": probe})
    _records.save_runs([], tmp_path / "y.json", {"probes": {}})
    with pytest.raises(ValueError, match="no plan of steps"):
        _study.saved_plan(tmp_path / "y.json")


def test_the_data_option_picks_the_preset_and_the_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    digits = _options.base_config("digits")
    assert digits.data == "digits" and DIGITS.fid == FID
    assert (FASHION.fid, FASHION.classes) == ("metric/fashion_fid", "metric/fashion_classes")
    assert _options.base_config("fashion-mnist").data == "fashion-mnist"
    missing = dataclasses.replace(FASHION, preset="bwgan-nowhere")
    monkeypatch.setitem(_options.DATASETS, "fashion-mnist", missing)
    with pytest.raises(ValueError, match=r"--data fashion-mnist: .*bwgan-nowhere"):
        _options.base_config("fashion-mnist")
    args = _options.parse(_options.parser("", 1, 1, 1, 1, "norm"), ["--data", "fashion-mnist"])
    assert args.out == Path("runs/fashion-mnist/norm")
    assert _options.dataset_of({}) is DIGITS  # records from before --data


def test_the_studies_train_on_the_papers_schedule_and_the_main_job_differs_only_in_it() -> None:
    from lipreg.train.presets import PRESETS

    config = _options.base_config("digits")
    assert (config.n_critic, config.lazy_every, config.penalty_fraction) == (5, 1, 1.0)
    lazy = _options.base_config("digits", **method_race.METHODS["lazy GP /16"][0])
    assert lazy.lazy_every == 16  # a setting's own schedule wins
    for main_job, data in (("bwgan-digits", DIGITS), ("bwgan-fashion", FASHION)):
        main, paper = PRESETS[main_job], PRESETS[data.preset]
        differ = {k for k in main.keys() | paper.keys() if main.get(k) != paper.get(k)}
        assert differ == {"n_critic", "penalty_fraction", "steps", "eval_every"}, main_job
    fashion = _options.base_config("fashion-mnist")
    assert (fashion.data, fashion.image_size, fashion.n_critic) == ("fashion-mnist", None, 5)
    # the studies on both data sets differ only in the data
    digits = PRESETS[DIGITS.preset]
    differ = {
        k
        for k in digits.keys() | PRESETS[FASHION.preset].keys()
        if digits.get(k) != PRESETS[FASHION.preset].get(k)
    }
    assert differ == {"data", "image_size"}


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
    groups = _stats.by_name(runs)
    diffs = _stats.comparisons(groups, FID, norm_study.BASELINE)
    assert len(diffs) == 12
    d = [-10.0, -11.0, -9.0, -11.0, -11.0]
    expected = scipy.stats.ttest_1samp(d, 0.0).pvalue
    assert diffs["W^{-1.5,2}"][0] == pytest.approx(-10.4)
    assert diffs["W^{-1.5,2}"][2] == pytest.approx(expected)
    text = norm_study.report(runs, {"steps": 10, "machine": "m", "eval_samples": 1000})
    row = next(line for line in text.splitlines() if line.startswith("| W^{-1.5,2} | -10.40"))
    holm = _stats.holm([p for _, _, p in diffs.values()])[list(diffs).index("W^{-1.5,2}")]
    assert holm == pytest.approx(2 * expected)  # two finite p-values: constant shifts have none
    assert row.endswith("| yes, better |") and "Significant after Holm" in text
    row = next(line for line in text.splitlines() if line.startswith("| L^10 | 0.50"))
    assert row.endswith("| yes, worse |")


def test_norm_study_marks_diverged_runs() -> None:
    assert _stats.cell([1.0, math.inf, 3.0]) == "2.0 ± 12.7 (diverged 1)"
    assert _stats.cell([math.inf, math.inf]) == "diverged (2/2)"


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
        _stats.by_name(race({"WGAN-GP": gp, "c-transform": fast, "R1": slow})), DIGITS.quality
    )
    assert (target, half) == (40.0, 50.0)
    assert "Yes: in every seed, within 50 s: c-transform (40 s on average)." in text
    assert "R1" not in text


def test_the_goal_sentence_says_no_with_the_closest_method() -> None:
    gp = [[(0, 0, 900.0), (200, 100.0, 40.0)]] * 3
    close = [[(0, 0, 900.0), (9, 45.0, 39.0)]] * 2 + [[(0, 0, 900.0), (9, 70.0, 39.0)]]
    never = [[(0, 0, 900.0), (9, 100.0, 80.0)]] * 3
    groups = _stats.by_name(race({"WGAN-GP": gp, "SN (power)": close, "R2": never}))
    text, _, _ = method_race.goal(groups, DIGITS.quality)
    assert (
        "No method does so in every seed. The closest is SN (power): it reaches that FID " in text
    )
    assert "in 3/3 seeds, after 53 s on average, within 50 s in 2/3." in text
    groups = _stats.by_name(race({"WGAN-GP": gp, "R2": never}))
    assert method_race.goal(groups, DIGITS.quality)[0].endswith(
        "No: no method reaches that FID in any seed."
    )


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
    half = _stats.mean_ci(d)[1]
    assert row == f"| R1+R2 | -10.00 ± {half:.2f} | {p:.3g} | {p:.3g} | yes, better |"
    assert "digits FID: difference to WGAN-GP, paired by seed (lower is better)" in text


def spectral(run: Run, excess: float, distance: float) -> Run:
    """``run`` whose final evaluation also measured the spectral metric."""
    run.evals[-1] |= {
        _stats.HF_EXCESS.key: excess,
        _stats.SPECTRAL_DISTANCE.key: distance,
        _stats.SPECTRAL_HF_DISTANCE.key: abs(excess),
    }
    return run


def test_reports_carry_the_spectral_metric_beside_the_fid_when_measured() -> None:
    gp = [[(0, 0, 900.0), (200, 100.0, f)] for f in (40.0, 50.0, 45.0)]
    noisy = [[(0, 0, 900.0), (200, 100.0, f)] for f in (30.0, 41.0, 34.0)]
    runs = race({"WGAN-GP": gp, "BWGAN W^{-3/2,2}": noisy})
    plain = method_race.report(runs, {"methods": {}})
    assert "excess" not in plain and "spectral" not in plain  # old records: no columns
    for run, excess in zip(runs, (1.0, 2.0, 1.5, 4.0, 5.5, 4.5), strict=True):
        spectral(run, excess, 2 * excess)
    text = method_race.report(runs, {"methods": {}})
    header = next(line for line in text.splitlines() if line.startswith("| method | steps"))
    assert (
        "| digits FID at the end | classes reached at the end | spectral distance (dB) " in header
    )
    assert "| high-frequency excess (dB) at the end |" in header
    row = next(line for line in text.splitlines() if line.startswith("| BWGAN W^{-3/2,2} | 200"))
    low, high = scipy.stats.t.interval(0.95, 2, loc=14 / 3, scale=scipy.stats.sem([4, 5.5, 4.5]))
    assert f"| {14 / 3:.1f} ± {(high - low) / 2:.1f} |" in row  # the excess of 4, 5.5, 4.5
    d = [3.0, 3.5, 3.0]
    p = scipy.stats.ttest_1samp(d, 0.0).pvalue
    assert (
        "## high-frequency excess (dB): difference to WGAN-GP, paired by seed (+ is more "
        "high-frequency power than the reference)" in text
    )
    half = _stats.mean_ci(d)[1]
    assert f"| BWGAN W^{{-3/2,2}} | 3.17 ± {half:.2f} | {p:.3g} | {p:.3g} | yes, higher |" in text
    assert "## spectral distance (dB): difference to WGAN-GP" in text
    norm = norm_study.report(
        [
            spectral(history(n, s, [(0, 0.0, 80.0 + s)]), 1.0 + s, 3.0)
            for n in ("WGAN-GP", "L^4")
            for s in (0, 1)
        ],
        {},
    )
    assert (
        "| setting | lam | gamma | digits FID | classes reached | spectral distance (dB) " in norm
    )
    assert "| L^4 |  |  | 80.5 ± 6.4 | 10.0 ± 0.0 | 3.0 ± 0.0 | 1.5 ± 6.4 | 1.5 ± 6.4 |" in norm


def test_reports_read_the_metric_of_their_data_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """One code path for every data set: a record of another data set is reported with its
    own metric key, labels and preset."""
    other = _options.DataSet(
        "other", "other-preset", "metric/other_fid", "metric/other_classes", "other FID",
        "other metric", "the others", "Others",
    )  # fmt: skip
    monkeypatch.setitem(_options.DATASETS, "other", other)
    runs = []
    for name, fids in (("WGAN-GP", (40.0, 50.0)), ("L^4", (30.0, 41.0))):
        for seed, fid in enumerate(fids):
            evals = [
                {"step": 0, "seconds": 0.0, "metric/other_fid": fid, "metric/other_classes": 7}
            ]
            runs.append(Run(name=name, seed=seed, seconds=1.0, evals=evals, steps=1))
    text = norm_study.report(runs, {"data": "other", "eval_samples": 10})
    assert text.startswith("# Norm study on the others")
    assert "Preset `other-preset`" in text and "other metric on 10 samples" in text
    assert "| setting | lam | gamma | other FID | classes reached |" in text
    half = scipy.stats.t.ppf(0.975, 1) * scipy.stats.sem([30.0, 41.0])
    assert f"| L^4 |  |  | 35.5 ± {half:.1f} | 7.0 ± 0.0 |" in text
    assert "## other FID: difference to WGAN-GP, paired by seed (lower is better)" in text
    race_text = method_race.report(runs, {"data": "other", "methods": {}})
    assert "WGAN-GP ends at other FID 45.0" in race_text


def test_pairs_against_several_references_are_named_and_corrected_together() -> None:
    runs = race(
        {
            "a": [[(0, 0, 9.0), (1, 1.0, f)] for f in (10.0, 12.0, 11.0)],
            "a control": [[(0, 0, 9.0), (1, 1.0, f)] for f in (14.0, 15.0, 15.5)],
            "b": [[(0, 0, 9.0), (1, 1.0, f)] for f in (20.0, 21.0, 22.0)],
            "b control": [[(0, 0, 9.0), (1, 1.0, f)] for f in (20.5, 20.0, 23.0)],
        }
    )
    groups = _stats.by_name(runs)
    pairs = [("a", "a control"), ("b", "b control")]
    lines = _stats.pairs_table(groups, DIGITS.quality, pairs, "what the norm buys", "recipe")
    p = [scipy.stats.ttest_rel(x, y).pvalue for x, y in (
        ((10.0, 12.0, 11.0), (14.0, 15.0, 15.5)), ((20.0, 21.0, 22.0), (20.5, 20.0, 23.0))
    )]  # fmt: skip
    assert lines[2] == "| recipe | difference | p (paired t-test) | p (Holm) | significant at 5 % |"
    assert lines[4].startswith("| a - a control | -3.83 ± ")
    assert f"| {p[0]:.3g} | {_stats.holm(p)[0]:.3g} |" in lines[4]
    assert lines[5].startswith("| b - b control | -0.17 ± ")
    assert _stats.verdict(2.0, 0.01, "signed") == "yes, higher"
    assert _stats.verdict(-2.0, 0.01, "signed") == "yes, lower"
    assert _stats.verdict(-2.0, 0.2, "signed") == "no"


def test_a_common_wall_clock_budget_gives_cheap_methods_more_steps() -> None:
    probe = _study.Probe(build=0.0, iteration=9.0, evaluation=0.0, cpu=0.2)
    probes = {"WGAN-GP": probe, "c-transform": _study.Probe(0.0, 9.0, 0.05, 0.0)}
    wall = _study.plan_steps(500, probes, "WGAN-GP", "wall")
    assert wall == {"WGAN-GP": 500, "c-transform": 2000}
    steps = _study.plan_steps(500, probes, "WGAN-GP", "steps")
    assert steps == {"WGAN-GP": 500, "c-transform": 500}


def test_every_race_method_is_a_valid_run_of_the_preset() -> None:
    from lipreg.train.objectives import method_problems

    for overrides, _ in method_race.METHODS.values():
        config = _options.base_config(**overrides)
        assert method_problems(config) == [], overrides
    for overrides in norm_study.settings().values():
        assert method_problems(_options.base_config(**overrides)) == []


# ---- the tuned race and the derivative-free race ----------------------------------------


def test_the_tuned_grid_covers_the_schedules_and_every_one_is_a_valid_run() -> None:
    from lipreg.train.objectives import method_problems

    catalogue = tuned_race.catalogue(quick=False, chosen=None)
    assert set(catalogue) == set(tuned_race.MAIN) | set(method_race.DERIVATIVE_FREE)
    for method, overrides in catalogue.items():
        schedules = tuned_race.grid(overrides, rates=(1.0, 2.0))
        penalised = overrides.get("penalty", "gp") != "none"
        # lazy {1, 4, 8, 16} and a quarter of the batch at every step, x 3 x 2
        assert len(schedules) == (30 if penalised else 6), method
        assert tuned_race.grid(overrides) == [s for s in schedules if s.lr_scale == 1.0]
        assert len(set(schedules)) == len(schedules)
        assert {s.n_critic for s in schedules} == {1, 2, 5}
        assert {s.lr_scale for s in schedules} == {1.0, 2.0}
        assert {s.lazy_every for s in schedules} == ({1, 4, 8, 16} if penalised else {1})
        fractions = {
            (s.lazy_every, s.penalty_fraction) for s in schedules if s.penalty_fraction < 1
        }
        assert fractions == ({(1, 0.25)} if penalised else set())
        for schedule in schedules:
            config = tuned_race.configure("digits", overrides, schedule)
            assert method_problems(config) == [], (method, schedule)
            assert config.lr == pytest.approx(2e-4 * schedule.lr_scale)
            assert config.penalty_fraction == schedule.penalty_fraction
    assert tuned_race.PUBLISHED in tuned_race.grid(tuned_race.MAIN["WGAN-GP"])
    published = tuned_race.configure("digits", tuned_race.MAIN["WGAN-GP"], tuned_race.PUBLISHED)
    assert (published.n_critic, published.lazy_every, published.norm) == (5, 1, "l2")


def test_the_tuned_race_reports_every_finalist_its_control_and_the_published_wgan_gp() -> None:
    s = tuned_race.Schedule
    finalists = {"WGAN-GP": s(2, 8), "BWGAN W^{-3/2,2}": s(2, 8), "SN (power)": s(1, 1, 2.0)}
    settings, controls = tuned_race.reported(finalists)
    assert list(settings) == [
        "WGAN-GP [n_critic 2, lazy 8, lr x1]",
        "BWGAN W^{-3/2,2} [n_critic 2, lazy 8, lr x1]",
        "SN (power) [n_critic 1, lazy 1, lr x2]",
        "WGAN-GP [n_critic 1, lazy 1, lr x2]",
        "WGAN-GP [n_critic 5, lazy 1, lr x1]",
    ]
    assert controls == {
        "BWGAN W^{-3/2,2} [n_critic 2, lazy 8, lr x1]": "WGAN-GP [n_critic 2, lazy 8, lr x1]",
        "SN (power) [n_critic 1, lazy 1, lr x2]": "WGAN-GP [n_critic 1, lazy 1, lr x2]",
    }
    settings, controls = tuned_race.reported({"WGAN-GP": tuned_race.PUBLISHED})
    assert list(settings) == ["WGAN-GP [n_critic 5, lazy 1, lr x1]"] and controls == {}


def test_the_tuned_race_estimate_adds_its_stages() -> None:
    probe = _study.Probe(build=2.0, iteration=0.2, cpu=0.1, evaluation=1.0)
    counts = {"grid": 10, "rung1": 4, "report": 3}
    stages = dict(tuned_race.estimate(counts, probe, 50.0, 0.25, 16, 5, workers=2))
    t, fair = tuned_race.SELECTION_TIMING, _study.Timing()
    assert stages["timing the grid"] == pytest.approx(10 * (2.0 + 0.1 * 6) / 120)
    assert t.warmup + t.iterations == 6 and fair.rounds == 2
    prefix = 2.0 + 12.5 + 1.0
    assert stages["selection, seed 100"] == pytest.approx(10 * prefix / 120)
    assert stages["selection, the best on 2 more seeds"] == pytest.approx(4 * prefix / 120)
    assert stages["timing the reported settings"] == pytest.approx(3 * (2 * 3.9 + 1.0) / 120)
    assert stages["report, 5 seeds"] == pytest.approx(3 * 5 * (2.0 + 50.0 + 17.0) / 120)


FAST = "BWGAN W^{-3/2,2} [n_critic 2, lazy 8, lr x1]"


def tuned(fids: dict[str, list[list[tuple[int, float, float]]]]) -> tuple[list[Run], dict]:
    runs = race(fids)
    s = tuned_race.Schedule
    meta = {
        "published": "WGAN-GP [n_critic 5, lazy 1, lr x1]",
        "finalists": {"BWGAN W^{-3/2,2}": dataclasses.asdict(s(2, 8))},
        "controls": {
            "BWGAN W^{-3/2,2} [n_critic 2, lazy 8, lr x1]": "WGAN-GP [n_critic 2, lazy 8, lr x1]"
        },
        "selection": {
            "BWGAN W^{-3/2,2}": {
                "tried": 24,
                "ranking": [["n_critic 2, lazy 8, lr x1", [30.0, 31.5, 29.0]]],
                "finalist": dataclasses.asdict(s(2, 8)),
            }
        },
        "budget": 100.0,
        "steps": 500,
    }
    return runs, meta


def test_the_tuned_race_measures_each_seed_against_the_published_wgan_gp_of_that_seed() -> None:
    published = [[(0, 0, 900.0), (250, 50.0, 45.0), (500, 100.0, f)] for f in (40.0, 50.0, 45.0)]
    # reaches each seed's published final FID (40, 50, 45) at 20, 20 and 30 s
    fast = [
        [(0, 0, 900.0), (100, 20.0, 39.0), (500, 100.0, 25.0)],
        [(0, 0, 900.0), (100, 20.0, 49.0), (500, 100.0, 30.0)],
        [(0, 0, 900.0), (100, 20.0, 46.0), (150, 30.0, 44.0), (500, 100.0, 28.0)],
    ]
    control = [[(0, 0, 900.0), (500, 100.0, f)] for f in (30.0, 36.0, 31.0)]
    runs, meta = tuned(
        {
            "WGAN-GP [n_critic 5, lazy 1, lr x1]": published,
            "BWGAN W^{-3/2,2} [n_critic 2, lazy 8, lr x1]": fast,
            "WGAN-GP [n_critic 2, lazy 8, lr x1]": control,
        }
    )
    text = tuned_race.report(runs, meta)
    assert "**Goal 1** (the published WGAN-GP's final digits FID in every seed within 0.25x" in text
    assert (
        "not met. The best finalist is BWGAN W^{-3/2,2} [n_critic 2, lazy 8, lr x1]: 2/3 " in text
    )
    assert f"{(0.2 + 0.2 + 0.3) / 3:.2f}x of the published time on average" in text
    assert "**Goal 2** (high-frequency excess): not measured in this record." in text
    d = [-5.0, -6.0, -3.0]  # finalist - control
    half = _stats.mean_ci(d)[1]
    assert f"final digits FID {_stats.fmt(-14 / 3, half, 2)}" in text
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| BWGAN W^{-3/2,2} [n_critic 2, lazy 8, lr x1] | 500 |")
    )
    assert row.endswith("| 23 ± 14 s (3/3) | 2/3 |")  # 20, 20, 30 s; within 25 s: two
    times = [20.0 - 100.0, 20.0 - 100.0, 30.0 - 100.0]  # the published reaches at its end
    p = scipy.stats.ttest_1samp(times, 0.0).pvalue
    table = text[text.index("## seconds to the published WGAN-GP's final FID: difference") :]
    diff = _stats.fmt(-230 / 3, _stats.mean_ci(times)[1], 2)
    assert f"| {FAST} | {diff} | {p:.3g} |" in table
    schedule = "n_critic 2, lazy 8, lr x1"
    assert f"| BWGAN W^{{-3/2,2}} | 24 | {schedule} | {schedule}: 30.0, 31.5, 29.0 |" in text
    assert "## what the method buys on its schedule: digits FID, finalist - control" in text


def test_the_tuned_race_states_the_high_frequency_goal_when_measured() -> None:
    published = [[(0, 0, 900.0), (500, 100.0, f)] for f in (40.0, 50.0, 45.0)]
    fast = [[(0, 0, 900.0), (100, 20.0, f - 10), (500, 100.0, f - 20)] for f in (40.0, 50.0, 45.0)]
    runs, meta = tuned(
        {
            "WGAN-GP [n_critic 5, lazy 1, lr x1]": published,
            "BWGAN W^{-3/2,2} [n_critic 2, lazy 8, lr x1]": fast,
            "WGAN-GP [n_critic 2, lazy 8, lr x1]": published,
        }
    )
    for run, excess in zip(runs, (1.0, 2.0, 1.5, 4.0, 5.5, 4.5, 1.0, 2.0, 1.5), strict=True):
        spectral(run, excess, 2.0)
    text = tuned_race.report(runs, meta)
    assert "within 0.25x its training time): met." in text
    half = _stats.mean_ci([3.0, 3.5, 3.0])[1]
    goal = "**Goal 2** (no more high-frequency excess than the published WGAN-GP): not met: "
    assert f"{goal}{FAST} differs by {_stats.fmt(19 / 6, half, 2)} dB" in text


def test_the_derivative_free_race_pairs_each_penalty_with_its_exact_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the whole script in this process, with one of its pairs (approx R1 against
    R1) to keep it short."""
    assert set(dfree_race.pairs()) == {"approx R1", "approx R2", "approx R1+R2"}
    one = {"approx R1": method_race.DERIVATIVE_FREE["approx R1"]}
    monkeypatch.setattr(method_race, "DERIVATIVE_FREE", one)
    assert dfree_race.main(["--quick", "--out", str(tmp_path)]) == 0
    runs, meta = _records.load_runs(tmp_path / "dfree_race.json")
    assert meta["pairs"] == {"approx R1": "R1"} and meta["budget"] == "steps"
    assert meta["methods"]["approx R1"]["penalty"] == "approx-r1"
    assert sorted({(r.name, r.seed) for r in runs}) == [
        ("R1", 0), ("R1", 1), ("approx R1", 0), ("approx R1", 1)
    ]  # fmt: skip
    text = (tmp_path / "dfree_race.md").read_text()
    groups = _stats.by_name(runs)
    ratios = dfree_race.step_ratios(groups, "approx R1", "R1")
    assert len(ratios) == 2 and all(r > 0 for r in ratios)
    d, half, _ = _stats.compare(groups, FID, [("approx R1", "R1")])["approx R1", "R1"]
    goal = "met" if d - half <= 0 else "not met"
    ratio = _stats.fmt(*_stats.mean_ci(ratios), 2)
    assert f"| approx R1 - R1 | {ratio} | {_stats.fmt(d, half, 2)} | {goal} |" in text
    assert "## digits FID: derivative-free - exact, paired by seed (lower is better)" in text
    assert _records.generators_path(tmp_path / "dfree_race.json").exists()


def test_the_stability_watch_leaves_training_unchanged_and_reports_the_exact_value(
    tmp_path: Path,
) -> None:
    """A watched run trains bit for bit as an unwatched one (the watch draws no random numbers
    and touches no parameter gradient), logs the exact mean squared input gradient at the
    step's fakes and reals, and the script's report lists every seed of both settings."""
    _, overrides, _ = dfree_race.pairs()[dfree_stability.APPROX]
    config = _options.base_config("digits", **_options.study_overrides(2, 2, True), **overrides)
    plain = _study.train(_study.Job("approx R2", 0, config))
    watched = _study.train(_study.Job("approx R2", 0, config, setup=dfree_stability.watch))
    assert plain.generator is not None and watched.generator is not None
    for key, value in plain.generator["state"].items():
        assert torch.equal(value, watched.generator["state"][key]), key
    row = watched.train[-1]
    assert row[dfree_stability.AT_FAKE] > 0 and row[dfree_stability.AT_REAL] > 0
    assert dfree_stability.AT_FAKE not in plain.train[-1]
    assert dfree_stability.estimate_ratios(watched) == [
        r["dual_squared_mean"] / r[dfree_stability.AT_FAKE] for r in watched.train
    ]

    assert dfree_stability.main(["--quick", "--out", str(tmp_path)]) == 0
    runs, meta = _records.load_runs(tmp_path / "dfree_stability.json")
    assert (meta["data"], meta["steps"], meta["seeds"]) == ("digits", 2, 2)
    assert sorted((r.name, r.seed) for r in runs) == [
        ("R2", 0), ("R2", 1), ("approx R2", 0), ("approx R2", 1)
    ]  # fmt: skip
    text = (tmp_path / "dfree_stability.md").read_text()
    for run in runs:
        cell = f"{run.final(FID):.1f}"
        assert f"| {run.seed} |" in text and cell in text
    assert all(dfree_stability.AT_FAKE in row for r in runs for row in r.train)


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
    for name, changes in rows.items():
        argv = [] if changes == "none (the preset)" else shlex.split(changes.strip("`"))
        assert all(not a.startswith("`") for a in argv), (name, changes)
        command = parse_command(["--preset", DIGITS.preset, *argv])
        race = _options.base_config(**method_race.METHODS[name][0])
        quiet = ("tensorboard", "progress", "checkpoint_every", "inception")  # the study's own
        asked = dataclasses.replace(command.config, **{k: getattr(race, k) for k in quiet})
        assert asked == race, name


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
        (
            "norm_study.py",
            "norm_study",
            ["norm_study_lp.png", "norm_study_samples.png", "norm_study_sobolev.png"],
            13,
        ),
        ("method_race.py", "method_race", ["method_race.png", "method_race_samples.png"], 14),
        ("gamma_parametrisation.py", "gamma_parametrisation", ["gamma_parametrisation.png"], 3),
        ("tuned_race.py", "tuned_race", ["tuned_race.png", "tuned_race_samples.png"], 5),
    ],
)
def test_scripts_run_quick_keep_their_generators_and_redraw_from_their_json(
    tmp_path: Path, script: str, stem: str, pictures: list[str], runs: int
) -> None:
    done = run_script(script, "--quick", "--out", str(tmp_path))
    assert "estimated duration:" in done.stdout and "machine:" in done.stdout
    record = json.loads((tmp_path / f"{stem}.json").read_text())
    assert len(record["runs"]) == 2 * runs  # every setting, two seeds
    assert record["meta"]["machine"] and record["meta"]["command"].endswith(
        "--out " + str(tmp_path)
    )
    assert record["meta"]["data"] == "digits"
    kept = _records.load_generators(tmp_path / f"{stem}_generators.pt")
    assert sorted(kept) == sorted((r["name"], r["seed"]) for r in record["runs"])
    for generator in kept.values():
        assert generator["config"]["seed"] in (0, 1)
        assert {t.dtype for t in generator["state"].values()} == {torch.float16, torch.int64}
    if script in ("method_race.py", "tuned_race.py") and any(
        _stats.HF_EXCESS.key in r["evals"][-1] for r in record["runs"]
    ):
        pictures = sorted([*pictures, f"{stem}_spectral.png"])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == pictures
    table = (tmp_path / f"{stem}.md").read_text()
    for path in [tmp_path / f"{stem}.md", *(tmp_path / p for p in pictures)]:
        path.unlink()
    again = run_script(script, "--redraw", "--out", str(tmp_path))
    assert "estimated duration:" not in again.stdout  # nothing trained
    assert (tmp_path / f"{stem}.md").read_text() == table
    assert sorted(p.name for p in tmp_path.glob("*.png")) == pictures
    if script == "norm_study.py":  # the samples figure: the kept generators' own samples
        saved = tmp_path / f"{stem}.json"
        runs_, _ = _records.load_runs(saved)
        name, seed = norm_study.BASELINE, 0
        fake, real = _samples.generated(kept[name, seed])
        assert fake.shape == real.shape == (_samples.COUNT, 1, 16, 16)
        assert torch.equal(fake, _samples.generated(kept[name, seed])[0])  # the fixed noise
        from lipreg.train.data import load_dataset

        digits = load_dataset("digits-test", image_size=16, seed=seed)
        assert torch.equal(real, digits.take(torch.arange(_samples.COUNT)))
        assert _samples.draw(saved, runs_, DIGITS, ["not run"], tmp_path / "x.png") is None
        with pytest.raises(ValueError, match="lacks the generators of"):
            _samples.draw(saved, [*runs_, Run("extra", 0, 1.0, [])], DIGITS, ["extra"],
                          tmp_path / "x.png")  # fmt: skip
        (tmp_path / f"{stem}_generators.pt").unlink()
        assert _samples.draw(saved, runs_, DIGITS, [name], tmp_path / "x.png") is None
        assert not (tmp_path / "x.png").exists()
    if script == "method_race.py":  # another threshold, from the same runs
        assert "| time to FID <= 100 |" in table
        done = run_script(script, "--redraw", "--out", str(tmp_path), "--fid-threshold", "900")
        assert "| time to FID <= 900 |" in (tmp_path / f"{stem}.md").read_text()
        # the record keeps the threshold its tables now show, and nothing else changes
        again = json.loads((tmp_path / f"{stem}.json").read_text())
        assert again["meta"] == {**record["meta"], "fid_threshold": 900.0}
        assert again["runs"] == record["runs"]
        assert f"wrote {tmp_path / stem}.json" in done.stdout
        runs_, meta_ = _records.load_runs(tmp_path / f"{stem}.json")
        assert method_race.report(runs_, meta_) == (tmp_path / f"{stem}.md").read_text()
        done = run_script(script, "--redraw", "--out", str(tmp_path))  # nothing to save
        assert f"{stem}.json" not in done.stdout.splitlines()[-1]
    if script in ("method_race.py", "tuned_race.py"):
        # a rerun from the saved plan trains the same steps without timing anything
        replay = tmp_path / "replay"
        plan = str(tmp_path / f"{stem}.json")
        done = run_script(script, "--quick", "--out", str(replay), "--plan", plan)
        assert "timed " not in done.stdout
        again = json.loads((replay / f"{stem}.json").read_text())
        assert again["meta"]["plan"] == record["meta"]["plan"]
        assert [r["steps"] for r in again["runs"]] == [r["steps"] for r in record["runs"]]
    if script == "method_race.py":  # a subset of the methods, always with the baseline
        subset = tmp_path / "subset"
        run_script(script, "--quick", "--out", str(subset), "--methods", "R2")
        chosen = json.loads((subset / f"{stem}.json").read_text())
        assert {r["name"] for r in chosen["runs"]} == {method_race.BASELINE, "R2"}
        assert set(chosen["meta"]["methods"]) == {method_race.BASELINE, "R2"}
    if script == "gamma_parametrisation.py":  # the kept generators scored again
        (tmp_path / f"{stem}.json").write_text(json.dumps(strip_final_metrics(record)))
        run_script(script, "--rescore", "--out", str(tmp_path))
        rescored = json.loads((tmp_path / f"{stem}.json").read_text())
        assert rescored["meta"]["rescored"]["keys"] == sorted(
            k for k in record["runs"][0]["evals"][-1] if k.startswith("metric/")
        )
        for old, new in zip(record["runs"], rescored["runs"], strict=True):
            assert new["evals"][:-1] == old["evals"][:-1]  # earlier rows as trained
            fid = old["evals"][-1][FID]
            assert new["evals"][-1][FID] == pytest.approx(fid, rel=_records.FID_TOLERANCE)
            assert new["evals"][-1][CLASSES] == old["evals"][-1][CLASSES]


@pytest.mark.slow
def test_the_precision_measurement_rescoring_float32_reproduces_every_run() -> None:
    done = run_script("kept_precision.py", "--quick")
    assert "largest |FID difference|: float32 0, float16 " in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 0 | digits_fid |")]
    assert len(rows) == 1 and rows[0].split(" | ")[3] == "+0"  # float32 - recorded


def strip_final_metrics(record: dict) -> dict:
    """``record`` with its runs' final evaluations reduced to the step and the seconds, as if
    their metrics had not existed when they trained."""
    out = json.loads(json.dumps(record))
    for run in out["runs"]:
        run["evals"][-1] = {k: run["evals"][-1][k] for k in ("step", "seconds")}
    return out


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
    (tuned_race, "tuned-race", "tuned_race", "studies.md"),
    (dfree_race, "dfree", "dfree_race", "regularizers/without-double-backward.md"),
    (
        dfree_stability,
        "dfree-stability",
        "dfree_stability",
        "regularizers/without-double-backward.md",
    ),
]
KEPT_RUNS = [(data, *kept) for data in _options.DATASETS for kept in KEPT]
KEPT_IDS = [f"{data}-{kept[1]}" for data, *kept in KEPT_RUNS]


@pytest.mark.parametrize(("data", "script", "folder", "stem", "page"), KEPT_RUNS, ids=KEPT_IDS)
def test_kept_results_give_the_tables_the_docs_show(
    data: str, script: object, folder: str, stem: str, page: str | None
) -> None:
    """The docs' numbers come from the kept runs: their report, rebuilt from the JSON, is the
    kept Markdown, and every table row of it stands on the page."""
    kept = ROOT / "benchmarks" / "results" / data / folder
    if not (kept / f"{stem}.json").exists():
        pytest.skip(f"no kept runs in {kept}")
    runs, meta = _records.load_runs(kept / f"{stem}.json")
    assert _options.dataset_of(meta).name == data
    text = script.report(runs, meta)  # type: ignore[attr-defined]
    assert text == (kept / f"{stem}.md").read_text()
    if page is None:
        return
    shown = (ROOT / "docs" / page).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    if "| method | settings and source |" in rows:  # the page lists them with CLI spellings
        rows = rows[: rows.index("| method | settings and source |")]
    missing = [row for row in rows if row not in shown]
    assert not missing, f"docs/{page} lacks rows of {stem}.md: {missing[:3]}"


@pytest.mark.parametrize(("data", "script", "folder", "stem", "page"), KEPT_RUNS, ids=KEPT_IDS)
def test_kept_generators_reproduce_their_recorded_metrics(
    data: str, script: object, folder: str, stem: str, page: str | None
) -> None:
    """The first kept generator of each study, scored again as its run evaluated it, gives
    the recorded final metrics (within the float16 tolerance for the FID-like metric)."""
    saved = ROOT / "benchmarks" / "results" / data / folder / f"{stem}.json"
    path = _records.generators_path(saved)
    if not path.exists():
        pytest.skip(f"no kept generators {path}")
    if data == "fashion-mnist":  # its metric scores against the test split, which no test needs
        from lipreg.train.data.fashion_mnist import find_fashion_mnist

        try:
            find_fashion_mnist(None, "test")
        except FileNotFoundError:
            pytest.skip("Fashion-MNIST's test split is not installed")
    runs, meta = _records.load_runs(saved)
    kept = _records.load_generators(path)
    assert sorted(kept) == sorted((r.name, r.seed) for r in runs)
    run = runs[0]
    scores = _study.score(kept[run.name, run.seed])
    quality = _options.dataset_of(meta)
    assert scores[quality.fid] == pytest.approx(run.final(quality.fid), rel=_records.FID_TOLERANCE)
    assert scores[quality.classes] == run.final(quality.classes)


def test_side_by_side_puts_each_data_sets_paired_differences_in_one_table() -> None:
    """Per setting and data set: the paired difference to WGAN-GP of that data set's own
    FID-like metric (and the excess where measured), * where Holm keeps it significant, and
    'not run' where a data set lacks the setting."""

    def run(name: str, seed: int, key: str, value: float, excess: float | None) -> Run:
        row = {"step": 1, "seconds": 1.0, key: value}
        if excess is not None:
            row[_stats.HF_EXCESS.key] = excess
        return Run(name=name, seed=seed, seconds=1.0, evals=[row], steps=1)

    digits = [run("WGAN-GP", s, FID, 40.0 + s, 16.0) for s in range(3)]
    digits += [run("A", s, FID, 30.0 + s + 0.1 * s * s, 19.0 + 0.01 * s) for s in range(3)]
    digits += [run("B", s, FID, 40.0 + 3 * s, 16.0) for s in range(3)]
    fashion = [run("WGAN-GP", s, FASHION.fid, 300.0 + s, None) for s in range(3)]
    fashion += [run("A", s, FASHION.fid, 290.0 + 2 * s, None) for s in range(3)]
    fashion += [run("C", s, FASHION.fid, 300.0 + s * s, None) for s in range(3)]
    lines = side_by_side.table(
        {"digits": (digits, {"data": "digits"}), "fashion": (fashion, {"data": "fashion-mnist"})}
    )
    assert lines[0] == "| setting | digits FID | excess (dB), digits | Fashion-MNIST FID |"
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[2:]}
    assert list(rows) == ["A", "B", "C"]
    # A - WGAN-GP on the digits: -10, -9.9, -9.6 (two comparisons, Holm): by hand
    diff, half, p = _stats.paired([30.0, 31.1, 32.4], [40.0, 41.0, 42.0])
    assert rows["A"][0] == _stats.fmt(diff, half, 2) + ("*" if min(1.0, 2 * p) <= 0.05 else "")
    assert rows["A"][1].startswith("3.01 ± ") and rows["A"][1].endswith("*")  # 3.00, 3.01, 3.02
    assert rows["B"][1] == "0.00 ± 0.00" and rows["B"][2] == "not run |"
    assert rows["C"][:2] == ["not run", "not run"]
    # Fashion-MNIST: A -10, -9, -8 (p 0.004, Holm 0.008 of two); C 0, 0, 2 (p 0.42)
    assert rows["A"][2] == "-9.00 ± 2.48* |" and rows["C"][2] == "0.67 ± 2.87 |"


def test_the_studies_page_shows_the_kept_studies_side_by_side() -> None:
    shown = (ROOT / "docs" / "studies.md").read_text()
    studies = {study: side_by_side.kept(study) for study in side_by_side.STUDIES}
    both = {study: records for study, records in studies.items() if len(records) > 1}
    if not both:
        pytest.skip("no study is kept for more than one data set")
    for study, records in both.items():
        missing = [row for row in side_by_side.table(records) if row not in shown]
        assert not missing, f"docs/studies.md lacks rows of the side-by-side {study}: {missing}"


def test_every_race_method_is_drawn_in_exactly_one_panel() -> None:
    for name, (overrides, _) in method_race.METHODS.items():
        assert sum(shows(overrides) for shows in method_race.PANELS.values()) == 1, name
