"""Property-based fuzzing (hypothesis) of the judging server's HTTP API, through Flask's test client.

Properties, for random JSON bodies of ``POST /api/answer`` (right and wrong fields, types,
huge and negative ids, NaN/Infinity, nesting, extra keys), random raw bodies and content
types, random query strings of ``GET /api/next`` and ``GET /api/image/<item>/<role>``,
random ``Host``/``Origin``/``Sec-Fetch-*``/``Content-Type``/``X-Rater-Token`` headers and
random methods and paths:

* the status is below 500 (the database is healthy here; its 503s are in
  :mod:`.test_judge_hostile`), and every 4xx carries a JSON object with an ``error`` string;
* a request with a foreign ``Host`` or ``Origin``, or from another site, is refused (400/403);
* a refused request (any status but 200) leaves the raters, assignments and answers tables
  exactly as they were;
* an acknowledged answer is stored (one more row).
"""
from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .judge_client import answer_body, client_for, snapshot

pytest.importorskip("flask")

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
OK_STATUSES = {200, 400, 403, 404, 405, 409, 413, 429}

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20))
json_values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=12)
raters = st.sampled_from(["fz", "fz\n", "fz\r\n", "", "a" * 65, "../x", "fz2", "FZ", "fz\x00"]) | st.text(max_size=70)
items = st.sampled_from([0, 1, 2, 5, 9, -1, 2**63 - 1, 2**63, 2**64, 10**30]) | st.integers() | json_values
sides = st.sampled_from(["left", "right", "same", "different", "", "LEFT"]) | json_values
times = st.sampled_from([0, 500.0, 3600000, 3600001, -1, float("nan"), float("inf")]) | st.floats() | json_values
phases = st.fixed_dictionaries({"ref_ms": times, "blank_ms": times, "dist_ms": times})
answer_bodies = st.fixed_dictionaries({}, optional={"rater": raters, "item": items, "side": sides, "rt_ms": times,
                                                   "timings": phases | json_values, "token": raters | json_values,
                                                   "extra": json_values})
JSONISH = "[]{}\":,0123456789.eE-tfnulrsa "
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\x7f"), max_size=60)


@pytest.fixture(scope="module")
def fuzzed(hostile_set, tmp_path_factory):
    """A study where rater ``fz`` has trials, and its test client."""
    from bapps_toolkit.judge import create_from_set

    db = create_from_set(hostile_set, tmp_path_factory.mktemp("fuzz") / "study.sqlite", sentinel_share=0.1,
                         items_per_rater=4, judgments_per_item=500)
    client = client_for(db)
    trial = client.get("/api/next?rater=fz").get_json()
    return db, client, trial


def _check(db, before, resp, method: str = "GET") -> None:
    if resp.status_code == 308:  # werkzeug merges repeated slashes: only ever to a path of this server
        assert resp.location.startswith(("/", "http://localhost/")), resp.location
        assert snapshot(db) == before
        return
    assert resp.status_code in OK_STATUSES, (resp.status_code, resp.get_data()[:300])
    if resp.status_code >= 400 and method != "HEAD":
        assert resp.mimetype == "application/json", (resp.status_code, resp.get_data()[:200])
        body = resp.get_json()
        assert isinstance(body, dict) and isinstance(body["error"], str) and body["error"]
    if resp.status_code != 200:
        assert snapshot(db) == before, (resp.status_code, resp.get_data()[:200])


@SETTINGS
@given(body=answer_bodies | json_values)
def test_fuzz_answer_bodies(fuzzed, body):
    db, client, _ = fuzzed
    before = snapshot(db)
    resp = client.post("/api/answer", data=json.dumps(body), content_type="application/json")
    _check(db, before, resp, "POST")
    if resp.status_code == 200:
        assert len(snapshot(db)[2]) == len(before[2]) + 1


@SETTINGS
@given(raw=st.binary(max_size=3000) | st.text(alphabet=JSONISH, max_size=3000).map(str.encode),
       ctype=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                              "application/json; charset=utf-16", "multipart/form-data; boundary=x", ""]))
def test_fuzz_raw_bodies(fuzzed, raw, ctype):
    db, client, _ = fuzzed
    before = snapshot(db)
    resp = client.post("/api/answer", data=raw, content_type=ctype or None)
    _check(db, before, resp, "POST")


@SETTINGS
@given(pairs=st.lists(st.tuples(st.sampled_from(["rater", "token", "item", "x", ""]) | st.text(max_size=10), raters),
                      max_size=4),
       raw=st.none() | st.text(max_size=200),
       where=st.sampled_from(["next", "image"]), item=st.sampled_from(["1", "2", "99", str(2**64), "0"]),
       role=st.sampled_from(["ref", "p0", "p1", "x", "..", "%2e%2e"]))
def test_fuzz_query_strings(fuzzed, pairs, raw, where, item, role):
    db, client, _ = fuzzed
    before = snapshot(db)
    qs = urllib.parse.quote(raw, safe="=&%+") if raw is not None else urllib.parse.urlencode(pairs)
    path = "/api/next" if where == "next" else f"/api/image/{item}/{role}"
    resp = client.get(path, query_string=qs)
    _check(db, before, resp)
    if resp.status_code == 200 and where == "image":
        assert resp.mimetype == "image/png" and resp.data[:8] == b"\x89PNG\r\n\x1a\n"


@SETTINGS
@given(headers=st.fixed_dictionaries({}, optional={
    "Host": st.sampled_from(["localhost", "127.0.0.1", "evil.example", "localhost:3000", "[::1]", ""]) | header_text,
    "Origin": st.sampled_from(["http://localhost", "null", "http://evil.example", "http://localhost:80"]) | header_text,
    "Sec-Fetch-Site": st.sampled_from(["same-origin", "same-site", "cross-site", "none"]) | header_text,
    "Sec-Fetch-Mode": st.sampled_from(["navigate", "cors", "no-cors"]) | header_text,
    "Content-Type": st.sampled_from(["application/json", "text/plain"]) | header_text,
    "X-Rater-Token": header_text}),
    post=st.booleans())
def test_fuzz_headers(fuzzed, headers, post):
    db, client, trial = fuzzed
    before = snapshot(db)
    if post:
        body = json.dumps(answer_body(trial, "fz") if not trial["done"] else {"rater": "fz"}).encode()
        resp = client.post("/api/answer", data=body, headers=headers)
    else:
        resp = client.get("/api/next?rater=fz", headers=headers)
    _check(db, before, resp, "POST" if post else "GET")
    ours = {"localhost", "localhost:80", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:80"}
    foreign = [headers.get("Host", "localhost").lower() not in ours,
               "Origin" in headers and headers["Origin"].lower() not in {"http://" + h for h in ours},
               headers.get("Sec-Fetch-Site") in ("cross-site", "same-site")]
    if any(foreign):
        assert resp.status_code in (400, 403), (headers, resp.status_code)


@SETTINGS
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"]),
       path=st.sampled_from(["/", "/api/study", "/api/next?rater=fz", "/api/answer", "/api/image/1/p0?rater=fz",
                             "/static/page.js", "/static/../app.py", "/static/%2e%2e/store.py", "/api/image/-1/p0",
                             "/api/image/" + "9" * 60 + "/p0?rater=fz"])
       | st.text(max_size=80).map(lambda t: "/" + urllib.parse.quote(t)))
def test_fuzz_methods_and_paths(fuzzed, method, path):
    db, client, _ = fuzzed
    before = snapshot(db)
    resp = client.open(path, method=method)
    _check(db, before, resp, method)
    if resp.status_code == 200 and resp.data and resp.mimetype not in ("application/json", "image/png"):
        assert resp.data in STATIC_FILES, (method, path)  # nothing but the page's own files


STATIC_FILES = {p.read_bytes() for p in (Path(__file__).parents[2] / "bapps_toolkit" / "judge" / "static").iterdir()}
