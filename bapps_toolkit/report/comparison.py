"""The paired comparison A − B of an evaluation (``compare=(A, B)``) in each report format.

The records are ``table.attrs["comparisons"]`` (:mod:`bapps_toolkit.evaluate.compare`): one per
set and one for the 2AFC mean. Every format states the method: paired bootstrap over the same
items, the percentile interval and its inverted two-sided test, so ``p < alpha`` exactly when
the interval excludes 0.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..evaluate.compare import Comparison

__all__ = ["comparisons_of", "comparison_note", "comparison_markdown", "comparison_latex",
           "comparison_csv_rows", "format_p"]


def comparisons_of(table: Any) -> list[Comparison]:
    """The comparison records of ``table`` (empty without ``compare``)."""
    return list(getattr(table, "attrs", {}).get("comparisons") or [])


def format_p(p: float, n_boot: int) -> str:
    """``p`` with 3 significant digits; ``< 2/n`` for 0 (no resample reached 0)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "nan"
    if p == 0.0:
        return f"< {2 / max(int(n_boot), 1):.2g}"
    return f"{p:.3g}"


def _pts(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:+.1f}"


def _title(c: Comparison, column_title: Callable[[str, str, str], str]) -> str:
    return column_title(c["mode"], c["split"], c["category"])


def comparison_note(table: Any) -> str:
    """One sentence on what the comparison rows are."""
    cs = comparisons_of(table)
    alpha = cs[0]["alpha"] if cs else table.attrs.get("alpha", 0.05)
    return (f"Paired difference A − B (points x100) on the same items: {cs[0]['a'] if cs else 'A'} − "
            f"{cs[0]['b'] if cs else 'B'}; [{100 * (1 - alpha):.0f}% percentile bootstrap interval of the "
            f"paired resampled differences]; p = two-sided p-value of the same bootstrap (its inverted "
            f"test): p < {alpha:g} exactly when the interval excludes 0.")


def comparison_markdown(table: Any, column_title: Callable[[str, str, str], str],
                        order: Callable[[str, str, str], tuple[Any, ...]]) -> list[str]:
    """Lines of the Markdown comparison table (empty without comparisons)."""
    cs = sorted(comparisons_of(table), key=lambda c: order(c["mode"], c["split"], c["category"]))
    if not cs:
        return []
    a, b = cs[0]["label_a"].replace("|", "\\|"), cs[0]["label_b"].replace("|", "\\|")
    out = ["", f"#### Paired comparison: {a} − {b}", "", f"> {comparison_note(table)}", "",
           f"| set | n | {a} | {b} | A − B [CI] | p |", "|:---|---:|---:|---:|---:|---:|"]
    for c in cs:
        out.append(f"| {_title(c, column_title)} | {c['n']} | {100 * c['score_a']:.1f} | {100 * c['score_b']:.1f} "
                   f"| {_pts(c['diff'])} [{_pts(c['ci_low'])}, {_pts(c['ci_high'])}] "
                   f"| {format_p(c['p_value'], c['n_boot'])} |")
    return out


def comparison_latex(table: Any, column_title: Callable[[str, str, str], str],
                     order: Callable[[str, str, str], tuple[Any, ...]], escape: Callable[[str], str]) -> list[str]:
    """Lines of a LaTeX ``table`` environment with the comparison (empty without comparisons)."""
    cs = sorted(comparisons_of(table), key=lambda c: order(c["mode"], c["split"], c["category"]))
    if not cs:
        return []
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\caption{" + escape(comparison_note(table)) + "}",
             r"\label{tab:bapps-compare}", r"\begin{tabular}{lrrrrr}", r"\hline",
             " & ".join(["Set", "n", escape(cs[0]["label_a"]), escape(cs[0]["label_b"]), "A $-$ B", "p"]) + r" \\",
             r"\hline"]
    for c in cs:
        cells = [escape(_title(c, column_title)), str(c["n"]), f"{100 * c['score_a']:.1f}", f"{100 * c['score_b']:.1f}",
                 _pts(c["diff"]) + r"\,{\scriptsize[" + f"{_pts(c['ci_low'])}, {_pts(c['ci_high'])}" + "]}",
                 escape(format_p(c["p_value"], c["n_boot"]))]
        lines.append(" & ".join(cells) + r" \\")
    return lines + [r"\hline", r"\end{tabular}", r"\end{table}"]


def comparison_csv_rows(table: Any, columns: list[str]) -> pd.DataFrame:
    """The comparison as rows of the tidy CSV.

    The rows have ``metric = "A - B"``, ``score`` = the difference, ``ci_low``/``ci_high`` its
    interval, and an extra ``p_value`` column (empty on the other rows).
    """
    rows = []
    for c in comparisons_of(table):
        calibrated = bool(table[table.metric.isin([c["a"], c["b"]])].calibrated.all())
        rows.append(dict(metric=f"{c['a']} - {c['b']}", label=f"{c['label_a']} - {c['label_b']} (paired difference)",
                         calibrated=calibrated, mode=c["mode"], split=c["split"], category=c["category"], n=c["n"],
                         score=c["diff"], ci_low=c["ci_low"], ci_high=c["ci_high"], synthetic=c["synthetic"],
                         p_value=c["p_value"]))
    return pd.DataFrame(rows, columns=[*columns, "p_value"])
