"""A tiny JSON client of the judge HTTP API (standard library only) for the tests."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def call(url: str, path: str, body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 20.0) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            payload = r.read()
            status = r.status
            ctype = r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        payload, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
    return status, (json.loads(payload) if "json" in ctype else payload)


def nxt(url: str, rater: str, token: str | None = None) -> tuple[int, Any]:
    q = {"rater": rater, **({"token": token} if token else {})}
    return call(url, "/api/next?" + urllib.parse.urlencode(q))


def jnd_timings() -> dict[str, float]:
    return {"ref_ms": 1000.0, "blank_ms": 250.0, "dist_ms": 1000.0}


def answer_for(trial: dict, side: str | None = None) -> dict:
    kind = trial["kind"]
    body = {"item": trial["item"], "side": side or ("left" if kind == "2afc" else "same"), "rt_ms": 500.0}
    if kind == "jnd":
        body["timings"] = jnd_timings()
    return body
