"""Property-based fuzzing (hypothesis) of the endpoints studies on crowd platforms and the
dashboard added, through Flask's test client.

Properties, for random arrival bodies of ``POST /api/arrive`` (right and wrong fields, odd ids,
keys close to the real one, junk JSON), random raw bodies, random ``Authorization`` headers and
query strings of ``GET /api/admin/summary``:

* the status is below 500 and every error is a JSON object with an ``error`` string;
* an arrival is admitted only with the study's own key and ids of 1-64 ``A-Z a-z 0-9 _ . -``;
* the summary is given only for the exact admin token;
* a refused request (any status but 200) writes nothing.
"""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .judge_client import client_for, snapshot

pytest.importorskip("flask")

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
OK = {200, 400, 401, 403, 405, 409, 413, 429}

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                                          max_size=3), max_leaves=10)
ids = (st.sampled_from(["5f3c9b2e8d1a4b0012ab34cd", "{{%PROLIFIC_PID%}}", "", "a" * 64, "a" * 65, "x\n", "é", "a b"])
       | st.from_regex(r"[A-Za-z0-9_.-]{1,70}", fullmatch=True) | st.text(max_size=80) | json_values)


@pytest.fixture(scope="module")
def platform_study(hostile_set, tmp_path_factory):
    """A Prolific study with an admin token; its client (no cap on new raters), key and token."""
    from bapps_toolkit.judge import create_from_set
    from bapps_toolkit.judge.keys import link_key, study_keys
    from bapps_toolkit.judge.manage import new_admin_token
    from bapps_toolkit.judge.store import open_study

    db = create_from_set(hostile_set, tmp_path_factory.mktemp("pfuzz") / "p.sqlite", platform="prolific",
                         sentinel_share=0.0, items_per_rater=2)
    con = open_study(db)
    key = link_key(study_keys(con))
    con.close()
    token = new_admin_token(db)
    return db, client_for(db, new_raters_per_minute=0), key, token


def _check(db, before, resp) -> None:
    assert resp.status_code in OK, (resp.status_code, resp.get_data()[:300])
    if resp.status_code >= 400:
        assert resp.mimetype == "application/json", resp.get_data()[:200]
        body = resp.get_json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    if resp.status_code != 200:
        assert snapshot(db) == before, (resp.status_code, resp.get_data()[:200])


def _near(key: str) -> st.SearchStrategy:
    """Keys close to the real one: cut, extended, one character changed."""
    return st.one_of(st.just(key), st.integers(0, len(key) - 1).map(lambda i: key[:i]),
                     st.text(alphabet="A-_z09", min_size=1, max_size=3).map(lambda t: key + t),
                     st.tuples(st.integers(0, len(key) - 1), st.sampled_from("AZaz09_-")).map(
                         lambda t: key[:t[0]] + t[1] + key[t[0] + 1:]))


@SETTINGS
@given(data=st.data())
def test_fuzz_arrivals(platform_study, data):
    db, client, key, _ = platform_study
    body = data.draw(st.fixed_dictionaries({}, optional={
        "PROLIFIC_PID": ids, "STUDY_ID": ids, "SESSION_ID": ids, "key": _near(key) | json_values,
        "rater": ids, "extra": json_values}) | json_values)
    before = snapshot(db)
    resp = client.post("/api/arrive", data=json.dumps(body), content_type="application/json")
    _check(db, before, resp)
    if resp.status_code == 200:
        assert body["key"] == key and set(body) == {"PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "key"}
        assert all(isinstance(body[f], str) and ID_RE.fullmatch(body[f]) for f in ("PROLIFIC_PID", "STUDY_ID",
                                                                                    "SESSION_ID"))
        assert resp.get_json()["rater"] == body["PROLIFIC_PID"]


@SETTINGS
@given(raw=st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode),
       ctype=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
def test_fuzz_arrival_raw_bodies(platform_study, raw, ctype):
    db, client, _, _ = platform_study
    before = snapshot(db)
    _check(db, before, client.post("/api/arrive", data=raw, content_type=ctype or None))


@SETTINGS
@given(data=st.data())
def test_fuzz_admin_authorization(platform_study, data):
    db, _, _, token = platform_study
    header = data.draw(st.one_of(
        st.none(), st.text(max_size=100).filter(lambda t: "\n" not in t and "\r" not in t),
        _near(token).map(lambda t: "Bearer " + t),
        st.sampled_from(["Bearer ", "Basic x", f"bearer {token}", f"Bearer {token} ", f"Token {token}"])))
    query = data.draw(st.sampled_from(["", "?token=x", f"?token={token}", "?a=1&a=2"]) | st.text(max_size=40).map(
        lambda t: "?" + t))
    before = snapshot(db)
    headers = {} if header is None else {"Authorization": header}
    fresh = client_for(db)  # a fresh app per example: its counter of wrong tokens starts at zero
    resp = fresh.get("/api/admin/summary" + query, headers=headers)
    _check(db, before, resp)
    if resp.status_code == 200:
        # the client drops what follows '#' (a fragment never reaches a server): no parameter was sent
        assert header == f"Bearer {token}" and query.split("#")[0] in ("", "?")
        assert set(resp.get_json()) >= {"progress", "raters", "policy"}
