"""A hostile study database against what crowd platforms and the dashboard read from it: the
settings in ``config`` (a completion URL that is not http(s), values that are not JSON or out of
range), the study's id and link secret in ``study_meta``, the platform, study, session and
outcome rows that ``export`` copies into ``raters.csv``, and rater ids that ``bapps judge
status`` prints. Also: the dashboard's summary with the right admin token but from another site.

A study file may come from someone else; whatever it holds must be refused with an error naming
the table and field, or shown inert, never passed on to a rater's page, a file name or a terminal.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bapps_toolkit.errors import DataError
from bapps_toolkit.judge import create_from_set, export
from bapps_toolkit.judge.keys import link_key, study_keys
from bapps_toolkit.judge.manage import new_admin_token, status_summary
from bapps_toolkit.judge.store import load_config, open_study

from .judge_client import client_for, error_of, snapshot

pytest.importorskip("flask")

SERVED = "http://127.0.0.1:8765"


@pytest.fixture()
def prolific(hostile_set, tmp_path):
    return create_from_set(hostile_set, tmp_path / "p.sqlite", platform="prolific", sentinel_share=0.0,
                           items_per_rater=3)


def _sql(db: Path, statement: str, *args: object) -> None:
    con = sqlite3.connect(db)
    con.execute(statement, args)
    con.commit()
    con.close()


def _arrive(db: Path, client, pid: str = "p1") -> dict:
    con = open_study(db)
    key = link_key(study_keys(con))
    con.close()
    r = client.post("/api/arrive", json={"PROLIFIC_PID": pid, "STUDY_ID": "st1", "SESSION_ID": "se1", "key": key})
    assert r.status_code == 200, r.get_data()[:200]
    return r.get_json()


def _answer_all(client, rater: str, token: str) -> None:
    while True:
        t = client.get(f"/api/next?rater={rater}&token={token}").get_json()
        if t["done"]:
            return
        side = ("left" if t["kind"] == "2afc" else "same")
        r = client.post("/api/answer", json={"rater": rater, "token": token, "item": t["item"], "side": side,
                                             "rt_ms": 800.0, **({"timings": {"ref_ms": 1000.0, "blank_ms": 250.0,
                                                                             "dist_ms": 1000.0}}
                                                                if t["kind"] == "jnd" else {})})
        assert r.status_code == 200, r.get_data()[:300]


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize("name, value, words", [
    ("completion_url", json.dumps("javascript:alert(document.cookie)"), "completion_url"),
    ("completion_url", json.dumps("https://x.example/done?cc={code}&a={b}"), "completion_url"),
    ("completion_url", json.dumps("https://x.example/\" onload=\"x"), "completion_url"),
    ("redirect_after_s", json.dumps(-5), "redirect_after_s"),
    ("platform", json.dumps("<script>"), "platform"),
    ("completion_code", json.dumps("A" * 5000), "completion_code"),
    ("judgments_per_item", "{not json", "not JSON"),
    ("judgments_per_item", "[" * 100000 + "]" * 100000, "not JSON"),
    ("no_such_setting", json.dumps(1), "unknown study settings"),
    ("seed", json.dumps("x" * 10000), "seed must be an integer"),
    ("seed", json.dumps([1, 2]), "seed must be an integer"),
    ("seed", json.dumps(2**70), "seed must be an integer"),
    ("instructions", json.dumps({"a": 1}), "instructions must be text"),
    ("instructions", json.dumps("x" * 20001), "instructions must be text"),
])
def test_hostile_settings_are_refused_before_anything_is_served(prolific, name, value, words):
    _sql(prolific, "INSERT OR REPLACE INTO config VALUES (?, ?)", name, value)
    con = open_study(prolific)
    with pytest.raises(DataError, match=words) as err:
        load_config(con)
    con.close()
    assert "config" in str(err.value) and len(str(err.value)) < 700
    with pytest.raises(DataError, match=words):
        client_for(prolific)  # the server does not start
    with pytest.raises(DataError, match=words):
        status_summary(prolific)


@pytest.mark.parametrize("column, value", [("study_id", "x'); DROP TABLE raters; --"), ("link_secret", ""),
                                           ("link_secret", "00" * 4), ("link_secret", "zz" * 32)])
def test_hostile_link_secret_refused(prolific, column, value):
    c = client_for(prolific)
    _sql(prolific, "UPDATE study_meta SET value=? WHERE name=?", value, column)
    before = snapshot(prolific)
    r = c.post("/api/arrive", json={"PROLIFIC_PID": "p1", "STUDY_ID": "s", "SESSION_ID": "s", "key": "A" * 43})
    assert r.status_code >= 500 and r.mimetype == "application/json"  # the study is broken, not the request
    assert snapshot(prolific) == before
    con = open_study(prolific)
    with pytest.raises(DataError, match="study_meta"):
        study_keys(con)
    con.close()


# ----------------------------------------------------------------------------- export of platform rows
@pytest.mark.parametrize("statement, field", [
    ("UPDATE arrivals SET platform='=HYPERLINK(\"http://x\")'", "'platform'"),
    ("UPDATE arrivals SET study='../../etc/passwd'", "'study_id'"),
    ("UPDATE arrivals SET session=X'00ff'", "'session_id'"),
    ("UPDATE arrivals SET session='" + "s" * 65 + "'", "'session_id'"),
    ("UPDATE outcomes SET outcome='<img src=x onerror=alert(1)>'", "'outcome'"),
])
def test_export_refuses_hostile_platform_rows(prolific, tmp_path, statement, field):
    c = client_for(prolific)
    who = _arrive(prolific, c)
    _answer_all(c, who["rater"], who["token"])
    _sql(prolific, statement)
    with pytest.raises(DataError, match=field):
        export(prolific, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") or "out" in p.name] == []


def test_export_writes_platform_rows_it_checked(prolific, tmp_path):
    c = client_for(prolific)
    who = _arrive(prolific, c, "p-1")
    _answer_all(c, who["rater"], who["token"])
    export(prolific, tmp_path / "out")
    rows = (tmp_path / "out" / "raters.csv").read_text().splitlines()
    assert rows[0].endswith("platform,study_id,session_id,outcome")
    assert rows[1].startswith("p-1,") and rows[1].endswith("prolific,st1,se1,complete")


# ----------------------------------------------------------------------------- status and dashboard
def test_status_prints_hostile_rater_ids_inert(prolific):
    evil = "\x1b]0;pwned\x07\x1b[2J" + "x" * 500
    _sql(prolific, "INSERT INTO raters (id, token_sha256, created, seen) VALUES (?, NULL, 1, 1)", evil)
    _sql(prolific, "INSERT INTO outcomes VALUES (?, 'screened_out', NULL, 2, 0, 1)", evil)
    text = status_summary(prolific)
    assert "screened out: '" in text
    assert "\x1b" not in text and "\x07" not in text and len(text) < 2000


def test_admin_summary_from_another_site_is_refused_with_the_right_token(prolific):
    token = new_admin_token(prolific)
    c = client_for(prolific)
    auth = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/admin/summary", headers=auth, base_url=SERVED).status_code == 200
    for extra, want in (({"Host": "evil.example"}, 403), ({"Origin": "http://evil.example"}, 403),
                        ({"Origin": "null"}, 403), ({"Sec-Fetch-Site": "cross-site"}, 403)):
        r = c.get("/api/admin/summary", headers={**auth, **extra}, base_url=SERVED)
        msg = error_of(r, want)
        assert "raters" not in r.get_json() and token not in msg
