"""Summaries of scores: per-metric means with 95 % confidence intervals (overall and per group),
file-by-file differences between two systems, and the text table ``dcu evaluate`` prints.

The result files ``dcu evaluate`` writes are :mod:`dcu.jobs.evaluate`'s.

Book: book/08_evaluation.ipynb
"""

from __future__ import annotations

import csv
import math

import numpy as np
from scipy.stats import t

from dcu.base.guard import shown, special_file
from dcu.metrics import METRICS

__all__ = ["summarize", "paired", "resolved_sign", "columns_to_rows", "group_by", "format_table",
           "finite"]


def summarize(rows, metrics=METRICS) -> dict:
    """Per metric: ``mean``, ``ci95`` (half-width, t-distribution) and ``n`` (finite values)."""
    out = {}
    for m in metrics:
        v = np.array([r[m] for r in rows], dtype=np.float64)
        v = v[np.isfinite(v)]
        n = int(v.size)
        mean = float(v.mean()) if n else math.nan
        ci = float(t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        out[m] = {"mean": mean, "ci95": ci, "n": n}
    return out


def paired(before, after, metrics=METRICS, key: str = "name") -> dict:
    """Per metric, the mean of ``after - before`` file by file, with its 95 % interval and ``n``
    (as :func:`summarize`): rows are matched on ``key``; a file only one side scored, or one
    whose value is undefined (``None`` or NaN) on either side, is left out of that metric."""
    def value(row, m):
        return math.nan if row.get(m) is None else float(row[m])

    earlier = {r[key]: r for r in before}
    diffs = [{m: value(r, m) - value(earlier[r[key]], m) for m in metrics}
             for r in after if r[key] in earlier]
    return summarize(diffs, metrics)


def resolved_sign(diff: dict) -> int:
    """+1 or -1 when the 95 % interval of a difference (``mean``, ``ci95``, as :func:`paired`
    returns per metric) lies wholly above or below 0; 0 when it includes 0 or is undefined."""
    mean, ci = (math.nan if diff[k] is None else float(diff[k]) for k in ("mean", "ci95"))
    if not (math.isfinite(mean) and math.isfinite(ci)) or abs(mean) <= ci:
        return 0
    return 1 if mean > 0 else -1


def columns_to_rows(files: dict, names: list, key: str = "name") -> list:
    """Per-file rows from per-metric columns (``{metric: [value per file]}``, the ``files`` of a
    ``dcu ablation`` run) in the order of ``names``, ready for :func:`paired` and :func:`summarize`.

    Raises:
        ValueError: a column does not hold one value per name.
    """
    for m, values in files.items():
        if len(values) != len(names):
            raise ValueError(f"column {m!r} holds {len(values)} values for {len(names)} files")
    return [{key: name, **{m: values[i] for m, values in files.items()}}
            for i, name in enumerate(names)]


def group_by(rows, table, column: str, key: str = "name") -> dict:
    """Summaries per value of ``column`` of a CSV ``table`` (e.g. ``snr_bin`` of
    data/splits/test.csv), joined to ``rows`` on ``key``: ``{value: summary}``."""
    if special_file(table):
        raise ValueError(f"{shown(table)}: is {special_file(table)}, not a CSV table; pass a file")
    with open(table, newline="") as fh:
        lookup = {r[key]: r[column] for r in csv.DictReader(fh)}
    groups: dict = {}
    for row in rows:
        if row["name"] in lookup:
            groups.setdefault(lookup[row["name"]], []).append(row)
    def order(value):
        try:
            return (0, float(value), "")
        except ValueError:
            return (1, 0.0, value)

    return {g: summarize(groups[g]) for g in sorted(groups, key=order)}


def format_table(summary: dict, title: str = "") -> str:
    """The summary as a text table: metric, mean, +-95% CI, n."""
    lines = [title] if title else []
    lines.append(f"{'metric':<8}{'mean':>9}{'±95% CI':>10}{'n':>6}")
    for m, s in summary.items():
        lines.append(f"{m:<8}{s['mean']:>9.3f}{'±' + format(s['ci95'], '.3f'):>10}{s['n']:>6}")
    return "\n".join(lines)


def finite(x):
    """``x`` ready for JSON: NaN and inf become None (null), inside dicts and lists too."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
