"""Turning a study database into a data set: ``export`` and the ``status`` report.

Export (BAPPS layout): ``2afc/<split>/<cat>/{ref,p0,p1}/<stem>.png`` and ``judge/<stem>.npy`` =
fraction of valid raters who preferred ``p1``; ``jnd/.../{p0,p1}`` and ``same/<stem>.npy`` =
fraction who said "same". Or (``fmt="csv"``) ``images/`` plus ``manifest_2afc.csv``
(``ref,p0,p1,judge,n_p0,n_p1``) / ``manifest_jnd.csv`` (``p0,p1,same,n_same,n_different``).
Both add ``raters.csv`` (answers per kind, median response time, sentinel accuracy, 2AFC and
JND agreement with the other raters, kept or dropped; for raters who came through a crowd
platform's study link its platform, study and session ids and their outcome) and ``summary.json``: the pairwise rater
agreement per kind (the share of pairs of kept raters answering one item alike, over items
with two or more votes) and the human 2AFC ceiling of BAPPS, ``mean(p² + (1 − p)²)`` over the
judged items (Zhang et al., CVPR 2018), which is the same agreement counted with replacement.
``min_sentinel_accuracy`` drops raters below it (and raters who met no sentinel) from votes,
agreement and ceiling. Sentinel
trials are never exported. The whole folder is written under a temporary name and renamed.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..scores import human_ceiling_2afc
from .store import open_study

PathLike = Union[str, "os.PathLike[str]"]


def _rater_table(con) -> dict[str, dict[str, Any]]:
    raters: dict[str, dict[str, Any]] = {}
    for rid, in con.execute("SELECT id FROM raters ORDER BY id"):
        raters[rid] = {"rater": rid, "answers": 0, "answers_2afc": 0, "answers_jnd": 0, "rts": [],
                       "sentinels": 0, "sentinels_right": 0}
    rows = con.execute("SELECT a.rater, i.kind, i.expected, a.answer, a.rt_ms FROM answers a "
                       "JOIN items i ON i.id=a.item")
    for rid, kind, expected, answer, rt in rows:
        r = raters[rid]
        r["answers"] += 1
        r[f"answers_{kind}"] += 1
        r["rts"].append(rt)
        if expected is not None:
            r["sentinels"] += 1
            r["sentinels_right"] += int(answer == expected)
    for rid, plat, study, session, outcome in con.execute(
            "SELECT r.id, a.platform, a.study, a.session, o.outcome FROM raters r LEFT JOIN arrivals a "
            "ON a.rater = r.id LEFT JOIN outcomes o ON o.rater = r.id"):
        raters[rid].update(platform=plat or "", study_id=study or "", session_id=session or "", outcome=outcome or "")
    for r in raters.values():
        r["sentinel_accuracy"] = r["sentinels_right"] / r["sentinels"] if r["sentinels"] else float("nan")
        r["median_rt_ms"] = float(np.median(r.pop("rts"))) if r["answers"] else float("nan")
    return raters


def _agreement(votes: dict[int, list[tuple[str, int]]], raters: dict[str, dict[str, Any]], kind: str) -> float:
    """Mean pairwise agreement over items with >= 2 votes; also per rater (vs. the others),
    stored as ``agreement_<kind>``."""
    pair_agree: list[float] = []
    per: dict[str, list[float]] = defaultdict(list)
    for vs in votes.values():
        for a in range(len(vs)):
            for b in range(a + 1, len(vs)):
                same = float(vs[a][1] == vs[b][1])
                pair_agree.append(same)
                per[vs[a][0]].append(same)
                per[vs[b][0]].append(same)
    for rid, r in raters.items():
        r[f"agreement_{kind}"] = float(np.mean(per[rid])) if per[rid] else float("nan")
    return float(np.mean(pair_agree)) if pair_agree else float("nan")


def tally(db: PathLike, min_sentinel_accuracy: float | None = None) -> dict[str, Any]:
    """Votes per real item from valid raters, the rater table and agreement figures."""
    con = open_study(db)
    try:
        raters = _rater_table(con)
        for r in raters.values():
            acc = r["sentinel_accuracy"]
            r["kept"] = min_sentinel_accuracy is None or (r["sentinels"] > 0 and acc >= min_sentinel_accuracy)
        items = {i: {"id": i, "key": k, "stem": s, "kind": kind, "votes": []}
                 for i, k, s, kind in con.execute(
                     "SELECT id, set_key, stem, kind FROM items WHERE expected IS NULL ORDER BY id")}
        for rid, item, answer in con.execute("SELECT rater, item, answer FROM answers"):
            if item in items and raters[rid]["kept"]:
                items[item]["votes"].append((rid, answer))
    finally:
        con.close()
    summary: dict[str, Any] = {"raters": len(raters), "raters_kept": sum(r["kept"] for r in raters.values()),
                               "min_sentinel_accuracy": min_sentinel_accuracy}
    for kind in ("2afc", "jnd"):
        votes = {i: it["votes"] for i, it in items.items() if it["kind"] == kind and it["votes"]}
        summary[f"{kind}_items"] = sum(1 for it in items.values() if it["kind"] == kind)
        summary[f"{kind}_items_judged"] = len(votes)
        summary[f"{kind}_pairwise_agreement"] = _agreement(votes, raters, kind)
        if kind == "2afc" and votes:
            frac = [np.mean([v for _, v in vs]) for vs in votes.values()]
            summary["human_ceiling_2afc"] = human_ceiling_2afc(np.asarray(frac, dtype=np.float64))
    return {"items": items, "raters": raters, "summary": summary}


def _write_bapps(out: Path, con, items: list[dict[str, Any]]) -> None:
    for it in items:
        roles = ("ref", "p0", "p1") if it["kind"] == "2afc" else ("p0", "p1")
        row = con.execute(f"SELECT {', '.join(roles)} FROM items WHERE id=?", (it["id"],)).fetchone()
        base = out / it["key"]
        for role, data in zip(roles, row, strict=True):
            (base / role).mkdir(parents=True, exist_ok=True)
            (base / role / f"{it['stem']}.png").write_bytes(bytes(data))
        sub = "judge" if it["kind"] == "2afc" else "same"
        (base / sub).mkdir(parents=True, exist_ok=True)
        np.save(base / sub / f"{it['stem']}.npy", np.asarray([it["fraction"]], dtype=np.float32))


def _write_csv(out: Path, con, items: list[dict[str, Any]]) -> None:
    heads = {"2afc": ["ref", "p0", "p1", "judge", "n_p0", "n_p1", "set_key", "stem"],
             "jnd": ["p0", "p1", "same", "n_same", "n_different", "set_key", "stem"]}
    for kind, head in heads.items():
        rows = []
        for it in (i for i in items if i["kind"] == kind):
            roles = ("ref", "p0", "p1") if kind == "2afc" else ("p0", "p1")
            data = con.execute(f"SELECT {', '.join(roles)} FROM items WHERE id=?", (it["id"],)).fetchone()
            names = []
            for role, blob in zip(roles, data, strict=True):
                rel = Path("images") / it["key"].replace("/", "_") / role / f"{it['stem']}.png"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                (out / rel).write_bytes(bytes(blob))
                names.append(rel.as_posix())
            n1 = sum(v for _, v in it["votes"])
            n0 = len(it["votes"]) - n1
            counts = [n0, n1] if kind == "2afc" else [n1, n0]
            rows.append(names + [f"{it['fraction']:.6f}"] + counts + [it["key"], it["stem"]])
        if rows:
            with open(out / f"manifest_{kind}.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(head)
                w.writerows(rows)


def export(db: PathLike, out_dir: PathLike, *, fmt: str = "bapps", min_sentinel_accuracy: float | None = None,
           force: bool = False) -> dict[str, Any]:
    """Write the judged data set to ``out_dir`` (atomically); returns the summary."""
    if fmt not in ("bapps", "csv"):
        raise ValueError(f"export format must be 'bapps' or 'csv', got {fmt!r}")
    out = Path(out_dir)
    if out.exists() and not force:
        raise FileExistsError(f"export folder {out} already exists")
    t = tally(db, min_sentinel_accuracy)
    items = [it for it in t["items"].values() if it["votes"]]
    if not items:
        raise ValueError(f"{db}: no item has an answer from a kept rater; nothing to export")
    for it in items:
        it["fraction"] = float(np.mean([v for _, v in it["votes"]]))
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    con = open_study(db)
    try:
        (_write_bapps if fmt == "bapps" else _write_csv)(tmp, con, items)
        _write_raters(tmp / "raters.csv", t["raters"])
        summary = {k: (None if isinstance(v, float) and v != v else v)  # NaN (undefined) -> null
                   for k, v in {**t["summary"], "items_exported": len(items), "format": fmt}.items()}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        con.close()
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return summary


def _write_raters(path: Path, raters: dict[str, dict[str, Any]]) -> None:
    cols = ["rater", "answers", "answers_2afc", "answers_jnd", "median_rt_ms", "sentinels", "sentinels_right",
            "sentinel_accuracy", "agreement_2afc", "agreement_jnd", "kept", "platform", "study_id", "session_id",
            "outcome"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in raters.values():
            w.writerow(r)


def status_text(db: PathLike) -> str:
    """Progress per rater (answered of assigned, sentinels answered right) and per item
    (answers of the wanted judgments), as plain text."""
    con = open_study(db)
    try:
        want = json.loads(con.execute("SELECT value FROM config WHERE name='judgments_per_item'").fetchone()[0])
        table = _rater_table(con)
        lines = ["rater                 answered / assigned  sentinels right"]
        for rid, n_ans, n_asg in con.execute(
                "SELECT r.id, (SELECT COUNT(*) FROM answers WHERE rater=r.id), "
                "(SELECT COUNT(*) FROM assignments WHERE rater=r.id) FROM raters r ORDER BY r.id"):
            t = table[rid]
            sent = f"{t['sentinels_right']} of {t['sentinels']}" if t["sentinels"] else "none yet"
            lines.append(f"{rid:<20}  {n_ans:>8} / {n_asg:<8}  {sent}")
        rows = con.execute("SELECT i.id, i.set_key, i.stem, (SELECT COUNT(*) FROM answers WHERE item=i.id) "
                           "FROM items i WHERE i.expected IS NULL ORDER BY i.id").fetchall()
        full = sum(1 for r in rows if r[3] >= want)
        lines += ["", f"items: {full} of {len(rows)} have {want} judgments",
                  "item  set                   stem  answers"]
        lines += [f"{i:>4}  {k:<20}  {s}  {n}/{want}" for i, k, s, n in rows]
    finally:
        con.close()
    return "\n".join(lines)
