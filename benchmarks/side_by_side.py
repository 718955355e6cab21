"""One study on every data set, side by side: each setting's difference to WGAN-GP.

The norm study and the method race keep one record per data set
(``benchmarks/results/DATA/norm``, ``.../race``), each with its own tables. This script puts
their paired comparisons in one table, so that a reader sees at once whether what a setting
buys on the digits it also buys on Fashion-MNIST: per setting and data set, the difference to
WGAN-GP in the data set's FID-like metric and in the high-frequency excess, paired by seed
(mean ± 95 % t half-width), marked * when significant at 5 % after Holm's correction across
that study's comparisons (the same families as the study's own tables, so the marks agree
with them). A setting a data set did not run shows "not run".

    python benchmarks/side_by_side.py norm     # the norm study on the kept records
    python benchmarks/side_by_side.py race     # the method race
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _options
import _records
import _stats
from _records import Run
from _stats import HF_EXCESS, Metric

RESULTS = Path(__file__).resolve().parent / "results"
STUDIES = {"norm": "norm_study", "race": "method_race"}
"""The kept folder of each study and its record's stem."""
BASELINE = "WGAN-GP"


def significance(groups: dict[str, list[Run]], metric: Metric) -> dict[str, str]:
    """Per setting (not the baseline): its difference to the baseline in ``metric``, with
    * when Holm's correction across the study's comparisons keeps it significant at 5 %."""
    pairs = [(name, BASELINE) for name in groups if name != BASELINE]
    return {
        name: _stats.fmt(diff, half, 2) + ("" if said == "no" else "*")
        for (name, _), (diff, half, _, _, said) in _stats.judged(groups, metric, pairs).items()
    }


def table(records: dict[str, tuple[list[Run], dict[str, Any]]]) -> list[str]:
    """Markdown lines: one row per setting of any record (in the order of first appearance),
    per data set its FID-like and high-frequency-excess differences to WGAN-GP (the excess
    only where the runs measured it)."""
    columns: list[tuple[str, dict[str, str]]] = []
    names: list[str] = []
    for runs, meta in records.values():
        data = _options.dataset_of(meta)
        groups = _stats.by_name(runs)
        names += [n for n in groups if n != BASELINE and n not in names]
        for metric, title in ((data.quality, data.label), (HF_EXCESS, f"excess (dB), {data.name}")):
            if _stats.present(runs, [metric]):
                columns.append((title, significance(groups, metric)))
    lines = [
        "| setting | " + " | ".join(title for title, _ in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for name in names:
        cells = [cells.get(name, "not run") for _, cells in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def kept(study: str, root: Path = RESULTS) -> dict[str, tuple[list[Run], dict[str, Any]]]:
    """The kept records of ``study`` ("norm" or "race"), by data set, for every data set
    of ``_options.DATASETS`` that has one."""
    stem = STUDIES[study]
    found = {}
    for data in _options.DATASETS:
        path = root / data / study / f"{stem}.json"
        if path.exists():
            found[data] = _records.load_runs(path)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("study", choices=sorted(STUDIES), help="which study")
    p.add_argument(
        "--results", type=Path, default=RESULTS, help="the kept records' folder (%(default)s)"
    )
    args = p.parse_args(argv)
    records = kept(args.study, args.results)
    if not records:
        print(f"no kept {STUDIES[args.study]}.json under {args.results}/DATA/{args.study}")
        return 2
    print("\n".join(table(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
