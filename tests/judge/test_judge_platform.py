"""Crowd platforms through the HTTP API (Flask test client): Prolific and generic arrivals through
the signed study link, the completion code and URL, screening by sentinels (second code, or
asked to return), the study link printed by ``bapps judge link``, and what stays hidden."""
from __future__ import annotations

import csv
import sqlite3

import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.judge import create_from_set, export
from bapps_toolkit.judge.keys import link_key, study_keys
from bapps_toolkit.judge.store import load_config, open_study

pytest.importorskip("flask")

PID = "5f3c9b2e8d1a4b0012ab34cd"  # the shape of a Prolific participant id (24 hex digits)


def _client(db):
    from bapps_toolkit.judge.app import create_app
    return create_app(db).test_client()


def _key_and_cfg(db) -> tuple[str, dict]:
    con = open_study(db)
    try:
        return link_key(study_keys(con)), load_config(con)
    finally:
        con.close()


def _arrive(c, key: str, pid: str = PID, session: str = "sess1", study: str = "st1"):
    return c.post("/api/arrive", json={"PROLIFIC_PID": pid, "STUDY_ID": study, "SESSION_ID": session, "key": key})


def _answer_all(c, rater: str, token: str, wrong_sentinels: bool = False, db=None) -> dict:
    sql = "SELECT id, expected FROM items WHERE expected IS NOT NULL"
    expected = dict(sqlite3.connect(db).execute(sql)) if db else {}
    while True:
        t = c.get(f"/api/next?rater={rater}&token={token}").get_json()
        if t["done"]:
            return t
        if t["kind"] == "2afc":
            want_p1 = expected.get(t["item"], 1)
            if wrong_sentinels and t["item"] in expected:
                want_p1 = 1 - want_p1
            side = "right" if bool(want_p1) != bool(t["swapped"]) else "left"
            body = {"side": side}
        else:
            same = expected.get(t["item"], 1)
            if wrong_sentinels and t["item"] in expected:
                same = 1 - same
            body = {"side": "same" if same else "different",
                    "timings": {"ref_ms": 1000.0, "blank_ms": 250.0, "dist_ms": 1000.0}}
        r = c.post("/api/answer", json={**body, "rater": rater, "token": token, "item": t["item"], "rt_ms": 600.0})
        assert r.status_code == 200, r.get_json()


@pytest.fixture()
def prolific(unjudged, tmp_path):
    return create_from_set(unjudged[0], tmp_path / "p.sqlite", platform="prolific", items_per_rater=4,
                           sentinel_share=0.25, judgments_per_item=3, min_sentinel_accuracy=0.75,
                           min_sentinel_failures=1, redirect_after_s=0)


def test_prolific_arrival_records_ids_and_completion_code(prolific):
    key, cfg = _key_and_cfg(prolific)
    c = _client(prolific)
    r = _arrive(c, key)
    assert r.status_code == 200
    rater, token = r.get_json()["rater"], r.get_json()["token"]
    assert rater == PID
    con = sqlite3.connect(prolific)
    assert con.execute("SELECT platform, study, session FROM arrivals").fetchall() == [("prolific", "st1", "sess1")]
    stored = con.execute("SELECT token_sha256 FROM raters WHERE id=?", (PID,)).fetchone()[0]
    assert stored and token not in stored  # hashed
    # the page reloaded from the same link: same token, nothing written
    before = con.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
    assert _arrive(c, key).get_json()["token"] == token
    assert con.execute("SELECT COUNT(*) FROM raters").fetchone()[0] == before
    done = _answer_all(c, rater, token, db=prolific)
    end = done["completion"]
    assert end["outcome"] == "complete" and end["code"] == cfg["completion_code"]
    assert end["url"] == f"https://app.prolific.com/submissions/complete?cc={cfg['completion_code']}"
    assert end["redirect_after_s"] == 0 and end["sentinels"] == end["sentinels_right"] >= 1
    assert con.execute("SELECT outcome, code FROM outcomes").fetchall() == [("complete", cfg["completion_code"])]
    # the outcome is fixed: asking again shows the same, and the participant's task does not grow
    again = c.get(f"/api/next?rater={rater}&token={token}").get_json()
    assert again == done
    assert con.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] == 1
    export(prolific, prolific.parent / "out")  # raters.csv names the participant's Prolific ids
    row = next(csv.DictReader(open(prolific.parent / "out" / "raters.csv")))
    assert (row["rater"], row["platform"], row["study_id"], row["session_id"], row["outcome"]) == \
        (PID, "prolific", "st1", "sess1", "complete")


def test_screened_out_by_sentinels_get_the_second_code_or_are_asked_to_return(unjudged, tmp_path):
    for mode in ("code", "return"):
        db = create_from_set(unjudged[0], tmp_path / f"{mode}.sqlite", platform="prolific", items_per_rater=8,
                             sentinel_share=0.3, min_sentinel_accuracy=0.9, min_sentinel_failures=2,
                             screen_out=mode, completion_code="GOODCODE", screened_code="CHECKFAIL1" if
                             mode == "code" else None)
        key, cfg = _key_and_cfg(db)
        c = _client(db)
        a = _arrive(c, key).get_json()
        end = _answer_all(c, a["rater"], a["token"], wrong_sentinels=True, db=db)["completion"]
        assert end["outcome"] == "screened_out" and end["sentinels_right"] == 0 and end["sentinels"] >= 2
        assert "too few of the check trials" in end["message"]
        if mode == "code":
            assert end["code"] == "CHECKFAIL1" and end["url"].endswith("cc=CHECKFAIL1")
            assert "reviewed by the researcher" in end["message"]
        else:
            assert end["code"] is None and end["url"] is None and "return your submission" in end["message"]
        row = sqlite3.connect(db).execute("SELECT outcome, code, sentinels, sentinels_right FROM outcomes").fetchone()
        assert row[0] == "screened_out" and row[1] == end["code"] and row[3] == 0


def test_one_failed_sentinel_is_not_enough_by_default(unjudged, tmp_path):
    from bapps_toolkit.judge.platform import outcome_for
    cfg = {"min_sentinel_accuracy": 0.8, "min_sentinel_failures": 2}
    assert outcome_for(cfg, 1, 0) == "complete"  # one failure: accuracy 0 but only one check failed
    assert outcome_for(cfg, 3, 1) == "screened_out"
    assert outcome_for(cfg, 10, 8) == "complete"  # 2 failures but accuracy 0.8
    assert outcome_for({**cfg, "min_sentinel_accuracy": None}, 5, 0) == "complete"
    assert outcome_for(cfg, 0, 0) == "complete"


def test_generic_platform_and_custom_completion_url(unjudged, tmp_path):
    db = create_from_set(unjudged[0], tmp_path / "g.sqlite", platform="generic", items_per_rater=3,
                         sentinel_share=0.0, completion_url="https://lab.example.org/done?code={code}&src=bapps",
                         completion_code="ABCD1234")
    key, _ = _key_and_cfg(db)
    c = _client(db)
    assert "unknown fields" in c.post("/api/arrive", json={"PROLIFIC_PID": PID, "key": key}).get_json()["error"]
    a = c.post("/api/arrive", json={"rater": "worker-17", "key": key}).get_json()
    end = _answer_all(c, a["rater"], a["token"])["completion"]
    assert end["url"] == "https://lab.example.org/done?code=ABCD1234&src=bapps"
    assert sqlite3.connect(db).execute("SELECT platform, study, session FROM arrivals").fetchall() == \
        [("generic", None, None)]


def test_links_not_issued_for_the_study_are_refused(prolific, unjudged, tmp_path):
    other = create_from_set(unjudged[0], tmp_path / "other.sqlite", platform="prolific", sentinel_share=0.0)
    other_key, _ = _key_and_cfg(other)
    key, _ = _key_and_cfg(prolific)
    c = _client(prolific)
    for bad in (other_key, key[:-1] + ("A" if key[-1] != "A" else "B"), key[:20], "x"):
        r = _arrive(c, bad)
        assert r.status_code == 403 and "not issued for this study" in r.get_json()["error"]
    assert _arrive(c, "").status_code == 400
    # without the link the platform study admits nobody by ?rater=
    r = c.get(f"/api/next?rater={PID}")
    assert r.status_code == 403 and "study's link" in r.get_json()["error"]
    assert sqlite3.connect(prolific).execute("SELECT COUNT(*) FROM raters").fetchone()[0] == 0
    # a second session of the same participant is refused
    assert _arrive(c, key).status_code == 200
    r = _arrive(c, key, session="sess2")
    assert r.status_code == 403 and "another session" in r.get_json()["error"]


def test_study_without_platform_has_no_arrivals_and_keeps_its_api(make_study):
    db = make_study(sentinel_share=0.0)
    c = _client(db)
    r = c.post("/api/arrive", json={"rater": "a", "key": "k"})
    assert r.status_code == 400 and "not run on a crowd platform" in r.get_json()["error"]
    t = c.get("/api/next?rater=plain").get_json()
    assert set(t) == {"done", "item", "kind", "swapped", "answered", "total"}  # unchanged for API clients


def test_codes_never_leak_before_completion(prolific):
    _, cfg = _key_and_cfg(prolific)
    c = _client(prolific)
    public = c.get("/api/study").get_data(as_text=True)
    assert cfg["completion_code"] not in public and cfg["screened_code"] not in public
    assert c.get("/api/study").get_json()["platform"] == "prolific"


def test_participant_with_no_trial_left_is_told_to_return(unjudged, tmp_path):
    db = create_from_set(unjudged[0], tmp_path / "full.sqlite", platform="prolific", sentinel_share=0.0,
                         judgments_per_item=1, items_per_rater=0)
    key, _ = _key_and_cfg(db)
    c = _client(db)
    first = _arrive(c, key, pid="a" * 24).get_json()
    _answer_all(c, first["rater"], first["token"])
    late = _arrive(c, key, pid="b" * 24).get_json()
    t = c.get(f"/api/next?rater={late['rater']}&token={late['token']}").get_json()
    assert t["done"] and t["total"] == 0 and t["completion"]["outcome"] == "no_trials"
    assert t["completion"]["code"] is None and "return your submission" in t["completion"]["message"]


def test_cli_link_prints_the_prolific_link_and_codes(prolific, capsys, tmp_path, make_study):
    key, cfg = _key_and_cfg(prolific)
    assert main(["judge", "link", "--db", str(prolific), "--base-url", "https://study.example.org/judge"]) == 0
    out = capsys.readouterr().out
    assert (f"https://study.example.org/judge/?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
            f"&SESSION_ID={{{{%SESSION_ID%}}}}&key={key}") in out
    assert cfg["completion_code"] in out and cfg["screened_code"] in out
    assert main(["judge", "link", "--db", str(prolific), "--base-url", "javascript:alert(1)"]) == 2
    plain = make_study("plain.sqlite")
    assert main(["judge", "link", "--db", str(plain)]) == 2
    assert "without --platform" in capsys.readouterr().err


def test_platform_settings_are_checked(unjudged, tmp_path):
    cases = (({"platform": "mturk"}, "platform"), ({"completion_code": "no spaces"}, "completion_code"),
             ({"completion_url": "javascript:alert(1)"}, "completion_url"),
             ({"completion_url": "https://x.org/?a={other}"}, "completion_url"),
             ({"redirect_after_s": -1}, "redirect_after_s"), ({"min_sentinel_accuracy": 1.5}, "min_sentinel_accuracy"),
             ({"min_sentinel_failures": 0}, "min_sentinel_failures"), ({"screen_out": "reject"}, "screen_out"),
             ({"completion_code": "SAME1", "screened_code": "SAME1"}, "differ"))
    for bad, msg in cases:
        with pytest.raises(ValueError, match=msg):
            create_from_set(unjudged[0], tmp_path / "s.sqlite", **bad)
    assert not (tmp_path / "s.sqlite").exists()
