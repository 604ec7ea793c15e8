"""Hostile requests against what studies on crowd platforms and the dashboard added to the judging
server: ``POST /api/arrive`` (forged, truncated and other studies' link keys, oversized and odd
participant ids, unknown fields, foreign hosts and origins, the cap on new raters), the admin
endpoints (no token, wrong tokens, brute force, tokens in the query string, oversized headers),
and hostile metric-distances files given at creation.

Every refusal is a JSON error with a 4xx status and writes nothing: the raters, assignments,
answers, arrivals, outcomes and study_meta tables are compared before and after. Property-based
fuzzing of the same endpoints is in :mod:`.test_judge_studies_fuzz`.
"""
from __future__ import annotations

import numpy as np
import pytest

from bapps_toolkit.errors import DataError
from bapps_toolkit.judge import create_from_set
from bapps_toolkit.judge.keys import link_key, study_keys
from bapps_toolkit.judge.manage import new_admin_token
from bapps_toolkit.judge.store import open_study

from .judge_client import client_for, error_of, snapshot

pytest.importorskip("flask")

SERVED = "http://127.0.0.1:8765"
PID = "5f3c9b2e8d1a4b0012ab34cd"


@pytest.fixture()
def prolific(hostile_set, tmp_path):
    return create_from_set(hostile_set, tmp_path / "p.sqlite", platform="prolific", sentinel_share=0.0,
                           items_per_rater=3)


def _key(db) -> str:
    con = open_study(db)
    try:
        return link_key(study_keys(con))
    finally:
        con.close()


def _body(key: str, **over: object) -> dict:
    return {"PROLIFIC_PID": PID, "STUDY_ID": "60aa00bb11cc22dd33ee44ff", "SESSION_ID": "sess", "key": key, **over}


# ----------------------------------------------------------------------------- forged links
def test_forged_and_foreign_link_keys_are_refused_without_a_write(prolific, hostile_set, tmp_path):
    other = create_from_set(hostile_set, tmp_path / "o.sqlite", platform="prolific", sentinel_share=0.0)
    key = _key(prolific)
    c = client_for(prolific)
    before = snapshot(prolific)
    forged = [_key(other), key[:-1] + ("A" if key[-1] != "A" else "B"), key[:-2], key + "A", key.lower(),
              "A" * len(key), "0"]
    for bad in forged:
        assert "not issued for this study" in error_of(c.post("/api/arrive", json=_body(bad)), 403), bad
    for bad in ("", "a b", "k%00", "k\n", "x" * 129, "ключ", "<script>", None, 5, ["k"], {"k": 1}):
        assert "key" in error_of(c.post("/api/arrive", json=_body(bad)), 400), bad
    body = _body(key)
    del body["key"]
    assert "key" in error_of(c.post("/api/arrive", json=body), 400)
    assert snapshot(prolific) == before


def test_odd_and_oversized_prolific_ids_are_refused(prolific):
    key = _key(prolific)
    c = client_for(prolific)
    before = snapshot(prolific)
    odd = ["", " ", "a" * 65, "x" * 10000, "5f3c\n", "5f3c\r\n", "5f3c%00", "5f\x00c", "{{%PROLIFIC_PID%}}",
           "../../etc/passwd", "5f3c 9b2e", "5f3c;DROP TABLE raters", "日本語", "5f3c\u202e", "<img src=x>", 12345,
           None, True, ["5f3c"]]
    for field in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"):
        for value in odd:
            msg = error_of(c.post("/api/arrive", json=_body(key, **{field: value})), (400, 413))
            assert field in msg or "request body" in msg, (field, value, msg)
    for missing in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"):
        body = _body(key)
        del body[missing]
        assert missing in error_of(c.post("/api/arrive", json=body), 400)
    assert "unknown fields" in error_of(c.post("/api/arrive", json=_body(key, rater="x")), 400)
    assert "unknown fields" in error_of(c.post("/api/arrive", json=_body(key, token="x")), 400)
    for raw in (b"[" * 5000, b"PROLIFIC_PID=x&key=y", b"", b"\xff\xfe"):
        error_of(c.post("/api/arrive", data=raw, content_type="application/json"), 400)
    error_of(c.post("/api/arrive", data=b'{"PROLIFIC_PID": "x"}', content_type="text/plain"), 400)
    error_of(c.get("/api/arrive"), 405)
    assert snapshot(prolific) == before


def test_arrivals_from_other_sites_are_refused(prolific):
    key = _key(prolific)
    c = client_for(prolific)
    before = snapshot(prolific)
    for headers, want in (({"Host": "evil.example"}, 403), ({"Origin": "http://evil.example"}, 403),
                          ({"Origin": "null"}, 403), ({"Sec-Fetch-Site": "cross-site"}, 403), ({"Host": ""}, 400)):
        r = c.post("/api/arrive", json=_body(key), base_url=SERVED, headers=headers)
        error_of(r, want)
    assert snapshot(prolific) == before


def test_arrivals_count_against_the_cap_on_new_raters(prolific):
    key = _key(prolific)
    c = client_for(prolific, new_raters_per_minute=3)
    for i in range(3):
        assert c.post("/api/arrive", json=_body(key, PROLIFIC_PID=f"p{i}")).status_code == 200
    before = snapshot(prolific)
    for i in range(3, 10):
        r = c.post("/api/arrive", json=_body(key, PROLIFIC_PID=f"p{i}"))
        assert "Many new raters" in error_of(r, 429) and int(r.headers["Retry-After"]) >= 1
    assert snapshot(prolific) == before
    assert c.post("/api/arrive", json=_body(key, PROLIFIC_PID="p0")).status_code == 200  # known: no new row


def test_a_known_id_cannot_be_taken_over(prolific):
    from bapps_toolkit.judge import add_rater

    key = _key(prolific)
    add_rater(prolific, "pilot1")
    c = client_for(prolific)
    assert c.post("/api/arrive", json=_body(key, PROLIFIC_PID="victim", SESSION_ID="s1")).status_code == 200
    before = snapshot(prolific)
    assert "another session" in error_of(c.post("/api/arrive", json=_body(key, PROLIFIC_PID="victim",
                                                                          SESSION_ID="s2")), 403)
    assert "already used" in error_of(c.post("/api/arrive", json=_body(key, PROLIFIC_PID="pilot1")), 403)
    # the token of one participant does not act as another
    tok = c.post("/api/arrive", json=_body(key, PROLIFIC_PID="victim", SESSION_ID="s1")).get_json()["token"]
    error_of(c.get(f"/api/next?rater=pilot1&token={tok}"), 403)
    assert snapshot(prolific) == before


# ----------------------------------------------------------------------------- admin endpoints
def test_admin_summary_without_or_with_malformed_tokens(prolific):
    token = new_admin_token(prolific)
    c = client_for(prolific)
    before = snapshot(prolific)
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {token}"},
                    {"Authorization": f"bearer {token}"}, {"Authorization": f"Bearer {token} extra"},
                    {"Authorization": f"Bearer  {token}"}, {"Authorization": "Bearer " + "A" * 257},
                    {"X-Rater-Token": token}):
        error_of(c.get("/api/admin/summary", headers=headers), 401)
    # never from the query string (it would end up in logs and history)
    assert "no query parameters" in error_of(c.get(f"/api/admin/summary?token={token}"), 400)
    error_of(c.post("/api/admin/summary", headers={"Authorization": f"Bearer {token}"}), 405)
    r = c.get("/api/admin/summary", headers={"Authorization": "Bearer " + "A" * 40000})
    error_of(r, (401, 431))
    assert snapshot(prolific) == before


def test_admin_token_brute_force_is_stopped_in_memory(prolific):
    from bapps_toolkit.judge.app import ADMIN_FAILURES_PER_MINUTE

    token = new_admin_token(prolific)
    c = client_for(prolific)
    before = snapshot(prolific)
    for i in range(ADMIN_FAILURES_PER_MINUTE):
        error_of(c.get("/api/admin/summary", headers={"Authorization": f"Bearer guess{i}"}), 401)
    r = c.get("/api/admin/summary", headers={"Authorization": "Bearer guess-more"})
    assert "too many wrong admin tokens" in error_of(r, 429) and 1 <= int(r.headers["Retry-After"]) <= 60
    # while locked the token is not even checked: the right one waits too (guessing learns nothing)
    error_of(c.get("/api/admin/summary", headers={"Authorization": f"Bearer {token}"}), 429)
    assert snapshot(prolific) == before  # the counter lives in memory: a refusal writes nothing
    other_app = client_for(prolific)  # a restarted server starts counting afresh
    assert other_app.get("/api/admin/summary", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_admin_without_any_token_issued_is_refused(prolific):
    c = client_for(prolific)
    error_of(c.get("/api/admin/summary", headers={"Authorization": "Bearer " + "A" * 43}), 401)


def test_dashboard_page_is_static_and_hardened(prolific):
    c = client_for(prolific)
    for path in ("/admin", "/static/dashboard.js", "/static/dashboard.css"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    error_of(c.get("/admin/../app.py"), 404)
    assert c.get("/admin", base_url=SERVED, headers={"Host": "evil.example"}).status_code == 403


# ----------------------------------------------------------------------------- hostile distances files
def test_hostile_distances_files(hostile_set, tmp_path):
    cases = {
        "nul.csv": (b"metric,set_key,stem,d0,d1\nl2,2afc/val/cnn,000,0.1,\x000.2\n", "not a number"),
        "long.csv": (b"metric,set_key,stem,d0,d1\n" + b"m" * 400 + b",2afc/val/cnn,000,0.1,0.2\n", "over 300"),
        "nokey.csv": (b"metric,stem,d0,d1\nl2,000,0.1,0.2\n", "needs set_key"),
        "badkind.csv": (b"metric,set_key,stem,d0,d1\nl2,../../x,000,0.1,0.2\n", "neither 2afc"),
        "inf.csv": (b"metric,set_key,stem,d0,d1\nl2,2afc/val/cnn,000,inf,0.2\n", "not a finite number"),
        "nohead.csv": (b"", "needs the columns"),
        "binary.csv": (b"\xff\xfe\x00\x01", "not UTF-8 text"),
    }
    many = "metric,set_key,stem,d0,d1\n" + "".join(f"m{i},2afc/val/cnn,000,0.1,0.2\n" for i in range(70))
    cases["many.csv"] = (many.encode(), "more than 64 metrics")
    for name, (data, msg) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=msg):
            create_from_set(hostile_set, tmp_path / "s.sqlite", distances=tmp_path / name, assignment="adaptive")
        assert not (tmp_path / "s.sqlite").exists(), name
    # an .npz holding a pickled object is refused without unpickling it
    evil = tmp_path / "evil.npz"
    np.savez(evil, **{"l2|2afc/val/cnn|stems": np.array([object()], dtype=object)})
    with pytest.raises(DataError):
        create_from_set(hostile_set, tmp_path / "s.sqlite", distances=evil, assignment="adaptive")
