"""The calibration of an evaluation (``table.attrs["calibration"]``) in each report format.

The records are :class:`~bapps_toolkit.evaluate.calibrate.CalibrationRow` (per metric, link and
2AFC set, and pooled over the sets). Markdown and LaTeX get a long table (one line per metric,
link and set); JSON gets every record with its reliability bins; the tidy CSV gets four columns
on the 2AFC rows of each metric — ``calibration_link``, ``log_lik``, ``brier``, ``ece`` — from the
metric's primary link (G when the checkpoint stores one, else the cross-fitted logistic link).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..calibration import POOLED_CATEGORY, CalibrationResult, CalibrationRow, link_description

__all__ = ["calibration_of", "calibration_note", "calibration_markdown", "calibration_latex", "calibration_json",
           "with_calibration_columns", "CSV_COLUMNS", "set_title"]

#: Columns the tidy CSV gains when the table carries calibration records.
CSV_COLUMNS = ["calibration_link", "log_lik", "brier", "ece"]

ColumnTitle = Callable[[str, str, str], str]
Order = Callable[[str, str, str], tuple[Any, ...]]


def calibration_of(table: Any) -> CalibrationResult | None:
    """The calibration records of ``table`` (None when it has none)."""
    cal = getattr(table, "attrs", {}).get("calibration")
    return cal if isinstance(cal, CalibrationResult) and cal.rows else None


def calibration_note(cal: CalibrationResult) -> str:
    """What the calibration table holds, in one paragraph."""
    text = (f"{link_description(cal.folds, cal.seed)}. Scored against the judge fractions h: log-lik = mean of "
            f"h log q + (1 - h) log(1 - q) (higher is better; q = 0.5 gives -0.693; 'ceiling' = log-lik of q = h); "
            f"Brier = mean (q - h)^2; ECE = sum over {cal.n_bins} equal-width bins of q of "
            f"(n_b / N) |mean q - mean h|. 'pooled' = all the 2AFC sets together.")
    if cal.skipped:
        text += " Not calibrated: " + "; ".join(cal.skipped) + "."
    return text


def set_title(row: CalibrationRow, column_title: ColumnTitle) -> str:
    """``2AFC cnn`` … or ``pooled``."""
    return "pooled" if row.category == POOLED_CATEGORY else column_title("2afc", row.split, row.category)


def _sorted(cal: CalibrationResult, order: Order) -> list[CalibrationRow]:
    metrics = list(dict.fromkeys(r.metric for r in cal.rows))

    def key(r: CalibrationRow) -> tuple[Any, ...]:
        pooled = r.category == POOLED_CATEGORY
        return (metrics.index(r.metric), not r.primary, pooled, () if pooled else order("2afc", r.split, r.category))

    return sorted(cal.rows, key=key)


def _f(v: float, digits: int = 3) -> str:
    return "nan" if math.isnan(v) else f"{v:.{digits}f}"


def calibration_markdown(table: Any, column_title: ColumnTitle, order: Order) -> list[str]:
    """Lines of the Markdown calibration table (empty without calibration records)."""
    cal = calibration_of(table)
    if cal is None:
        return []
    out = ["", "#### Calibration (2AFC): P(p1 closer) against the judge fractions", "",
           f"> {calibration_note(cal)}", "",
           "| metric | link | set | n | log-lik | ceiling | Brier | ECE |",
           "|:---|:---|:---|---:|---:|---:|---:|---:|"]
    for r in _sorted(cal, order):
        label = r.label.replace("|", "\\|")
        out.append(f"| {label} | {r.link} | {set_title(r, column_title)} | {r.n} "
                   f"| {_f(r.log_lik)} | {_f(r.log_lik_ceiling)} | {_f(r.brier)} | {_f(r.ece)} |")
    return out


def calibration_latex(table: Any, column_title: ColumnTitle, order: Order,
                      escape: Callable[[str], str]) -> list[str]:
    """Lines of a LaTeX ``table`` environment with the calibration (empty without records)."""
    cal = calibration_of(table)
    if cal is None:
        return []
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\caption{" + escape(calibration_note(cal)) + "}",
             r"\label{tab:bapps-calibration}", r"\begin{tabular}{lllrrrrr}", r"\hline",
             r"Metric & Link & Set & n & log-lik & ceiling & Brier & ECE \\", r"\hline"]
    for r in _sorted(cal, order):
        cells = [escape(r.label), escape(r.link), escape(set_title(r, column_title)), str(r.n), _f(r.log_lik),
                 _f(r.log_lik_ceiling), _f(r.brier), _f(r.ece)]
        lines.append(" & ".join(cells) + r" \\")
    return lines + [r"\hline", r"\end{tabular}", r"\end{table}"]


def _no_nan(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_no_nan(x) for x in v]
    if isinstance(v, dict):
        return {k: _no_nan(x) for k, x in v.items()}
    return v


def calibration_json(table: Any) -> dict[str, Any] | None:
    """The calibration as a JSON-ready dict (NaN as null), or None without records."""
    cal = calibration_of(table)
    if cal is None:
        return None
    return {"note": calibration_note(cal), "folds": cal.folds, "seed": cal.seed, "n_bins": cal.n_bins,
            "skipped": list(cal.skipped), "rows": [_no_nan(dataclasses.asdict(r)) for r in cal.rows]}


def with_calibration_columns(table: Any) -> pd.DataFrame:
    """``table`` with the :data:`CSV_COLUMNS` of each metric's primary link on its 2AFC set rows.

    The columns are empty elsewhere; ``table`` itself is returned when it has no calibration
    records.
    """
    cal = calibration_of(table)
    if cal is None:
        return table
    cells = {(r.metric, r.split, r.category): (r.link, r.log_lik, r.brier, r.ece)
             for r in cal.rows if r.primary and r.category != POOLED_CATEGORY}
    keys = [(m, s, c) if mode == "2afc" else None
            for m, mode, s, c in zip(table.metric, table["mode"], table.split, table.category, strict=True)]
    values = [cells.get(k) if k is not None else None for k in keys]
    out = table.copy()
    for i, name in enumerate(CSV_COLUMNS):
        out[name] = [v[i] if v is not None else (None if i == 0 else float("nan")) for v in values]
    return out
