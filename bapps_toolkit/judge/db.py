"""SQLite plumbing of the study database: connections, transactions, and the errors that stop it.

The errors that mean the database cannot be used now (read-only, disk full, locked, I/O) are turned into
:class:`~bapps_toolkit.judge.refusals.StudyUnavailable` with a message for the rater.
"""
from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from .._io import PathLike
from .refusals import StudyUnavailable

F = TypeVar("F", bound=Callable[..., Any])
#: Seconds a connection waits for another writer's lock before the request is refused as busy.
BUSY_TIMEOUT_S = 15.0
log = logging.getLogger("bapps_toolkit.judge")

CANNOT_OPEN = "The study server cannot open its database. Please tell the study's organiser."
# SQLite's primary result codes that mean "the database cannot be used now", with what the rater is told.
_UNAVAILABLE = {
    "SQLITE_READONLY": ("read-only", "The study database is read-only, so answers cannot be saved now. "
                                     "Please tell the study's organiser."),
    "SQLITE_PERM": ("read-only", "The study server may not write its database, so answers cannot be saved now. "
                                 "Please tell the study's organiser."),
    "SQLITE_FULL": ("full", "The study server's disk is full, so answers cannot be saved now. "
                            "Please tell the study's organiser."),
    "SQLITE_BUSY": ("busy", "The study database is busy. Please try again in a moment."),
    "SQLITE_LOCKED": ("busy", "The study database is busy. Please try again in a moment."),
    "SQLITE_IOERR": ("io", "The study server cannot read or write its database (I/O error). "
                           "Please tell the study's organiser."),
    "SQLITE_CANTOPEN": ("io", CANNOT_OPEN),
}
_DAMAGED = ("damaged", "The study database cannot be used (it looks damaged). Please tell the study's organiser.")
_BY_TEXT = (("readonly", "SQLITE_READONLY"), ("disk is full", "SQLITE_FULL"), ("locked", "SQLITE_BUSY"),
            ("disk i/o", "SQLITE_IOERR"), ("unable to open", "SQLITE_CANTOPEN"))


def unavailable(exc: sqlite3.Error) -> StudyUnavailable:
    """The :class:`StudyUnavailable` that a database error means (logged with its detail)."""
    name = getattr(exc, "sqlite_errorname", "") or next((n for t, n in _BY_TEXT if t in str(exc).lower()), "")
    reason, message = _UNAVAILABLE.get("_".join(name.split("_")[:2]), _DAMAGED)
    log.warning("study database unavailable (%s): %s", name or type(exc).__name__, exc)
    return StudyUnavailable(message, reason)


def db_errors(fn: F) -> F:
    """Run ``fn`` with SQLite's operational errors turned into :class:`StudyUnavailable`."""
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as exc:
            raise unavailable(exc) from None
    return guarded  # type: ignore[return-value]


def connect(db: PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection in WAL mode with full fsync and foreign keys, waiting ``busy_timeout_s`` for locks."""
    con = sqlite3.connect(str(db), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA foreign_keys=ON")
    return con


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error (also a failed commit)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
            with suppress(sqlite3.Error):
                con.execute("ROLLBACK")
        raise
