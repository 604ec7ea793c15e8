"""The judge HTTP API, storage, assignment, validation and export (no browser)."""
from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.data.layout import scan_set
from bapps_toolkit.judge import add_rater, export, read_items, status_text, tally
from bapps_toolkit.judge.store import open_study

from .helpers import answer_for, call, jnd_timings, nxt


def _answer_all(url: str, rater: str, choose=None, token: str | None = None) -> int:
    n = 0
    while True:
        st, t = nxt(url, rater, token)
        assert st == 200, t
        if t["done"]:
            return n
        body = {**answer_for(t, choose(t) if choose else None), "rater": rater}
        if token:
            body["token"] = token
        st, r = call(url, "/api/answer", body)
        assert st == 200, r
        n += 1


def test_items_read_unjudged_folder_csv(unjudged, tmp_path):
    root, truth = unjudged
    items = read_items(root)
    assert sum(it.kind == "2afc" for it in items) == len(truth["2afc"])
    assert sum(it.kind == "jnd" for it in items) == len(truth["jnd"])
    man = tmp_path / "m.csv"
    base = root / "2afc" / "val" / "cnn"
    # unjudged: image columns only (a judge column, if present, would be ignored)
    man.write_text("ref,p0,p1\n" + "".join(f"{base}/ref/{s}.png,{base}/p0/{s}.png,{base}/p1/{s}.png\n"
                                            for s in ("000", "001")))
    got = read_items(man)
    assert [it.key for it in got] == ["2afc/val/own"] * 2 and [it.stem for it in got] == ["000001", "000002"]
    assert got[0].images["p1"] == read_items(root)[0].images["p1"]  # same pixels as the folder item 000
    jbase = root / "jnd" / "val" / "cnn"
    man.write_text("p0,p1,category,id\n" + "".join(f"{jbase}/p0/{s}.png,{jbase}/p1/{s}.png,mine,x{s}\n"
                                                   for s in ("000", "001", "002")))
    got = read_items(man)
    assert {it.key for it in got} == {"jnd/val/mine"} and [it.stem for it in got] == ["x000", "x001", "x002"]
    assert set(got[0].images) == {"p0", "p1"}
    man.write_text("ref,p0\nx,y\n")
    with pytest.raises(ValueError, match="missing column.*p1"):
        read_items(man)
    man.write_text(f"ref,p0,p1\n{base}/ref/000.png,{base}/p0/000.png,{base}/p1/nope.png\n")
    with pytest.raises(ValueError, match="data row 1.*field 'p1'.*does not exist"):
        read_items(man)


def test_balanced_assignment_and_resume(make_study, live):
    db = make_study(judgments_per_item=2, items_per_rater=6, sentinel_share=0.0)
    srv = live(db)
    for r in ("r1", "r2", "r3"):
        st, t = nxt(srv.url, r)
        assert st == 200 and t["total"] == 6
    con = sqlite3.connect(db)
    counts = [c for _, c in con.execute("SELECT item, COUNT(*) FROM assignments GROUP BY item")]
    assert len(counts) == 18 and set(counts) == {1}  # 18 slots spread over the 18 items, one each
    # resume: answer two, "close the tab", the next trial is the third assigned item
    order = [i for i, in con.execute("SELECT item FROM assignments WHERE rater='r1' ORDER BY position")]
    for _ in range(2):
        _, t = nxt(srv.url, "r1")
        assert call(srv.url, "/api/answer", {**answer_for(t), "rater": "r1"})[0] == 200
    _, t = nxt(srv.url, "r1")
    assert t["item"] == order[2] and t["answered"] == 2


def test_every_item_reaches_wanted_judgments(make_study, live):
    db = make_study(judgments_per_item=3, items_per_rater=9, sentinel_share=0.0)
    srv = live(db)
    for r in ("a", "b", "c", "d", "e", "f"):
        _answer_all(srv.url, r)
    con = sqlite3.connect(db)
    per_item = dict(con.execute("SELECT item, COUNT(*) FROM answers GROUP BY item"))
    assert len(per_item) == 18 and set(per_item.values()) == {3}
    assert "items: 18 of 18 have 3 judgments" in status_text(db)


def test_validation_refuses_and_writes_nothing(make_study, live):
    db = make_study(sentinel_share=0.0, items_per_rater=4)
    srv = live(db)
    _, t = nxt(srv.url, "r1")
    nxt(srv.url, "r2")
    con = sqlite3.connect(db)
    unassigned = con.execute("SELECT id FROM items WHERE id NOT IN (SELECT item FROM assignments WHERE rater='r1')"
                             ).fetchone()[0]
    good = {**answer_for(t), "rater": "r1"}
    bad = [
        ({**good, "item": 99999}, 404), ({**good, "item": "1"}, 400), ({**good, "item": True}, 400),
        ({**good, "side": "up"}, 400), ({**good, "rt_ms": "fast"}, 400), ({**good, "rt_ms": -1}, 400),
        ({**good, "rater": "../etc"}, 400), ({**good, "extra": 1}, 400), ({**good, "item": unassigned}, 403),
        ({**good, "rater": 5}, 400), ([1, 2], 400),
    ]
    if t["kind"] == "jnd":
        bad.append(({**good, "timings": {"ref_ms": "x", "blank_ms": 1, "dist_ms": 1}}, 400))
    for body, want in bad:
        st, r = call(srv.url, "/api/answer", body)
        assert st == want, (body, r)
        assert "error" in r
    assert call(srv.url, "/api/answer", raw=b"{not json")[0] == 400
    assert call(srv.url, "/api/answer", raw=b"[" + b"1," * 20000 + b"1]")[0] == 413
    assert con.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0
    assert call(srv.url, "/api/answer", good)[0] == 200
    st, r = call(srv.url, "/api/answer", good)
    assert st == 409 and "already answered" in r["error"]
    assert con.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 1


def test_images_only_by_item_id(make_study, live):
    db = make_study(sentinel_share=0.0, items_per_rater=3)
    srv = live(db)
    _, t = nxt(srv.url, "r1")
    st, png = call(srv.url, f"/api/image/{t['item']}/p0?rater=r1")
    assert st == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    for path in ("/api/image/../../etc/passwd?rater=r1", "/api/image/%2e%2e%2fsetup.cfg/p0?rater=r1",
                 f"/api/image/{t['item']}/..%2f..%2fsetup.cfg?rater=r1", "/static/../store.py",
                 "/static/%2e%2e/store.py", f"/api/image/{t['item']}/items?rater=r1", "/api/image/1/p0"):
        st, r = call(srv.url, path)
        assert st in (400, 403, 404), path
        assert not (isinstance(r, bytes) and b"import" in r), path
    st, _ = call(srv.url, "/api/image/99999/p0?rater=r1")
    assert st == 403


def test_tokens_required_beyond_loopback(make_study):
    pytest.importorskip("flask")
    from bapps_toolkit.judge.app import create_app
    db = make_study(sentinel_share=0.0, items_per_rater=2)
    tok_a = add_rater(db, "alice")
    add_rater(db, "bob")
    client = create_app(db, require_token=True).test_client()
    assert client.get("/api/next?rater=mallory").status_code == 403
    assert client.get("/api/next?rater=alice").status_code == 403
    assert client.get("/api/next?rater=bob&token=" + tok_a).status_code == 403  # another rater's token
    r = client.get("/api/next?rater=alice", headers={"X-Rater-Token": tok_a})
    assert r.status_code == 200
    t = r.get_json()
    body = {**answer_for(t), "rater": "bob", "token": tok_a}
    assert client.post("/api/answer", json=body).status_code == 403
    assert client.post("/api/answer", json={**body, "rater": "alice"}).status_code == 200
    # even on loopback, a rater that has a token must present it
    loop = create_app(db, require_token=False).test_client()
    assert loop.get("/api/next?rater=alice").status_code == 403
    assert loop.get("/api/next?rater=carol").status_code == 200


def test_export_bapps_csv_threshold(make_study, live, tmp_path, unjudged):
    _, truth = unjudged
    db = make_study(judgments_per_item=4, sentinel_share=0.2)
    srv = live(db)

    con = open_study(db)
    exp = dict(con.execute("SELECT id, expected FROM items"))
    con.close()

    def careful(t):
        e = exp[t["item"]]
        if e is None:
            return None
        if t["kind"] == "2afc":
            return "right" if (e == 1) != bool(t["swapped"]) else "left"
        return "same" if e == 1 else "different"
    for r in ("c1", "c2", "c3"):
        _answer_all(srv.url, r, careful)
    _answer_all(srv.url, "sloppy", lambda t: "right" if t["kind"] == "2afc" else "different")
    s = export(db, tmp_path / "out")
    assert s["raters"] == 4 and s["raters_kept"] == 4
    sf = scan_set(tmp_path / "out", "2afc/val/cnn")
    assert len(sf) == len(truth["2afc"]) and "sentinel" not in "".join(sf.stems)
    assert len(scan_set(tmp_path / "out", "jnd/val/cnn")) == len(truth["jnd"])
    rows = {r["rater"]: r for r in csv.DictReader(open(tmp_path / "out" / "raters.csv"))}
    assert float(rows["c1"]["sentinel_accuracy"]) == 1.0
    assert float(rows["sloppy"]["sentinel_accuracy"]) < 1.0
    with pytest.raises(FileExistsError):
        export(db, tmp_path / "out")
    s2 = export(db, tmp_path / "kept", min_sentinel_accuracy=0.99, fmt="csv")
    assert s2["raters_kept"] == 3
    man = list(csv.DictReader(open(tmp_path / "kept" / "manifest_2afc.csv")))
    assert all(int(r["n_p0"]) + int(r["n_p1"]) == 3 for r in man)  # sloppy dropped
    for r in man:
        assert float(r["judge"]) == pytest.approx(int(r["n_p1"]) / 3)
        assert (tmp_path / "kept" / r["ref"]).is_file()
    summary = json.loads((tmp_path / "kept" / "summary.json").read_text())
    assert 0.5 <= summary["human_ceiling_2afc"] <= 1.0
    assert not list(tmp_path.glob(".*tmp*"))
    t = tally(db, min_sentinel_accuracy=0.99)  # the typed records behind the export
    assert t.summary.raters_kept == 3 and not t.raters["sloppy"].kept and t.raters["c1"].sentinel_accuracy == 1.0
    assert {k: v for k, v in t.summary.as_json().items() if k in summary} == \
        {k: v for k, v in summary.items() if k in t.summary.as_json()}
    by_stem = {(it.key, it.stem): it for it in t.items.values()}
    for r in man:
        it = by_stem[(r["set_key"], r["stem"])]
        assert it.kind == "2afc" and len(it.votes) == 3 and it.fraction == pytest.approx(float(r["judge"]), abs=1e-6)


def test_answers_map_swap_to_p0_p1(make_study, live):
    db = make_study(sentinel_share=0.0, items_per_rater=18)
    srv = live(db)
    _answer_all(srv.url, "r", lambda t: "left" if t["kind"] == "2afc" else "same")
    con = sqlite3.connect(db)
    rows = con.execute("SELECT a.swapped, a.answer, a.timings FROM answers a JOIN items i ON i.id=a.item "
                       "WHERE i.kind='2afc'").fetchall()
    assert {s for s, _, _ in rows} == {0, 1}  # both placements occur
    assert all(ans == (1 if s else 0) for s, ans, _ in rows)  # left = p1 exactly when swapped
    assert {s for s, in con.execute("SELECT a.swapped FROM answers a JOIN items i ON i.id=a.item "
                                    "WHERE i.kind='jnd'")} == {0}  # JND: reference (p0) always first
    jt = [json.loads(t) for t, in con.execute("SELECT a.timings FROM answers a JOIN items i ON i.id=a.item "
                                              "WHERE i.kind='jnd'")]
    assert jt and all(t == jnd_timings() for t in jt)


def test_cli_create_add_rater_status_export(unjudged, tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    assert main(["judge", "create", str(unjudged[0]), "--db", str(db), "--sentinel-share", "0.1"]) == 0
    assert main(["judge", "create", str(unjudged[0]), "--db", str(db)]) == 2
    assert main(["judge", "add-rater", "ann", "--db", str(db)]) == 0
    assert "token" in capsys.readouterr().out
    assert main(["judge", "status", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "items: 0 of 18 done" in out and "raters: 1 (0 active" in out and len(out.splitlines()) <= 6
    assert main(["judge", "status", "--db", str(db), "--items"]) == 0
    assert "ann" in capsys.readouterr().out  # per-rater lines with --items
    assert main(["judge", "export", "--db", str(db), "--out", str(tmp_path / "o")]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert main(["judge", "status", "--db", str(tmp_path / "missing.sqlite")]) == 2
    with pytest.raises(ValueError, match="sentinel_share"):
        from bapps_toolkit.judge import create_from_set
        create_from_set(unjudged[0], tmp_path / "x.sqlite", sentinel_share=0.9)
    assert not (tmp_path / "x.sqlite").exists()


def test_refusals_map_to_statuses():
    pytest.importorskip("flask")
    from bapps_toolkit.judge import refusals as r
    from bapps_toolkit.judge.app import status_of
    assert [status_of(e) for e in (r.InvalidRequest("x"), r.NotAllowed("x"), r.NotFound("x"), r.AlreadyAnswered("x"),
                                   r.TooManyNewRaters("x", 1), r.StudyUnavailable("x", "busy"))] == \
        [400, 403, 404, 409, 429, 503]


def test_items_from_packed_h5_ignore_judgments(mini_h5):
    from bapps_toolkit.data import load_2afc, load_jnd
    items = read_items(mini_h5)
    n2 = sum(len(s) for s in load_2afc(mini_h5))
    nj = sum(len(s) for s in load_jnd(mini_h5))
    assert sum(it.kind == "2afc" for it in items) == n2 and sum(it.kind == "jnd" for it in items) == nj
    assert all(it.expected is None and set(it.images) == ({"ref", "p0", "p1"} if it.kind == "2afc" else {"p0", "p1"})
               for it in items)


def test_items_read_a_user_category(tmp_path):
    """``bapps loss-study`` writes ``2afc/val/<task>``: judge reads it under that key."""
    from .helpers import build_unjudged

    root = tmp_path / "set"
    truth = build_unjudged(root, n_2afc=4, n_jnd=2, key_2afc="2afc/val/denoise")
    items = read_items(root)
    assert {it.key for it in items} == {"2afc/val/denoise", "jnd/val/cnn"}
    assert sum(it.key == "2afc/val/denoise" for it in items) == len(truth["2afc"])
