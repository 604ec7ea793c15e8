"""Cross-benchmark reports from :func:`bapps_toolkit.evaluate.benchmarks.evaluate_benchmarks`.

* :func:`cross_markdown` / :func:`cross_latex` / :func:`write_cross_csv` / :func:`cross_json`: one
  row per metric; columns BAPPS 2AFC (mean of val traditional + cnn, %), BAPPS JND mAP (mean of
  its categories, %, no interval), NIGHTS 2AFC (test, %), then SRCC per correlation set; cells
  carry the 95 % percentile bootstrap interval.
* :func:`per_type_markdown`: SRCC / KRCC / PLCC / RMSE per distortion type of one set, with
  intervals.
* :func:`benchmarks_to_reports`: evaluation and every requested report in one call (the CLI's).

Every output built on synthetic sets says so in its first line; rows on a random backbone carry
the metric's ``[UNCALIBRATED: …]`` label; the sign convention is stated.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from .._io import csv_cell, write_text_atomic
from ..errors import UsageError
from ..evaluate.benchmarks import BenchmarkResult, cross_table

SYNTHETIC_NOTE = ("SYNTHETIC DATA: replica sets with simulated subjective scores; the numbers test "
                  "the pipeline and say nothing about the metrics")
SIGN_NOTE = ("SRCC/KRCC are computed on -distance for MOS sets (TID2013, KADID-10k, PIPAL) and on "
             "distance for DMOS/error sets (LIVE, CSIQ, PieAPP): positive = agrees with people; PLCC/RMSE "
             "after the 5-parameter logistic fit")


def _pct(col: str) -> bool:
    return "2AFC" in col or "mAP" in col


def _fmt(v: float, col: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{100 * v:.1f}" if _pct(col) else f"{v:.3f}"


def _cell(cell: tuple[float, ...] | None, col: str, with_ci: bool) -> str:
    if cell is None:
        return "–"
    v, lo, hi = cell
    if not with_ci or lo is None or math.isnan(lo):
        return _fmt(v, col)
    return f"{_fmt(v, col)} [{_fmt(lo, col)}, {_fmt(hi, col)}]"


def notes(result: BenchmarkResult) -> list[str]:
    """The notes printed under a cross-benchmark table (units, intervals, sign, synthetic data)."""
    lines = ["2AFC and mAP x100; SRCC in [-1, 1]; [95% percentile bootstrap interval: references "
             "resampled on correlation sets, items on 2AFC sets]", SIGN_NOTE]
    if result.synthetic:
        lines.insert(0, SYNTHETIC_NOTE)
    if not all(r["calibrated"] for r in result.rows):
        lines.append("rows tagged UNCALIBRATED use a randomly initialised backbone: NOT the published metric")
    lines += result.notes
    lines += [str(n) for n in result.fit_notes]
    return lines


def cross_markdown(result: BenchmarkResult, *, with_ci: bool = True) -> str:
    """The cross-benchmark table as Markdown (one row per metric, one column per benchmark figure).

    Args:
        result: the evaluation of every metric on every benchmark.
        with_ci: add the bootstrap interval to each cell.

    Returns:
        The Markdown text.
    """
    labels, cols, cells = cross_table(result.rows)
    title = "### Cross-benchmark evaluation" + (" — SYNTHETIC DATA" if result.synthetic else "")
    out = [title, ""] + [f"> {n}" for n in notes(result)] + [""]
    out.append("| metric | " + " | ".join(cols) + " |")
    out.append("|:---|" + "|".join(["---:"] * len(cols)) + "|")
    for lab in labels:
        out.append("| " + " | ".join([lab.replace("|", "\\|")]
                                     + [_cell(cells.get((lab, c)), c, with_ci) for c in cols]) + " |")
    out += _comparison_lines(result)
    return "\n".join(out) + "\n"


COMPARE_NOTE = ("A - B: paired bootstrap of the difference on the same items / reference images; the "
                "95% percentile interval and its inverted two-sided test: p < 0.05 exactly when the "
                "interval excludes 0")


def _comparison_lines(result: BenchmarkResult) -> list[str]:
    if not result.comparisons:
        return []
    out = ["", f"> {COMPARE_NOTE}", "", "| A − B | set | figure | difference [95% CI] | p |",
           "|:---|:---|:---|---:|---:|"]
    for c in result.comparisons:
        out.append(f"| {c['a']} − {c['b']} | {c['set']} | {c['figure']} | {c['diff']:.3f} "
                   f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] | {c['p_value']:.3g} |")
    return out


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def cross_latex(result: BenchmarkResult, *, with_ci: bool = True) -> str:
    """The cross-benchmark table as a LaTeX ``table`` (booktabs).

    Args:
        result: the evaluation of every metric on every benchmark.
        with_ci: add the bootstrap interval to each cell.

    Returns:
        The LaTeX source.
    """
    labels, cols, cells = cross_table(result.rows)
    caption = " ".join(notes(result))
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule",
             " & ".join(["Metric"] + [_tex(c) for c in cols]) + r" \\", r"\midrule"]
    for lab in labels:
        lines.append(" & ".join([_tex(lab)] + [_tex(_cell(cells.get((lab, c)), c, with_ci)) for c in cols]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex(caption)}}}", r"\label{tab:benchmarks}",
              r"\end{table}"]
    if result.comparisons:
        lines += [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{lllrr}", r"\toprule",
                  r"A $-$ B & set & figure & difference [95\% CI] & p \\", r"\midrule"]
        lines += [" & ".join(_tex(str(x)) for x in (f"{c['a']} - {c['b']}", c["set"], c["figure"],
                                                    f"{c['diff']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]",
                                                    f"{c['p_value']:.3g}")) + r" \\" for c in result.comparisons]
        lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex(COMPARE_NOTE)}}}",
                  r"\label{tab:benchmarks-compare}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def cross_csv(result: BenchmarkResult) -> str:
    """The tidy rows (every figure, every part) as CSV text."""
    from ..evaluate.benchmarks import ROW_KEYS

    buf = io.StringIO()
    keys = list(ROW_KEYS) + (["p_value"] if result.comparisons else [])
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow({k: csv_cell(r.get(k, "")) for k in keys})
    for c in result.comparisons:  # the paired differences A − B as rows of their own kind
        row = dict(metric=f"{c['a']} - {c['b']}", label=f"{c['a']} - {c['b']} (paired difference)",
                   benchmark=c["set"].split("/")[0], kind="comparison", part=c["set"].partition("/")[2],
                   figure=c["figure"], value=c["diff"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                   p_value=c["p_value"], direction="A - B")
        w.writerow({k: csv_cell(v) for k, v in row.items()})
    return buf.getvalue()


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v


def cross_json(result: BenchmarkResult) -> str:
    """The cross-benchmark table as JSON (notes, columns, one record per metric)."""
    labels, cols, cells = cross_table(result.rows)
    doc = {
        "notes": notes(result), "synthetic": result.synthetic, "columns": cols,
        "table": [{"metric": lab, **{c: [_jsonable(x) for x in cells[(lab, c)]] if (lab, c) in cells else None
                                     for c in cols}} for lab in labels],
        "rows": [{k: _jsonable(v) for k, v in r.items()} for r in result.rows],
        "comparisons": [{k: _jsonable(v) for k, v in c.items()} for c in result.comparisons],
    }
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def per_type_markdown(result: BenchmarkResult, benchmark: str, *, with_ci: bool = True) -> str:
    """Per-distortion-type figures of one correlation set: a row per (metric, type).

    Each figure comes with its 95 % interval (reference images of the type resampled).
    """
    rows = [r for r in result.rows if r["benchmark"] == benchmark and r["kind"] == "correlation"]
    if not rows:
        raise UsageError(f"no correlation results for {benchmark!r}")
    syn = " — SYNTHETIC DATA" if any(r["synthetic"] for r in rows) else ""
    fits = [f"> {n}" for n in result.fit_notes if n.benchmark == benchmark]
    out = [f"### {benchmark}: per distortion type{syn}", "", f"> {SIGN_NOTE}",
           "> [95% percentile bootstrap interval: the reference images of each type resampled]", *fits, "",
           "| metric | type | n | SRCC | KRCC | PLCC | RMSE |", "|:---|:---|---:|---:|---:|---:|---:|"]
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        table.setdefault((r["label"], r["part"]), {"n": r["n"]})[r["figure"]] = (r["value"], r["ci_low"], r["ci_high"])
    nan = (float("nan"), float("nan"), float("nan"))
    for (lab, part), v in table.items():
        figs = " | ".join(_cell(v.get(f, nan), f, with_ci) for f in ("srcc", "krcc", "plcc", "rmse"))
        out.append(f"| {lab} | {part.removeprefix('type:')} | {v['n']} | {figs} |")
    return "\n".join(out) + "\n"


def write_cross_reports(result: BenchmarkResult, *, markdown: Any = None, latex: Any = None,
                        csv_path: Any = None, json_path: Any = None,
                        per_type: Any = None) -> list[str]:
    """Write the requested reports atomically; return the paths written.

    ``per_type`` is a Markdown file with every set's per-type table.
    """
    written: list[str] = []
    sets = sorted({r["benchmark"] for r in result.rows if r["kind"] == "correlation"})
    renders: Sequence[tuple[Any, Any]] = (
        (markdown, lambda: cross_markdown(result)), (latex, lambda: cross_latex(result)),
        (csv_path, lambda: cross_csv(result)), (json_path, lambda: cross_json(result)),
        (per_type, lambda: "\n".join(per_type_markdown(result, s) for s in sets)))
    for path, render in renders:
        if path is not None:
            write_text_atomic(path, render())
            written.append(str(path))
    return written


def benchmarks_to_reports(source: Any, metrics: Sequence[Any], *, markdown: Any = None, latex: Any = None,
                          csv_path: Any = None, json_path: Any = None, per_type: Any = None, plot: Any = None,
                          **options: Any) -> tuple[BenchmarkResult, list[str]]:
    """What ``bapps evaluate`` does on the IQA benchmarks, in one call.

    It checks the outputs, runs :func:`~bapps_toolkit.evaluate.benchmarks.evaluate_benchmarks`
    (``options`` are its keyword arguments) and writes each requested report atomically (and the
    ``plot`` PNG).

    Returns:
        ``(result, paths written)``.
    """
    from ..evaluate.benchmarks import evaluate_benchmarks

    outs = [str(p) for p in (markdown, latex, csv_path, json_path, per_type, plot) if p is not None]
    dup = sorted({o for o in outs if outs.count(o) > 1})
    if dup:
        raise UsageError(f"the same output file is given twice: {', '.join(dup)}")
    if plot is not None and not str(plot).lower().endswith(".png"):
        raise UsageError(f"plot {plot}: the figure is written as PNG; use a .png file name")
    result = evaluate_benchmarks(source, metrics, **options)
    written = write_cross_reports(result, markdown=markdown, latex=latex, csv_path=csv_path,
                                  json_path=json_path, per_type=per_type)
    if plot is not None:
        from .benchmark_plots import save_benchmark_plot

        written.append(str(save_benchmark_plot(result, plot)))
    return result, written
