"""The study's progress as the dashboard and ``bapps judge status`` show it.

Its SQL is in :mod:`.store_reports`; no HTTP.

:func:`study_summary` returns one typed record (:class:`StudySummary`, JSON-ready):

* progress: real items *done* (balanced: ``judgments_per_item`` answers; adaptive: credible
  interval narrower than ``target_width`` or ``judgments_per_item`` answers), answers (real and
  sentinel), raters (active within ``reassign_after_s`` — 900 s when 0 —, finished, screened out);
* a histogram of answers per real item, and for adaptive studies of the credible-interval widths;
* a histogram of response times and their median;
* per rater: answered/assigned, sentinel accuracy, *agreement with the majority* (the share of
  their answers on real items that match the majority of the *other* raters of that item; items
  where the others tie or where nobody else answered are not counted), median response time,
  platform, outcome, seconds since last seen — the most recently seen :data:`MAX_RATER_ROWS`.

:func:`summary_text` prints the same in a few lines.
"""
from __future__ import annotations

import sqlite3
import time
from typing import Any, TypedDict

import numpy as np

from ..data.ids import shown
from .answers import valid_rater
from .keys import study_keys
from .posterior import credible_width, posterior_params
from .settings import StudyConfig, prior_of
from .store_reports import (
    rater_answer_times,
    rater_summary_records,
    real_item_answer_counts,
    sentinel_answer_count,
    summary_version_row,
)

MAX_RATER_ROWS = 200
RT_EDGES_MS = [0, 250, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000]
WIDTH_EDGES = [round(0.05 * i, 2) for i in range(21)]

class Histogram(TypedDict):
    """Counts per bin: bin ``i`` is ``[edges[i], edges[i + 1])`` (the last one closed)."""

    edges: list[float]
    counts: list[int]


class RaterRow(TypedDict):
    """One rater's line of the dashboard (``None`` where undefined)."""

    rater: str
    platform: str | None
    answered: int
    assigned: int
    sentinels: int
    sentinels_right: int
    sentinel_accuracy: float | None
    agreement: float | None
    agreement_items: int
    median_rt_ms: float | None
    outcome: str | None
    seen_s_ago: float | None
    active: bool


class ProgressInfo(TypedDict):
    """Items, answers and raters so far."""

    items: int
    items_done: int
    answers: int
    answers_real: int
    answers_sentinel: int
    raters: int
    raters_active: int
    raters_finished: int
    raters_screened_out: int


class PolicyInfo(TypedDict):
    """The study's assignment policy and platform."""

    study_id: str | None
    assignment: str
    judgments_per_item: int
    items_per_rater: int
    target_width: float | None
    credible_level: float | None
    prior: list[float] | None
    platform: str


class StudySummary(TypedDict):
    """Everything the dashboard shows (JSON-ready)."""

    generated: float
    policy: PolicyInfo
    progress: ProgressInfo
    answers_per_item: Histogram
    widths: Histogram | None
    response_ms: Histogram
    median_rt_ms: float | None
    sentinel_accuracy: float | None
    agreement: float | None
    raters: list[RaterRow]
    raters_shown: int


def _hist(values: np.ndarray, edges: list[float]) -> Histogram:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=np.asarray(edges, dtype=np.float64))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _policy(con: sqlite3.Connection, cfg: StudyConfig) -> PolicyInfo:
    keys = study_keys(con)
    adaptive = cfg["assignment"] == "adaptive"
    return {"study_id": keys.study_id if keys else None, "assignment": cfg["assignment"],
            "judgments_per_item": int(cfg["judgments_per_item"]), "items_per_rater": int(cfg["items_per_rater"]),
            "target_width": float(cfg["target_width"]) if adaptive else None,
            "credible_level": float(cfg["credible_level"]) if adaptive else None,
            "prior": [float(v) for v in cfg["prior"]] if adaptive else None, "platform": cfg["platform"]}


def _rater_rows(con: sqlite3.Connection, cfg: StudyConfig, now: float,
                rts: dict[str, list[float]]) -> list[RaterRow]:
    window = float(cfg["reassign_after_s"]) or 900.0
    rows: list[RaterRow] = []
    for rid, plat, answered, assigned, seen, outcome, n_s, right, agree, counted in rater_summary_records(con):
        rows.append({"rater": rid, "platform": plat, "answered": answered, "assigned": assigned,
                     "sentinels": n_s, "sentinels_right": right,
                     "sentinel_accuracy": right / n_s if n_s else None,
                     "agreement": agree / counted if counted else None, "agreement_items": counted,
                     "median_rt_ms": float(np.median(rts[rid])) if rid in rts else None, "outcome": outcome,
                     "seen_s_ago": None if seen is None else max(0.0, now - seen),
                     "active": seen is not None and now - seen <= window and answered < assigned})
    return rows


def _items(con: sqlite3.Connection, cfg: StudyConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Answers per real item, whether each is done, and (adaptive) each one's credible width."""
    rows = real_item_answer_counts(con)
    n = np.asarray([r[0] for r in rows], dtype=np.int64)
    k = np.asarray([r[1] for r in rows], dtype=np.int64)
    done = n >= int(cfg["judgments_per_item"])
    width = None
    if cfg["assignment"] == "adaptive" and len(n):
        a, b = posterior_params(k, n, prior_of(cfg))
        width = credible_width(a, b, float(cfg["credible_level"]))
        done |= width < float(cfg["target_width"])
    return n, done, width


def study_summary(con: sqlite3.Connection, cfg: StudyConfig) -> StudySummary:
    """The dashboard's summary of the study (module docstring); reads only."""
    now = time.time()
    n, done, width = _items(con, cfg)
    rts: dict[str, list[float]] = {}
    for rid, t in rater_answer_times(con):
        rts.setdefault(rid, []).append(t)
    raters = _rater_rows(con, cfg, now, rts)
    n_sent = sentinel_answer_count(con)
    rt = np.asarray([t for times in rts.values() for t in times], dtype=np.float64)
    top = max(int(cfg["judgments_per_item"]), int(n.max()) if len(n) else 0)
    widths = None if width is None else _hist(width, WIDTH_EDGES)
    s_n = sum(r["sentinels"] for r in raters)
    a_n = sum(r["agreement_items"] for r in raters)
    return {
        "generated": now, "policy": _policy(con, cfg),
        "progress": {"items": len(n), "items_done": int(done.sum()), "answers": int(n.sum()) + n_sent,
                     "answers_real": int(n.sum()), "answers_sentinel": n_sent, "raters": len(raters),
                     "raters_active": sum(r["active"] for r in raters),
                     "raters_finished": sum(r["assigned"] > 0 and r["answered"] >= r["assigned"] for r in raters),
                     "raters_screened_out": sum(r["outcome"] == "screened_out" for r in raters)},
        "answers_per_item": _hist(n.astype(np.float64), [float(e) for e in range(top + 2)]),
        "widths": widths, "response_ms": _hist(rt, [float(e) for e in RT_EDGES_MS]),
        "median_rt_ms": float(np.median(rt)) if len(rt) else None,
        "sentinel_accuracy": sum(r["sentinels_right"] for r in raters) / s_n if s_n else None,
        "agreement": sum((r["agreement"] or 0.0) * r["agreement_items"] for r in raters) / a_n if a_n else None,
        "raters": raters[:MAX_RATER_ROWS], "raters_shown": min(len(raters), MAX_RATER_ROWS),
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.0f}%"


def _printable(rater: str) -> str:
    """A rater id as it is, or quoted and cut when the database holds something no server writes.

    Control characters would otherwise reach the terminal.
    """
    return rater if valid_rater(rater) else shown(rater, 40)


def summary_text(s: StudySummary) -> str:
    """The summary in a few lines (what ``bapps judge status`` prints)."""
    pol, pro = s["policy"], s["progress"]
    policy = pol["assignment"]
    if pol["assignment"] == "adaptive":
        prior = pol["prior"] or [1.0, 1.0]
        policy += (f" (stop at credible-interval width {pol['target_width']:.2f} at level "
                   f"{pol['credible_level']:.2f}, prior Beta({prior[0]:g}, {prior[1]:g}), "
                   f"at most {pol['judgments_per_item']} per item)")
    else:
        policy += f" ({pol['judgments_per_item']} judgments per item)"
    counts = s["answers_per_item"]["counts"]
    per_item = np.repeat(np.arange(len(counts)), counts)
    spread = (f"min {per_item.min()}, median {np.median(per_item):g}, max {per_item.max()}" if len(per_item)
              else "no items")
    screened = [r for r in s["raters"] if r["outcome"] == "screened_out"]
    rt = "n/a" if s["median_rt_ms"] is None else f"{s['median_rt_ms']:.0f} ms"
    share = pro["items_done"] / pro["items"] if pro["items"] else None
    names = ": " + ", ".join(_printable(r["rater"]) for r in screened[:5]) if screened else ""
    lines = [
        f"study {pol['study_id'] or '(no id)'}: {policy}; platform {pol['platform']}",
        f"items: {pro['items_done']} of {pro['items']} done ({_pct(share)}); "
        f"answers: {pro['answers_real']} on items + {pro['answers_sentinel']} on sentinels; per item {spread}",
        f"raters: {pro['raters']} ({pro['raters_active']} active, {pro['raters_finished']} finished, "
        f"{pro['raters_screened_out']} screened out{names})",
        f"sentinels right: {_pct(s['sentinel_accuracy'])}; agreement with the majority: {_pct(s['agreement'])}; "
        f"median response time {rt}",
    ]
    return "\n".join(lines)


def summary_version(con: sqlite3.Connection) -> tuple[Any, ...]:
    """The dashboard's cache key: it changes whenever the summary may change.

    Answers, raters, assignments, outcomes, and every 5 s for the raters' activity.
    """
    row = summary_version_row(con)
    return (*row, int(time.time() // 5))
