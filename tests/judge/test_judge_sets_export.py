"""Assignment when a rater leaves mid-study, export (agreement for 2AFC and JND, per-rater
table, threshold), the CSV round trip (export --format csv -> bapps pack -> evaluate, and back
into a new study) and ``bapps judge status`` (Flask's test client; no browser, no sockets)."""
from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.evaluate import evaluate
from bapps_toolkit.judge import export, read_items, status_text
from bapps_toolkit.judge.store import open_study

from .helpers import answer_for

pytest.importorskip("flask")


def _client(db):
    from bapps_toolkit.judge.app import create_app
    return create_app(db).test_client()


def _answer(client, rater: str, n: int | None = None, choose=None) -> int:
    """Answer up to ``n`` trials (all when None) as ``rater``; returns how many were answered."""
    done = 0
    while n is None or done < n:
        t = client.get(f"/api/next?rater={rater}").get_json()
        if t["done"]:
            break
        r = client.post("/api/answer", json={**answer_for(t, choose(t) if choose else None), "rater": rater})
        assert r.status_code == 200, r.get_json()
        done += 1
    return done


def _idle(db, rater: str, seconds: float) -> None:
    """Make ``rater`` look idle for ``seconds`` (shift their last activity back in time)."""
    con = sqlite3.connect(db)
    con.execute("UPDATE raters SET seen = seen - ? WHERE id=?", (seconds, rater))
    con.commit()
    con.close()


def test_idle_rater_items_offered_to_others(make_study):
    db = make_study(judgments_per_item=2, sentinel_share=0.0, reassign_after_s=600)
    c = _client(db)
    assert _answer(c, "r1", 3) == 3  # r1 answers 3 of 18 items, then leaves
    _answer(c, "r2")  # r2 answers all 18
    assert c.get("/api/next?rater=r3").get_json() == {"done": True, "answered": 0, "total": 0}  # r1 still active
    _idle(db, "r1", 599)
    assert c.get("/api/next?rater=r3").get_json()["done"]  # not idle long enough
    _idle(db, "r1", 2)
    t = c.get("/api/next?rater=r3").get_json()
    assert not t["done"] and t["total"] == 15  # r1's 15 unanswered items, offered to r3
    _answer(c, "r3")
    con = sqlite3.connect(db)
    per_item = dict(con.execute("SELECT item, COUNT(*) FROM answers GROUP BY item"))
    assert len(per_item) == 18 and set(per_item.values()) == {2}
    assert "items: 18 of 18 have 2 judgments" in status_text(db)
    # r1 comes back: their order is kept (the policy: an item may then get a third judgment)
    t = c.get("/api/next?rater=r1").get_json()
    assert not t["done"] and t["answered"] == 3 and t["total"] == 18
    assert _answer(c, "r1", 1) == 1
    assert sorted(set(dict(con.execute("SELECT item, COUNT(*) FROM answers GROUP BY item")).values())) == [2, 3]


def test_finished_rater_adopts_only_abandoned_items(make_study):
    db = make_study(judgments_per_item=2, items_per_rater=6, sentinel_share=0.0, reassign_after_s=60)
    c = _client(db)
    for r in ("a", "b", "c"):
        c.get(f"/api/next?rater={r}")  # 18 slots over 18 items: one rater each so far
    _answer(c, "a")
    assert _answer(c, "b", 2) == 2
    # a has answered its 6; nothing is abandoned yet, so a gets no more (items_per_rater holds)
    assert c.get("/api/next?rater=a").get_json() == {"done": True, "answered": 6, "total": 6}
    _idle(db, "b", 120)
    t = c.get("/api/next?rater=a").get_json()
    assert t["total"] == 10 and not t["done"]  # b's 4 unanswered items appended to a's order
    con = sqlite3.connect(db)
    b_left = {i for i, in con.execute("SELECT item FROM assignments WHERE rater='b' AND item NOT IN "
                                      "(SELECT item FROM answers WHERE rater='b')")}
    a_new = {i for i, in con.execute("SELECT item FROM assignments WHERE rater='a' AND position >= 6")}
    assert a_new == b_left


def test_never_reassign_when_zero(make_study):
    db = make_study(judgments_per_item=1, sentinel_share=0.0, reassign_after_s=0)
    c = _client(db)
    assert _answer(c, "r1", 2) == 2
    _idle(db, "r1", 10 ** 6)
    assert c.get("/api/next?rater=r2").get_json()["total"] == 0


def test_bad_reassign_setting(make_study):
    with pytest.raises(ValueError, match="reassign_after_s"):
        make_study(reassign_after_s=-1)


def _careful_and_sloppy(db, c) -> None:
    con = open_study(db)
    exp = dict(con.execute("SELECT id, expected FROM items"))
    con.close()

    def careful(t):
        e = exp[t["item"]]
        if e is None and t["kind"] == "jnd":  # real items: careful raters all answer alike (agreement 1)
            return "same"
        if e is None:  # 2AFC: p0, wherever it is shown
            return "right" if t["swapped"] else "left"
        if t["kind"] == "2afc":
            return "right" if (e == 1) != bool(t["swapped"]) else "left"
        return "same" if e == 1 else "different"
    for r in ("c1", "c2", "c3"):
        _answer(c, r, choose=careful)
    _answer(c, "sloppy", choose=lambda t: "right" if t["kind"] == "2afc" else "different")


def test_export_agreement_both_kinds_and_threshold(make_study, tmp_path):
    db = make_study(judgments_per_item=4, sentinel_share=0.2)
    c = _client(db)
    _careful_and_sloppy(db, c)
    s_all = export(db, tmp_path / "all")
    assert s_all["raters"] == 4 and s_all["2afc_pairwise_agreement"] < 1.0 and s_all["jnd_pairwise_agreement"] < 1.0
    s = export(db, tmp_path / "kept", min_sentinel_accuracy=0.99)
    assert s["raters_kept"] == 3
    # the three kept raters answer every real item alike: agreement 1 for both kinds, ceiling 1
    assert s["2afc_pairwise_agreement"] == 1.0 and s["jnd_pairwise_agreement"] == 1.0
    assert s["human_ceiling_2afc"] == 1.0
    rows = {r["rater"]: r for r in csv.DictReader(open(tmp_path / "kept" / "raters.csv"))}
    assert set(rows) == {"c1", "c2", "c3", "sloppy"}
    assert rows["sloppy"]["kept"] == "False" and rows["c1"]["kept"] == "True"
    assert float(rows["c1"]["agreement_jnd"]) == 1.0 and float(rows["c1"]["agreement_2afc"]) == 1.0
    assert int(rows["c1"]["answers_2afc"]) + int(rows["c1"]["answers_jnd"]) == int(rows["c1"]["answers"])
    assert float(rows["c1"]["median_rt_ms"]) == 500.0
    assert float(rows["sloppy"]["sentinel_accuracy"]) < 0.99 <= float(rows["c2"]["sentinel_accuracy"])
    assert json.loads((tmp_path / "kept" / "summary.json").read_text())["raters_kept"] == 3
    text = status_text(db)
    assert "items: 18 of 18 have 4 judgments" in text
    for r, row in rows.items():
        line = next(x for x in text.splitlines() if x.startswith(r + " "))
        assert line.split()[1:] == [row["answers"], "/", row["answers"], row["sentinels_right"], "of", row["sentinels"]]
    assert main(["judge", "status", "--db", str(db)]) == 0


def test_csv_export_packs_evaluates_and_reads_back(make_study, tmp_path, capsys):
    db = make_study(judgments_per_item=3, sentinel_share=0.1)
    c = _client(db)
    for r in ("u1", "u2", "u3"):
        _answer(c, r, choose=lambda t: ("left" if t["item"] % 2 else "right") if t["kind"] == "2afc" else
                ("same" if t["item"] % 3 else "different"))
    assert main(["judge", "export", "--db", str(db), "--out", str(tmp_path / "x"), "--format", "csv"]) == 0
    out = tmp_path / "x"
    man = [out / "manifest_2afc.csv", out / "manifest_jnd.csv"]
    assert all(m.is_file() for m in man)
    rows = list(csv.DictReader(open(man[0])))
    assert rows and all(int(r["n_p0"]) + int(r["n_p1"]) == 3 for r in rows)
    assert main(["pack", *map(str, man), str(tmp_path / "x.h5"), "--no-progress"]) == 0
    from bapps_toolkit.data import load_2afc, load_jnd
    sets = {s.key: s for s in load_2afc(tmp_path / "x.h5") + load_jnd(tmp_path / "x.h5")}
    assert set(sets) == {"2afc/val/cnn", "jnd/val/cnn"}  # the study's own set keys survive the trip
    by_stem = {r["stem"]: float(r["judge"]) for r in rows}
    s2 = sets["2afc/val/cnn"]
    assert [round(float(j), 4) for j in s2.judge] == [round(by_stem[st], 4) for st in s2.stems]
    table = evaluate(tmp_path / "x.h5", ["l2"], n_boot=20, progress=False)
    assert set(table["category"]) >= {"cnn"} and table["score"].between(0, 1).all()
    capsys.readouterr()
    back = read_items(man[0])  # an exported manifest is also a SET for a new study
    assert {it.key for it in back} == {"2afc/val/cnn"} and len(back) == len(rows)


def test_study_made_before_reassignment_still_opens(make_study):
    """A database without ``raters.seen`` and the ``reassign_after_s`` setting (an older study)
    gets the column on open and the setting's default; raters from before count as active."""
    db = make_study(judgments_per_item=1, sentinel_share=0.0)
    assert _answer(_client(db), "r1", 2) == 2
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE raters DROP COLUMN seen")
    con.execute("DELETE FROM config WHERE name='reassign_after_s'")
    con.commit()
    c = _client(db)
    assert "seen" in {r[1] for r in con.execute("PRAGMA table_info(raters)")}
    assert con.execute("SELECT seen FROM raters WHERE id='r1'").fetchone() == (None,)
    assert c.get("/api/next?rater=r2").get_json()["total"] == 0  # r1 (activity unknown) holds every item
    assert _answer(c, "r1") == 16
