"""The study dashboard's summary against a hand-computed study, the admin token (issued once,
stored hashed, rotated), the dashboard endpoints behind it, and ``bapps judge status``."""
from __future__ import annotations

import sqlite3
import time

import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.judge.manage import new_admin_token, status_summary
from bapps_toolkit.judge.store import load_config, open_study
from bapps_toolkit.judge.summary import study_summary

pytest.importorskip("flask")


def _insert(db, rows: list[tuple[str, int, int, float]]) -> None:
    """Answers ``(rater, item, answer, rt_ms)`` with their raters and assignments."""
    con = sqlite3.connect(db)
    now = time.time()
    for rater in sorted({r for r, *_ in rows}):
        con.execute("INSERT INTO raters (id, created, seen) VALUES (?, ?, ?)", (rater, now, now))
    for pos, (rater, item, answer, rt) in enumerate(rows):
        con.execute("INSERT INTO assignments VALUES (?, ?, ?)", (rater, item, pos))
        con.execute("INSERT INTO answers (rater, item, swapped, side, answer, rt_ms, created) VALUES (?,?,0,?,?,?,?)",
                    (rater, item, "left", answer, rt, now))
    con.commit()
    con.close()


def test_summary_matches_a_hand_computed_study(make_study):
    db = make_study(sentinel_share=0.1, judgments_per_item=3)
    con = sqlite3.connect(db)
    real = [i for i, in con.execute("SELECT id FROM items WHERE expected IS NULL ORDER BY id")]
    sent = con.execute("SELECT id, expected FROM items WHERE expected IS NOT NULL ORDER BY id").fetchall()
    con.close()
    i1, i2, i3 = real[:3]
    s_id, s_right = sent[0]
    # leave-one-out majorities: item 1 (a, b, c say 1; d says 0): a, b, c agree, d does not;
    # item 2 (a 1, b 0): each disagrees with the other; item 3 (a 0, b 0, c 1): a and b face a tie
    # (not counted), c disagrees. So a, b, c: 1 of 2; d: 0 of 1; overall 3 of 7.
    rows = [("a", i1, 1, 400.0), ("b", i1, 1, 600.0), ("c", i1, 1, 2000.0), ("d", i1, 0, 1000.0),
            ("a", i2, 1, 800.0), ("b", i2, 0, 900.0),
            ("a", i3, 0, 300.0), ("b", i3, 0, 700.0), ("c", i3, 1, 1200.0),
            ("a", s_id, s_right, 500.0), ("c", s_id, 1 - s_right, 3000.0)]
    _insert(db, rows)
    con = open_study(db)
    s = study_summary(con, load_config(con))
    con.close()
    by = {r["rater"]: r for r in s["raters"]}
    for r in "abc":
        assert (by[r]["agreement"], by[r]["agreement_items"]) == (0.5, 2), r
    assert (by["d"]["agreement"], by["d"]["agreement_items"]) == (0.0, 1)
    assert s["agreement"] == pytest.approx(3 / 7)
    assert (by["a"]["sentinels"], by["a"]["sentinel_accuracy"]) == (1, 1.0)
    assert (by["c"]["sentinels"], by["c"]["sentinel_accuracy"]) == (1, 0.0) and by["b"]["sentinel_accuracy"] is None
    assert s["sentinel_accuracy"] == 0.5
    assert by["a"]["median_rt_ms"] == 450.0 and s["median_rt_ms"] == 800.0
    p = s["progress"]
    assert (p["items"], p["items_done"], p["answers_real"], p["answers_sentinel"], p["raters"]) == (18, 2, 9, 2, 4)
    assert s["answers_per_item"]["counts"][:5] == [15, 0, 1, 1, 1]
    assert sum(s["response_ms"]["counts"]) == 11 and s["widths"] is None


def test_adaptive_summary_has_widths_and_done_by_width(make_study):
    db = make_study(sentinel_share=0.0, assignment="adaptive", target_width=0.5, judgments_per_item=40)
    real = [i for i, in sqlite3.connect(db).execute("SELECT id FROM items ORDER BY id")]
    _insert(db, [(f"r{j}", real[0], 1, 500.0) for j in range(12)])  # Beta(13, 1): width 0.2 < 0.5
    con = open_study(db)
    s = study_summary(con, load_config(con))
    con.close()
    assert s["progress"]["items_done"] == 1 and sum(s["widths"]["counts"]) == 18
    assert s["policy"]["assignment"] == "adaptive" and s["policy"]["target_width"] == 0.5


def test_admin_token_is_needed_hashed_and_rotated(make_study):
    from bapps_toolkit.judge.app import create_app

    db = make_study()
    c = create_app(db).test_client()
    r = c.get("/api/admin/summary")
    assert r.status_code == 401 and "admin token" in r.get_json()["error"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    token = new_admin_token(db)
    stored = dict(sqlite3.connect(db).execute("SELECT name, value FROM study_meta"))
    assert token not in stored.values() and len(stored["admin_token_sha256"]) == 64
    ok = c.get("/api/admin/summary", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.get_json()["progress"]["items"] == 18
    assert ok.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert ok.headers["X-Content-Type-Options"] == "nosniff" and ok.headers["Cache-Control"] == "no-store"
    newer = new_admin_token(db)
    assert c.get("/api/admin/summary", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert c.get("/api/admin/summary", headers={"Authorization": f"Bearer {newer}"}).status_code == 200
    page = c.get("/admin")
    assert page.status_code == 200 and b"<script src=\"/static/dashboard.js\"></script>" in page.data
    assert b"<script>" not in page.data and b"style=" not in page.data  # nothing inline (CSP default-src 'self')


def test_status_prints_the_summary_in_a_few_lines(make_study, capsys):
    db = make_study(sentinel_share=0.0)
    real = [i for i, in sqlite3.connect(db).execute("SELECT id FROM items ORDER BY id")]
    _insert(db, [("ann", real[0], 1, 700.0), ("bob", real[0], 0, 900.0)])
    text = status_summary(db)
    assert len(text.splitlines()) == 4
    assert "balanced (5 judgments per item)" in text and "items: 0 of 18 done" in text
    assert "answers: 2 on items + 0 on sentinels" in text and "median response time 800 ms" in text
    assert main(["judge", "status", "--db", str(db)]) == 0
    assert capsys.readouterr().out.strip() == text
    assert main(["judge", "admin-token", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "admin token" in out and "/admin#token=" in out
