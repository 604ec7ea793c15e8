"""Table-5-style reports (Zhang et al., CVPR 2018, Table 5) from the tidy table of ``evaluate``.

Layout: one row per metric (in evaluation order, the human ceiling last), one column per set —
the 2AFC val categories in the paper's order, the 2AFC mean column, the 2AFC train categories,
then the JND categories (mAP). A set of the researcher's own category (``2afc/val/denoise``)
gets a column of its own after BAPPS's categories of its split (user categories sorted by name;
the same order as :func:`bapps_toolkit.data.layout.order_keys`). Cells are ``100 × score``
with the percentile bootstrap interval.
Every metric row uses the metric's ``label``, so a metric on a random backbone carries its
``[UNCALIBRATED: …]`` tag in every format; a table built from synthetic sets says so in its
header (Markdown) or caption (LaTeX).
"""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from .._io import PathLike, atomic_write, csv_frame, write_text_atomic
from ..data.layout import JND_CATEGORIES, TWOAFC_CATEGORIES
from ..scores import HUMAN, MEAN_CATEGORY, MEAN_DEFINITION
from .calibration import calibration_json, calibration_latex, calibration_markdown, with_calibration_columns
from .comparison import comparison_csv_rows, comparison_latex, comparison_markdown, comparisons_of

_2AFC_ORDER = TWOAFC_CATEGORIES
_JND_ORDER = JND_CATEGORIES
_SHORT = {"traditional": "trad", "frameinterp": "frameint"}

SYNTHETIC_NOTE = ("SYNTHETIC DATA: these sets are simulated (the mini set, or a set marked "
                  "SYNTHETIC.txt), not human judgments; the numbers test the pipeline and say "
                  "nothing about the metrics")
UNCALIBRATED_NOTE = ("rows tagged UNCALIBRATED use a randomly initialised backbone: they are NOT "
                     "the published metric")


def _order_key(mode: str, split: str, category: str) -> tuple[int, int, int, int, str]:
    orders = _2AFC_ORDER if mode == "2afc" else _JND_ORDER
    split_rank = {"val": 0, "train": 1}.get(split, 2)
    cats = orders.get(split, ())
    if category == MEAN_CATEGORY:
        cat_rank = -1
    else:
        cat_rank = cats.index(category) if category in cats else len(cats)
    return (0 if mode == "2afc" else 2, split_rank, 1 if category == MEAN_CATEGORY else 0,
            cat_rank, category)


def report_columns(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The report's columns ``(mode, split, category)`` present in ``table``, in the paper's order."""
    cols = {(r.mode, r.split, r.category) for r in table.itertuples()}
    return sorted(cols, key=lambda c: _order_key(*c))


def column_title(mode: str, split: str, category: str) -> str:
    """Header of a column, e.g. ``2AFC trad``, ``2AFC train/mix``, ``2AFC mean``, ``JND cnn``."""
    if category == MEAN_CATEGORY:
        return "2AFC mean"
    short = _SHORT.get(category, category)
    name = short if split == "val" else f"{split}/{short}"
    return f"{'2AFC' if mode == '2afc' else 'JND'} {name}"


def report_rows(table: pd.DataFrame) -> list[tuple[str, str]]:
    """``(metric, label)`` of the report's rows: evaluation order, the human ceiling last."""
    seen: dict[str, str] = {}
    for r in table.itertuples():
        seen.setdefault(r.metric, r.label)
    ordered = [(m, label) for m, label in seen.items() if m != HUMAN]
    if HUMAN in seen:
        ordered.append((HUMAN, seen[HUMAN]))
    return ordered


def _cell(table: pd.DataFrame, metric: str, col: tuple[str, str, str],
          with_ci: bool) -> tuple[float, float, float] | None:
    mode, split, category = col
    hit = table[(table.metric == metric) & (table["mode"] == mode) & (table.split == split)
                & (table.category == category)]
    if hit.empty:
        return None
    r = hit.iloc[0]
    return float(r.score), float(r.ci_low), float(r.ci_high)


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def notes(table: pd.DataFrame) -> list[str]:
    """Header/caption lines: what the numbers are, the mean's definition, synthetic/uncalibrated."""
    n_boot = table.attrs.get("n_boot")
    alpha = table.attrs.get("alpha", 0.05)
    boot = f"{n_boot} resamples of the items" if n_boot else "resampling the items"
    lines = [
        "Scores x100: 2AFC = agreement with the human judgments (%), JND = mAP (%); "
        f"[{100 * (1 - alpha):.0f}% percentile bootstrap interval, {boot}].",
    ]
    if (table.category == MEAN_CATEGORY).any():
        lines.append(MEAN_DEFINITION[0].upper() + MEAN_DEFINITION[1:] + ".")
    if (table.metric == HUMAN).any():
        lines.append("human (ceiling) = 2AFC agreement of one rater with another, mean(p^2 + (1 - p)^2).")
    if bool(table.synthetic.any()):
        lines.insert(0, SYNTHETIC_NOTE + ".")
    if not bool(table.calibrated.all()):
        lines.append(UNCALIBRATED_NOTE[0].upper() + UNCALIBRATED_NOTE[1:] + ".")
    precision = (table.attrs.get("execution") or {}).get("precision", "fp32")
    if precision != "fp32":
        lines.append(f"Metric rows marked [{precision}] were computed under {precision} autocast, not in fp32 "
                     "(distances differ slightly from the published fp32 numbers).")
    return lines


def to_markdown(table: pd.DataFrame, *, with_ci: bool = True, title: str = "BAPPS evaluation") -> str:
    """Markdown table (GitHub pipe syntax) with the :func:`notes` as lines above it."""
    cols = report_columns(table)
    head = ["metric"] + [column_title(*c) for c in cols]
    out = [f"### {title}" + (" — SYNTHETIC DATA" if bool(table.synthetic.any()) else ""), ""]
    out += [f"> {line}" for line in notes(table)]
    out.append("")
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join([":---"] + ["---:"] * len(cols)) + "|")
    for metric, label in report_rows(table):
        cells = [label.replace("|", "\\|")]
        for c in cols:
            v = _cell(table, metric, c, with_ci)
            if v is None:
                cells.append("–")
            elif with_ci:
                cells.append(f"{_fmt(v[0])} [{_fmt(v[1])}, {_fmt(v[2])}]")
            else:
                cells.append(_fmt(v[0]))
        out.append("| " + " | ".join(cells) + " |")
    out += comparison_markdown(table, column_title, _order_key)
    out += calibration_markdown(table, column_title, _order_key)
    return "\n".join(out) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    r"""Escape the characters LaTeX treats specially (``& % $ # _ { } ~ ^ \\``)."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, *, with_ci: bool = True, label: str = "tab:bapps") -> str:
    r"""A ``table`` environment (plain ``tabular`` with ``\\hline``; no extra LaTeX packages)."""
    cols = report_columns(table)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    caption = " ".join(notes(table))
    lines.append(r"\caption{" + latex_escape(caption) + "}")
    lines.append(r"\label{" + label + "}")
    lines.append(r"\begin{tabular}{l" + "r" * len(cols) + "}")
    lines.append(r"\hline")
    lines.append(" & ".join(["Metric"] + [latex_escape(column_title(*c)) for c in cols]) + r" \\")
    lines.append(r"\hline")
    rows = report_rows(table)
    for i, (metric, lab) in enumerate(rows):
        if metric == HUMAN and i > 0:
            lines.append(r"\hline")
        cells = [latex_escape(lab)]
        for c in cols:
            v = _cell(table, metric, c, with_ci)
            if v is None:
                cells.append("--")
            elif with_ci:
                cells.append(f"{_fmt(v[0])}" + r"\,{\scriptsize[" + f"{_fmt(v[1])}, {_fmt(v[2])}" + "]}")
            else:
                cells.append(_fmt(v[0]))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    lines += comparison_latex(table, column_title, _order_key, latex_escape)
    lines += calibration_latex(table, column_title, _order_key, latex_escape)
    return "\n".join(lines) + "\n"


def to_json(table: pd.DataFrame) -> str:
    """The evaluation as a JSON document.

    Its form is ``{"notes": [...], "synthetic": bool, "mean_definition": str, "rows": [...],
    "comparisons": [...], "calibration": {...}}`` (the paired comparison records, empty without
    ``compare``; the calibration records of :mod:`.calibration`, null without them).
    """
    doc = {
        "notes": notes(table),
        "synthetic": bool(table.synthetic.any()),
        "uncalibrated": sorted({r.label for r in table.itertuples() if not r.calibrated}),
        "mean_definition": MEAN_DEFINITION,
        "n_boot": table.attrs.get("n_boot"),
        "seed": table.attrs.get("seed"),
        "execution": table.attrs.get("execution"),
        "rows": json.loads(table.to_json(orient="records")),
        "comparisons": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in c.items()}
                        for c in comparisons_of(table)],
        "calibration": calibration_json(table),
    }
    return json.dumps(doc, indent=2) + "\n"


def write_csv(table: pd.DataFrame, path: PathLike) -> None:
    """Write the tidy table as CSV, atomically.

    With a comparison, its rows follow (:mod:`.comparison`); with calibration records, the 2AFC rows
    carry their scores (:func:`.calibration.with_calibration_columns`).
    """
    out = with_calibration_columns(table)
    if comparisons_of(table):
        out = pd.concat([out.assign(p_value=float("nan")), comparison_csv_rows(table, list(out.columns))],
                        ignore_index=True)
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        csv_frame(out).to_csv(fh, index=False, float_format="%.6g")  # 6 significant digits; text neutralised


def write_reports(table: pd.DataFrame, *, csv: Any = None, markdown: Any = None, latex: Any = None,
                  json_path: Any = None) -> list[str]:
    """Write the requested reports atomically; returns the paths written."""
    written = []
    if csv is not None:
        write_csv(table, csv)
        written.append(str(csv))
    for path, render in ((markdown, to_markdown), (latex, to_latex), (json_path, to_json)):
        if path is not None:
            write_text_atomic(path, render(table))
            written.append(str(path))
    return written
