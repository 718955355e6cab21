"""Statistics and Markdown tables of the quality studies: intervals over seeds, differences
paired by seed with Holm's correction, times to a threshold, and the metrics a report shows.

A run's record is a :class:`_records.Run`; a *metric* (:class:`Metric`) is a key of its
evaluation rows with how to read it. Every table here is computed from the final evaluation
rows and the evaluation histories alone, so that a kept record redraws it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from _records import Run

# ---- metrics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """An evaluation key and how a report reads it."""

    key: str  #: e.g. "metric/digits_fid"
    label: str  #: e.g. "digits FID"
    #: "lower" or "higher" is better, or "signed": a signed quantity whose sign says which way
    #: it departs from real images (a paired difference then says higher or lower, not better)
    better: str
    #: how to read a paired difference, e.g. "lower is better" (default from ``better``)
    reading: str = ""

    def how(self) -> str:
        """How to read a paired difference of this metric."""
        return self.reading or f"{self.better} is better"


SPECTRAL_DISTANCE = Metric("metric/spectral_distance", "spectral distance (dB)", "lower")
SPECTRAL_HF_DISTANCE = Metric(
    "metric/spectral_hf_distance", "high-frequency spectral distance (dB)", "lower"
)
HF_EXCESS = Metric(
    "metric/spectral_hf_excess",
    "high-frequency excess (dB)",
    "signed",
    "+ is more high-frequency power than the reference",
)
SPECTRAL = (SPECTRAL_DISTANCE, SPECTRAL_HF_DISTANCE, HF_EXCESS)
"""The spectral metric's keys (issue 18): distances between the radially averaged log power
spectra of samples and of held-out real images, overall and over the upper half of the
frequencies, and the signed excess of high-frequency power (+: more than real images, i.e.
noise; -: less, i.e. blur)."""


def present(runs: Sequence[Run], metrics: Sequence[Metric]) -> list[Metric]:
    """The ``metrics`` that some run's final evaluation holds (a record written before a
    metric existed shows none of its columns; a run lacking it reads as not finite)."""
    return [m for m in metrics if any(m.key in r.evals[-1] for r in runs)]


# ---- intervals and tests ------------------------------------------------------------------


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its two-sided 95 % Student-t interval (``nan`` for one value)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan
    return mean, t975(n - 1) * statistics.stdev(values) / math.sqrt(n)


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean of ``a - b`` over seeds, the half-width of its 95 % interval and the two-sided
    p-value of the paired t-test (``nan`` when the differences do not vary: no test)."""
    from scipy.stats import ttest_rel

    diff = [x - y for x, y in zip(a, b, strict=True)]
    mean, half = mean_ci(diff)
    p = float(ttest_rel(a, b).pvalue) if len(diff) > 1 and statistics.stdev(diff) > 0 else math.nan
    return mean, half, p


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` for multiple comparisons: with the ``m``
    finite p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``; a hypothesis is rejected at level alpha when
    its adjusted p-value is at most alpha, which bounds the chance of any false rejection
    among the ``m`` by alpha. ``nan`` (no test) stays ``nan`` and does not count in ``m``."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(tested)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for j, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - j) * p))
        adjusted[i] = running
    return adjusted


# ---- histories ----------------------------------------------------------------------------


def time_to(run: Run, key: str, threshold: float) -> float | None:
    """Training seconds at ``run``'s first evaluation with ``key`` at or below
    ``threshold``, or None if no evaluation reaches it."""
    for row in run.evals:
        if row.get(key, math.nan) <= threshold:
            return row["seconds"]
    return None


def by_name(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """The runs grouped by setting, in order of first appearance, each sorted by seed."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    return {name: sorted(group, key=lambda r: r.seed) for name, group in groups.items()}


def by_step(runs: Sequence[Run], key: str) -> list[tuple[float, float, float]]:
    """``(mean seconds, mean key, half-width of key's 95 % interval)`` at each evaluation
    step that every run of ``runs`` (one setting's seeds) made, in order."""
    steps = sorted(set.intersection(*({row["step"] for row in r.evals} for r in runs)))
    out = []
    for step in steps:
        rows = [next(row for row in r.evals if row["step"] == step) for r in runs]
        seconds = statistics.fmean(row["seconds"] for row in rows)
        mean, half = mean_ci([row[key] for row in rows])
        out.append((seconds, mean, half))
    return out


def budgets(groups: dict[str, list[Run]], reference: str) -> dict[str, float]:
    """Every setting's mean training seconds over its seeds relative to ``reference``'s:
    the budget each achieved (1.0 for the reference)."""
    base = statistics.fmean(r.seconds for r in groups[reference])
    return {name: statistics.fmean(r.seconds for r in runs) / base for name, runs in groups.items()}


# ---- cells --------------------------------------------------------------------------------


def fmt(mean: float, half: float, digits: int = 1) -> str:
    """``mean ± half`` (just the mean without an interval)."""
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def cell(values: Sequence[float]) -> str:
    """Mean ± 95 % half-width over the finite values, and how many diverged."""
    ok = finite(values)
    if not ok:
        return f"diverged ({len(values)}/{len(values)})"
    text = fmt(*mean_ci(ok))
    return text if len(ok) == len(values) else f"{text} (diverged {len(values) - len(ok)})"


# ---- paired comparisons -------------------------------------------------------------------


Value = Callable[[Run], float]
"""What a paired comparison compares per run (by default a metric at the last evaluation)."""


def compare(
    groups: dict[str, list[Run]],
    key: str,
    pairs: Sequence[tuple[str, str]],
    value: Value | None = None,
) -> dict[tuple[str, str], tuple[float, float, float]]:
    """Per pair ``(setting, reference)``: the difference ``setting - reference`` in ``key``
    at the last evaluation (or in ``value`` of each run), paired by seed over the seeds both
    ended with finite values (mean, half-width, p-value; all ``nan`` below two pairs)."""
    of = value or (lambda r: r.final(key))
    out = {}
    for name, reference in pairs:
        base = {r.seed: of(r) for r in groups[reference]}
        values = [
            (of(r), base[r.seed])
            for r in groups[name]
            if r.seed in base and math.isfinite(of(r)) and math.isfinite(base[r.seed])
        ]
        if len(values) < 2:
            out[name, reference] = (math.nan, math.nan, math.nan)
            continue
        a, b = zip(*values, strict=True)
        out[name, reference] = paired(a, b)
    return out


def comparisons(
    groups: dict[str, list[Run]], key: str, baseline: str
) -> dict[str, tuple[float, float, float]]:
    """:func:`compare` of every setting but ``baseline`` with it, by setting."""
    pairs = [(name, baseline) for name in groups if name != baseline]
    return {name: diff for (name, _), diff in compare(groups, key, pairs).items()}


def verdict(diff: float, adjusted: float, better: str) -> str:
    """Whether a difference with Holm-adjusted p-value ``adjusted`` is significant at 5 %,
    and in which direction (``better`` is "lower", "higher" or "signed": then "higher" or
    "lower" without a judgement)."""
    if math.isnan(adjusted) or adjusted > 0.05:
        return "no"
    if better == "signed":
        return "yes, higher" if diff > 0 else "yes, lower"
    good = diff < 0 if better == "lower" else diff > 0
    return "yes, better" if good else "yes, worse"


def judged(
    groups: dict[str, list[Run]],
    metric: Metric,
    pairs: Sequence[tuple[str, str]],
    value: Value | None = None,
) -> dict[tuple[str, str], tuple[float, float, float, float, str]]:
    """Per pair ``(setting, reference)``: :func:`compare`'s difference in ``metric`` (mean,
    half-width, p-value), the p-value after Holm's correction across the pairs (one family)
    and :func:`verdict` at 5 %."""
    diffs = compare(groups, metric.key, pairs, value)
    adjusted = holm([p for _, _, p in diffs.values()])
    return {
        pair: (diff, half, p, a, verdict(diff, a, metric.better))
        for (pair, (diff, half, p)), a in zip(diffs.items(), adjusted, strict=True)
    }


def pairs_table(
    groups: dict[str, list[Run]],
    metric: Metric,
    pairs: Sequence[tuple[str, str]],
    title: str,
    label: str = "setting",
    value: Value | None = None,
) -> list[str]:
    """Markdown lines: the difference of every pair ``(setting, reference)`` in ``metric``
    at the last evaluation (or in ``value``), paired by seed, with its paired t-test and
    Holm's correction across the pairs (one family per metric), and the list of the
    significant ones. Pairs with one reference show the setting alone; otherwise
    ``setting - reference``."""
    judgements = judged(groups, metric, pairs, value)
    one = len({reference for _, reference in pairs}) <= 1

    def shown(pair: tuple[str, str]) -> str:
        return pair[0] if one else f"{pair[0]} - {pair[1]}"

    lines = [
        f"## {title} ({metric.how()})",
        "",
        f"| {label} | difference | p (paired t-test) | p (Holm) | significant at 5 % |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for pair, (diff, half, p, adjusted, said) in judgements.items():
        lines.append(
            f"| {shown(pair)} | {fmt(diff, half, 2)} | {p:.3g} | {adjusted:.3g} | {said} |"
        )
    significant = [shown(pair) for pair, (*_, said) in judgements.items() if said != "no"]
    return [
        *lines,
        "",
        f"Significant after Holm's correction across the {len(judgements)} comparisons: "
        + (", ".join(significant) if significant else "none")
        + ". (A p-value of nan: fewer than two pairs, or differences that do not vary.)",
    ]


def paired_table(groups: dict[str, list[Run]], metric: Metric, baseline: str) -> list[str]:
    """:func:`pairs_table` of every setting against ``baseline`` in ``metric``."""
    pairs = [(name, baseline) for name in groups if name != baseline]
    title = f"{metric.label}: difference to {baseline}, paired by seed"
    return pairs_table(groups, metric, pairs, title)
