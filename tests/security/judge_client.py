"""Helpers of the judge server's hostile-input tests: a Flask test client of a study, the
contents of its tables (to show that a refused request wrote nothing), JSON error checks."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

TABLES = ("raters", "assignments", "answers", "arrivals", "outcomes", "study_meta")


def client_for(db: Path, **kw: Any) -> Any:
    """A Flask test client of ``create_app(db, **kw)`` (requests arrive as ``Host: localhost``)."""
    from bapps_toolkit.judge.app import create_app
    return create_app(db, **kw).test_client()


def snapshot(db: Path) -> tuple:
    """Every row of the tables a request may write (raters with their last activity)."""
    con = sqlite3.connect(db)
    try:
        return tuple(tuple(con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()) for t in TABLES)  # noqa: S608
    finally:
        con.close()


def error_of(resp: Any, status: int | tuple[int, ...]) -> str:
    """The message of a JSON error response with ``status`` (one of, for a tuple)."""
    want = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in want, (resp.status_code, resp.get_data()[:300])
    assert resp.mimetype == "application/json", (resp.status_code, resp.mimetype, resp.get_data()[:300])
    body = resp.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


def answer_body(trial: dict, rater: str = "r1") -> dict:
    """A valid answer to ``trial`` for ``rater``."""
    body: dict = {"rater": rater, "item": trial["item"], "side": "left" if trial["kind"] == "2afc" else "same",
                  "rt_ms": 500.0}
    if trial["kind"] == "jnd":
        body["timings"] = {"ref_ms": 1000.0, "blank_ms": 250.0, "dist_ms": 1000.0}
    return body
