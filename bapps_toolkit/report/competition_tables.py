"""Tables, text and figure of a competition's verdict (see :mod:`.competition`).

Tables (pandas): ``pairs`` (one row per metric pair: the favoured metric, its share, interval,
p-value, the winner if significant, and each half's share of judgments following the pushed
metric), ``items`` (one row per judged item), and for gMAD ``aggressiveness`` / ``resistance``
(matrices of labels × labels) with ``cells`` (one row per ordered pair with intervals) and
``models`` (each model's mean aggressiveness and resistance). Metric names in tables and
figures are the manifest's labels, so an UNCALIBRATED metric carries its tag everywhere.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_text_atomic
from .._plot import pyplot, save_figure
from ..competition.records import Manifest
from ..competition.verdict import Matrices, PairVerdict, Share, Verdict


@dataclass
class CompetitionReport:
    """The verdict, its tables (pandas DataFrames), its text and the files written."""

    verdict: Verdict
    manifest: Manifest
    tables: dict[str, Any]
    text: str
    files: dict[str, Path] = field(default_factory=dict)


GMAD_NOTE = ("aggressiveness[A, D] = share of judgments confirming the difference attacker A claims on the pairs "
             "defender D scores alike; resistance[D, A] = 1 - aggressiveness[A, D] (the toolkit's 2AFC reading of "
             "Ma et al., IEEE TPAMI 2020, whose exact estimator is not reproduced); 0.5 = chance")


def _half(s: Share | None, prefix: str) -> dict[str, Any]:
    if s is None:
        return {f"{prefix}_follow": math.nan, f"{prefix}_low": math.nan, f"{prefix}_high": math.nan,
                f"{prefix}_items": 0}
    return {f"{prefix}_follow": s.value, f"{prefix}_low": s.low, f"{prefix}_high": s.high, f"{prefix}_items": s.items}


def _pair_row(p: PairVerdict, man: Manifest) -> dict[str, Any]:
    return {"metric_a": man.label(p.a), "metric_b": man.label(p.b), "favoured": man.label(p.favoured),
            "share": p.share.value, "ci_low": p.share.low, "ci_high": p.share.high, "p": p.share.p,
            "significant": p.share.significant, "winner": man.label(p.winner) if p.winner else "",
            "items": p.share.items, "votes": p.share.votes, **_half(p.b_pushed, "b_pushed"),
            **_half(p.a_pushed, "a_pushed")}


def _matrix_tables(m: Matrices, man: Manifest) -> dict[str, Any]:
    import pandas as pd

    labels = [man.label(n) for n in m.metrics]
    agg = pd.DataFrame(m.aggressiveness, index=labels, columns=labels)
    agg.index.name, agg.columns.name = "attacker", "defender"
    res = pd.DataFrame(m.resistance, index=labels, columns=labels)
    res.index.name, res.columns.name = "defender", "attacker"
    cells = [{"attacker": labels[i], "defender": labels[k], "aggressiveness": m.aggressiveness[i, k],
              "ci_low": m.aggressiveness_low[i, k], "ci_high": m.aggressiveness_high[i, k],
              "p": m.aggressiveness_p[i, k], "resistance_of_defender": 1.0 - m.aggressiveness[i, k],
              "items": int(m.items[i, k])}
             for i in range(len(labels)) for k in range(len(labels)) if m.items[i, k] > 0]
    with np.errstate(invalid="ignore"):
        models = pd.DataFrame({"model": labels,
                               "aggressiveness": [_nanmean(m.aggressiveness[i]) for i in range(len(labels))],
                               "resistance": [_nanmean(m.resistance[i]) for i in range(len(labels))]})
    return {"aggressiveness": agg, "resistance": res, "cells": pd.DataFrame(cells), "models": models}


def _nanmean(row: np.ndarray) -> float:
    row = row[np.isfinite(row)]
    return float(row.mean()) if row.size else math.nan


def report_tables(v: Verdict, man: Manifest) -> dict[str, Any]:
    """The verdict's tables (pandas DataFrames; see the module docstring)."""
    import pandas as pd

    tables: dict[str, Any] = {"pairs": pd.DataFrame([_pair_row(p, man) for p in v.pairs])}
    tables["items"] = pd.DataFrame([{
        "key": j.item.key, "stem": j.item.stem, "kind": j.item.kind, "source": j.item.source,
        "held": man.label(j.item.held), "pushed": man.label(j.item.pushed), "level": j.item.level,
        "pushed_prefers": j.item.pushed_prefers, "p1_share": j.p1_share, "follows_pushed": j.follows_pushed,
        "votes": j.votes} for j in v.judged])
    if v.matrices is not None:
        tables.update(_matrix_tables(v.matrices, man))
    return tables


def _pair_text(p: PairVerdict, man: Manifest) -> list[str]:
    a, b, fav = man.label(p.a), man.label(p.b), man.label(p.favoured)
    head = f"{a} vs {b}: people sided with {fav}, share {p.share.text()}"
    win = f"  winner: {man.label(p.winner)}" if p.winner else "  no winner: the share does not exclude chance"
    lines = [head, win]
    for s, pushed, held in ((p.b_pushed, b, a), (p.a_pushed, a, b)):
        if s is not None:
            lines.append(f"  {pushed} pushed, {held} held: judgments followed {pushed}'s ordering {s.text()}")
    return lines


def _matrix_text(m: Matrices, man: Manifest, tables: dict[str, Any]) -> list[str]:
    lines = ["", "gMAD: " + GMAD_NOTE, "aggressiveness (rows: attacker, columns: defender):",
             tables["aggressiveness"].to_string(float_format=lambda x: f"{x:.3f}"),
             "resistance (rows: defender, columns: attacker):",
             tables["resistance"].to_string(float_format=lambda x: f"{x:.3f}"),
             "per model (mean over the opponents met):",
             tables["models"].to_string(index=False, float_format=lambda x: f"{x:.3f}")]
    return lines


def report_text(v: Verdict, man: Manifest, tables: dict[str, Any] | None = None) -> str:
    """The verdict in words: notes first (UNCALIBRATED metrics, synthetic data), then per pair."""
    tables = tables if tables is not None else report_tables(v, man)
    lines = [f"{v.kind.upper()} competition verdict ({len(v.judged)} judged items; {v.n_boot} bootstrap "
             f"resamples over items; test of share = 0.5 at alpha = {v.alpha:g})"]
    for label in man.uncalibrated:
        lines.append(f"NOTE: {label} is UNCALIBRATED: its images and this verdict say nothing about "
                     "the published metric")
    lines += [f"note: {n}" for n in man.notes if "UNCALIBRATED" not in n]
    lines.append("")
    for p in v.pairs:
        lines += _pair_text(p, man)
    if v.matrices is not None:
        lines += _matrix_text(v.matrices, man, tables)
    return "\n".join(lines) + "\n"



def _short(label: str) -> str:
    """A label cut for an axis; an UNCALIBRATED tag is kept whole."""
    head = label.split(" [UNCALIBRATED")[0].split(" (")[0]
    head = head if len(head) <= 24 else head[:23] + "…"
    return head + " [UNCALIBRATED]" if "UNCALIBRATED" in label else (label if len(label) <= 28 else head)


def plot_matrices(m: Matrices, man: Manifest, path: Path) -> Path:
    """Aggressiveness and resistance as two annotated heat maps in one PNG (written atomically)."""
    plt = pyplot()
    labels = [man.label(n) for n in m.metrics]
    short = [_short(lab) for lab in labels]
    fig, axes = plt.subplots(1, 2, figsize=(5.5 + 1.6 * len(labels), 2.8 + 0.6 * len(labels)))
    for ax, mat, title, rows, cols in ((axes[0], m.aggressiveness, "aggressiveness", "attacker", "defender"),
                                       (axes[1], m.resistance, "resistance", "defender", "attacker")):
        im = ax.imshow(np.ma.masked_invalid(mat), vmin=0.0, vmax=1.0, cmap="RdBu_r")
        for (i, k), val in np.ndenumerate(mat):
            if np.isfinite(val):
                ax.text(k, i, f"{val:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(short)), short, rotation=40, ha="right", fontsize=7)
        ax.set_yticks(range(len(short)), short, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(cols, fontsize=8)
        ax.set_ylabel(rows, fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
    tags = ["UNCALIBRATED metric(s)"] if man.uncalibrated else []
    tags += ["SYNTHETIC pool"] if any("SYNTHETIC" in n for n in man.notes) else []
    fig.suptitle("gMAD" + (f" — {', '.join(tags)}" if tags else "") + "\n0.5 = chance", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return _json_safe(v.item())
    return v


def write_report(rep: CompetitionReport, out: Path, *, figure: bool = True) -> dict[str, Path]:
    """Write the report's files into ``out`` (each atomically); returns them by name."""
    files: dict[str, Path] = {"text": out / "verdict.md", "pairs": out / "pairs.csv", "items": out / "items.csv",
                              "json": out / "verdict.json"}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(files["text"], rep.text)
    for name in ("pairs", "items"):
        write_text_atomic(files[name], rep.tables[name].to_csv(index=False))
    doc: dict[str, Any] = {"kind": rep.verdict.kind, "alpha": rep.verdict.alpha, "n_boot": rep.verdict.n_boot,
                           "uncalibrated": rep.manifest.uncalibrated, "notes": rep.manifest.notes,
                           "pairs": [{k: _json_safe(v) for k, v in r.items()}
                                     for r in rep.tables["pairs"].to_dict(orient="records")]}
    if rep.verdict.matrices is not None:
        for name in ("aggressiveness", "resistance"):
            files[name] = out / f"{name}.csv"
            write_text_atomic(files[name], rep.tables[name].to_csv())
        files["cells"] = out / "cells.csv"
        write_text_atomic(files["cells"], rep.tables["cells"].to_csv(index=False))
        doc["gmad_definition"] = GMAD_NOTE
        doc["models"] = [{k: _json_safe(v) for k, v in r.items()} for r in rep.tables["models"].to_dict("records")]
        if figure:
            files["figure"] = plot_matrices(rep.verdict.matrices, rep.manifest, out / "matrices.png")
    write_text_atomic(files["json"], json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return files


__all__ = ["CompetitionReport", "report_tables", "report_text", "plot_matrices", "write_report", "GMAD_NOTE"]
