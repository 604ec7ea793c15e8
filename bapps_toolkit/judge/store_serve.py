"""The study store's statements for serving raters: study secrets, arrivals, outcomes and assignment counts.

Every SQL statement that :mod:`.keys`, :mod:`.arrivals` and :mod:`.assign` need lives here (the
other modules hold the rules and call these functions); none opens a transaction of its own: a
write runs in the transaction of its caller (:func:`~.db.transaction`), so what commits together
and before an answer is acknowledged is decided there.
"""
from __future__ import annotations

import sqlite3
from typing import NamedTuple

__all__ = ["ArrivalOf", "ItemCounts", "arrival_of", "insert_arrival", "insert_outcome", "item_counts",
           "meta_value", "outcome_of", "real_item_count", "recent_new_raters", "rater_assignment_counts",
           "sentinel_answers", "sentinel_ids", "set_meta"]

_ITEM_COUNTS_SQL = """
SELECT i.id, COALESCE(a.n, 0), COALESCE(a.k, 0), COALESCE(p.active, 0), COALESCE(p.idle, 0),
       COALESCE(w.disagreement, 0.0)
FROM items i
LEFT JOIN (SELECT item, COUNT(*) AS n, SUM(answer) AS k FROM answers GROUP BY item) a ON a.item = i.id
LEFT JOIN (SELECT s.item AS item, SUM(r.seen IS NULL OR r.seen >= :cut) AS active,
                  SUM(NOT (r.seen IS NULL OR r.seen >= :cut)) AS idle
           FROM assignments s JOIN raters r ON r.id = s.rater
           WHERE NOT EXISTS (SELECT 1 FROM answers x WHERE x.rater = s.rater AND x.item = s.item)
           GROUP BY s.item) p ON p.item = i.id
LEFT JOIN item_weights w ON w.item = i.id
WHERE i.expected IS NULL AND i.id NOT IN (SELECT item FROM assignments WHERE rater = :rater)
ORDER BY i.id
"""

_SENTINELS_SQL = ("SELECT COUNT(*), COALESCE(SUM(a.answer = i.expected), 0) FROM answers a JOIN items i "
                  "ON i.id = a.item WHERE a.rater = ? AND i.expected IS NOT NULL")


class ArrivalOf(NamedTuple):
    """A known rater id and its arrival through the study link (``None`` fields: arrived otherwise).

    Attributes:
        rater: the rater id.
        arrived: the rater id of the arrival row, ``None`` for a rater not arriving through the link.
        study: the platform's study id of the arrival.
        session: the platform's session id of the arrival.
    """

    rater: object
    arrived: object
    study: object
    session: object


class ItemCounts(NamedTuple):
    """Counts of one real item not yet assigned to a rater (see :class:`~.assign.ItemState`)."""

    id: int
    n: int
    k: int
    active: int
    idle: int
    disagreement: float


def meta_value(con: sqlite3.Connection, name: str) -> str | None:
    """The ``study_meta`` value ``name`` (as text), or None when the study has none."""
    row = con.execute("SELECT value FROM study_meta WHERE name=?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(con: sqlite3.Connection, name: str, value: str) -> None:
    """Store ``value`` as the ``study_meta`` value ``name`` (replacing it; in the caller's transaction)."""
    con.execute("INSERT OR REPLACE INTO study_meta VALUES (?, ?)", (name, value))


def arrival_of(con: sqlite3.Connection, rater: str) -> ArrivalOf | None:
    """The rater ``rater`` with its arrival, or None for an id the study does not know."""
    row = con.execute("SELECT r.id, a.rater, a.study, a.session FROM raters r LEFT JOIN arrivals a ON a.rater = r.id "
                      "WHERE r.id = ?", (rater,)).fetchone()
    return None if row is None else ArrivalOf(*row)


def insert_arrival(con: sqlite3.Connection, rater: str, token_sha256: str, platform: str, study: str | None,
                   session: str | None, now: float) -> None:
    """Record a rater arriving through the study link: its ``raters`` row and its ``arrivals`` row.

    Runs in the caller's transaction.
    """
    con.execute("INSERT INTO raters (id, token_sha256, created, seen) VALUES (?, ?, ?, ?)",
                (rater, token_sha256, now, now))
    con.execute("INSERT INTO arrivals VALUES (?, ?, ?, ?, ?)", (rater, platform, study, session, now))


def outcome_of(con: sqlite3.Connection, rater: str) -> str | None:
    """The outcome recorded for ``rater`` when they finished, if any."""
    row = con.execute("SELECT outcome FROM outcomes WHERE rater=?", (rater,)).fetchone()
    return None if row is None else str(row[0])


def sentinel_answers(con: sqlite3.Connection, rater: str) -> tuple[int, int]:
    """``(sentinels answered, answered right)`` of ``rater``."""
    n, right = con.execute(_SENTINELS_SQL, (rater,)).fetchone()
    return n, right


def insert_outcome(con: sqlite3.Connection, rater: str, outcome: str, code: str | None, n: int, right: int,
                   now: float) -> None:
    """Record ``rater``'s outcome unless one is recorded already (in the caller's transaction)."""
    con.execute("INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)", (rater, outcome, code, n, right, now))


def item_counts(con: sqlite3.Connection, rater: str, cutoff: float) -> list[ItemCounts]:
    """The counts of every real item not assigned to ``rater``, by id (one query).

    Raters last seen before ``cutoff`` count as idle.
    """
    return [ItemCounts(*row) for row in con.execute(_ITEM_COUNTS_SQL, {"cut": cutoff, "rater": rater}).fetchall()]


def sentinel_ids(con: sqlite3.Connection) -> list[int]:
    """The ids of the sentinel trials, in order."""
    return [r[0] for r in con.execute("SELECT id FROM items WHERE expected IS NOT NULL ORDER BY id")]


def real_item_count(con: sqlite3.Connection) -> int:
    """How many real (not sentinel) items the study has."""
    n: int = con.execute("SELECT COUNT(*) FROM items WHERE expected IS NULL").fetchone()[0]
    return n


def rater_assignment_counts(con: sqlite3.Connection, rater: str) -> tuple[int, int, int | None]:
    """The rater's assigned items, how many are unanswered, and the last position."""
    n_had, n_open, last = con.execute(
        "SELECT COUNT(*), COALESCE(SUM(NOT EXISTS (SELECT 1 FROM answers a WHERE a.rater=s.rater "
        "AND a.item=s.item)), 0), MAX(position) FROM assignments s WHERE rater=?", (rater,)).fetchone()
    return n_had, n_open, last


def recent_new_raters(con: sqlite3.Connection, since: float, limit: int) -> list[float]:
    """Creation times, newest first, of at most ``limit`` raters recorded after ``since``.

    Counted are raters without a token or arriving through a study link.
    """
    rows = con.execute("SELECT created FROM raters WHERE created > ? AND (token_sha256 IS NULL OR id IN "
                       "(SELECT rater FROM arrivals)) ORDER BY created DESC LIMIT ?", (since, limit)).fetchall()
    return [r[0] for r in rows]
