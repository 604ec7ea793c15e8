"""The study store's read-only statements for reports: items, raters, answers, the summary, the simulation.

Every SQL statement that :mod:`.rows`, :mod:`.export`, :mod:`.summary` and :mod:`.simulate` need
lives here. The records carry the values as the database holds them (:data:`Stored` where the
database is untrusted and the caller checks each field before using it).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = ["AnswerRecord", "ArrivalRecord", "ItemRecord", "RaterSummaryRecord", "Stored", "answer_counts",
           "answer_records", "arrival_records", "assigned_counts", "config_value", "item_images",
           "item_records", "rater_answer_times", "rater_ids", "rater_summary_records",
           "real_item_answer_counts", "sentinel_answer_count", "summary_version_row", "write_unsynced"]

#: A value as SQLite returns it from a database that may have been edited: the caller checks it before use.
Stored = Any

_RATERS_SQL = """
SELECT r.id, ar.platform, COALESCE(n.answered, 0), COALESCE(g.assigned, 0), r.seen, o.outcome,
       COALESCE(s.n, 0), COALESCE(s.ok, 0), COALESCE(m.agree, 0), COALESCE(m.counted, 0)
FROM raters r
LEFT JOIN arrivals ar ON ar.rater = r.id
LEFT JOIN outcomes o ON o.rater = r.id
LEFT JOIN (SELECT rater, COUNT(*) AS answered FROM answers GROUP BY rater) n ON n.rater = r.id
LEFT JOIN (SELECT rater, COUNT(*) AS assigned FROM assignments GROUP BY rater) g ON g.rater = r.id
LEFT JOIN (SELECT a.rater AS rater, COUNT(*) AS n, SUM(a.answer = i.expected) AS ok FROM answers a
           JOIN items i ON i.id = a.item WHERE i.expected IS NOT NULL GROUP BY a.rater) s ON s.rater = r.id
LEFT JOIN (SELECT a.rater AS rater,
                  SUM((2 * (t.k - a.answer) > t.n - 1 AND a.answer = 1) OR (2 * (t.k - a.answer) < t.n - 1
                      AND a.answer = 0)) AS agree,
                  SUM(2 * (t.k - a.answer) != t.n - 1) AS counted
           FROM answers a JOIN items i ON i.id = a.item AND i.expected IS NULL
           JOIN (SELECT item, COUNT(*) AS n, SUM(answer) AS k FROM answers GROUP BY item) t ON t.item = a.item
           GROUP BY a.rater) m ON m.rater = r.id
ORDER BY r.seen IS NULL, r.seen DESC, r.id
"""

_ARRIVALS_SQL = ("SELECT r.id, a.platform, a.study, a.session, o.outcome FROM raters r LEFT JOIN arrivals a "
                 "ON a.rater = r.id LEFT JOIN outcomes o ON o.rater = r.id ORDER BY r.id")

_IMAGES_OF = {"2afc": "SELECT ref, p0, p1 FROM items WHERE id=?", "jnd": "SELECT p0, p1 FROM items WHERE id=?"}


class ItemRecord(NamedTuple):
    """An ``items`` row as stored (unchecked)."""

    id: Stored
    set_key: Stored
    stem: Stored
    kind: Stored
    expected: Stored


class AnswerRecord(NamedTuple):
    """An ``answers`` row as stored (unchecked)."""

    id: Stored
    rater: Stored
    item: Stored
    answer: Stored
    rt_ms: Stored


class ArrivalRecord(NamedTuple):
    """A rater with its arrival and outcome as stored (``None`` where there is none; unchecked)."""

    rater: Stored
    platform: Stored
    study: Stored
    session: Stored
    outcome: Stored


class RaterSummaryRecord(NamedTuple):
    """One rater's counts for the dashboard (``seen`` and ``outcome`` may be ``None``)."""

    rater: str
    platform: str | None
    answered: int
    assigned: int
    seen: float | None
    outcome: str | None
    sentinels: int
    sentinels_right: int
    agree: int
    counted: int


def item_records(con: sqlite3.Connection, *, real_only: bool = False) -> Iterator[ItemRecord]:
    """The study's items in id order (only the real ones with ``real_only``)."""
    query = "SELECT id, set_key, stem, kind, expected FROM items"
    for row in con.execute(query + (" WHERE expected IS NULL" if real_only else "") + " ORDER BY id"):
        yield ItemRecord(*row)


def item_images(con: sqlite3.Connection, item: int, kind: str) -> tuple[Stored, ...]:
    """The stored images of item ``item``: ``(ref, p0, p1)`` for 2AFC, ``(p0, p1)`` for JND (unchecked)."""
    return tuple(con.execute(_IMAGES_OF[kind], (item,)).fetchone())


def rater_ids(con: sqlite3.Connection) -> Iterator[Stored]:
    """The rater ids in order, as stored (unchecked)."""
    for rid, in con.execute("SELECT id FROM raters ORDER BY id"):
        yield rid


def answer_records(con: sqlite3.Connection) -> Iterator[AnswerRecord]:
    """Every answer in id order, as stored (unchecked)."""
    for row in con.execute("SELECT id, rater, item, answer, rt_ms FROM answers ORDER BY id"):
        yield AnswerRecord(*row)


def arrival_records(con: sqlite3.Connection) -> Iterator[ArrivalRecord]:
    """Every rater with its arrival and outcome, by rater id, as stored (unchecked)."""
    for row in con.execute(_ARRIVALS_SQL):
        yield ArrivalRecord(*row)


def config_value(con: sqlite3.Connection, name: str) -> tuple[Stored] | None:
    """The stored ``config`` row of setting ``name`` as ``(value,)``, or None when there is none."""
    row = con.execute("SELECT value FROM config WHERE name=?", (name,)).fetchone()
    return None if row is None else (row[0],)


def assigned_counts(con: sqlite3.Connection) -> dict[str, int]:
    """Assigned items per rater (raters with none left out)."""
    return dict(con.execute("SELECT rater, COUNT(*) FROM assignments GROUP BY rater").fetchall())


def rater_answer_times(con: sqlite3.Connection) -> Iterator[tuple[str, float]]:
    """``(rater, response time in ms)`` of every answer."""
    yield from con.execute("SELECT rater, rt_ms FROM answers")


def rater_summary_records(con: sqlite3.Connection) -> Iterator[RaterSummaryRecord]:
    """Every rater's counts, the most recently seen first (then those never seen, by id)."""
    for row in con.execute(_RATERS_SQL):
        yield RaterSummaryRecord(*row)


def real_item_answer_counts(con: sqlite3.Connection) -> list[tuple[int, int]]:
    """``(answers, answers 1)`` of every real item, by id."""
    return [(n, k) for n, k in con.execute(
        "SELECT COALESCE(t.n, 0), COALESCE(t.k, 0) FROM items i LEFT JOIN (SELECT item, COUNT(*) AS n, "
        "SUM(answer) AS k FROM answers GROUP BY item) t ON t.item = i.id WHERE i.expected IS NULL "
        "ORDER BY i.id").fetchall()]


def sentinel_answer_count(con: sqlite3.Connection) -> int:
    """How many answers were given on sentinels."""
    n: int = con.execute("SELECT COUNT(*) FROM answers a JOIN items i ON i.id = a.item "
                         "WHERE i.expected IS NOT NULL").fetchone()[0]
    return n


def answer_counts(con: sqlite3.Connection) -> Iterator[tuple[int, int, int]]:
    """``(item, answers, answers 1)`` of every item with answers."""
    yield from con.execute("SELECT item, COUNT(*), SUM(answer) FROM answers GROUP BY item")


def summary_version_row(con: sqlite3.Connection) -> tuple[Any, ...]:
    """The last answer id and the numbers of raters, assignments and outcomes."""
    return tuple(con.execute("SELECT (SELECT MAX(id) FROM answers), (SELECT COUNT(*) FROM raters), "
                             "(SELECT COUNT(*) FROM assignments), (SELECT COUNT(*) FROM outcomes)").fetchone())


def write_unsynced(con: sqlite3.Connection) -> None:
    """Write without fsync on this connection (only for a database that is thrown away)."""
    con.execute("PRAGMA synchronous=OFF")
