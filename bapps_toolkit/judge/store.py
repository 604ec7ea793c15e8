"""The study database: SQLite in WAL mode, one row per answer.

Tables: ``config`` (the study settings, JSON), ``items`` (every trial with its images as PNG
bytes; sentinels flagged with their right answer), ``raters`` (id, SHA-256 of the token if
one was issued), ``assignments`` (rater, item, position: the rater's seeded order),
``answers`` (rater, item, left/right swap shown, side clicked, answer, response time, the
JND timings measured in the page, time of commit) with ``UNIQUE(rater, item)``;
``item_weights`` (metric disagreement per item, when the study was created with metric
distances), ``arrivals`` (platform, study and session of raters who came through a study link),
``outcomes`` (completion code given, or screened out by the sentinels) and ``study_meta`` (the
study id, the secret its links are signed with, the hash of the admin token).

Which items a rater gets is decided by the study's ``assignment`` policy (:mod:`.assign`).
Every write runs in one ``BEGIN IMMEDIATE`` transaction and is committed before the caller
replies, so an acknowledged answer survives a crash of the server process.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, TypedDict

from .._io import PathLike
from ..errors import DataError
from .answers import RATER_RULE, AnswerPost, item_id, short, side_answer, timings_json, valid_rater
from .arrivals import completion, recorded_outcome
from .assign import check_new_rater_cap, choose, rater_counts
from .db import BUSY_TIMEOUT_S, CANNOT_OPEN, connect, db_errors, log, transaction
from .disagreement import item_disagreement, read_distances
from .items import Item, make_sentinels
from .keys import create_keys, token_hash
from .platform import Completion, new_code
from .refusals import AlreadyAnswered, InvalidRequest, NotAllowed, NotFound, StudyUnavailable
from .settings import DEFAULTS, StudyConfig, stored_config, validate_config

__all__ = ["DEFAULTS", "validate_config", "create_study", "open_study", "load_config", "add_rater", "valid_rater",
           "check_rater", "next_trial", "record_answer", "image_png", "swapped_for", "Progress", "Trial", "Ack"]

MAX_TOKEN_CHARS = 256
ROLES = ("ref", "p0", "p1")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS config (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, set_key TEXT NOT NULL, stem TEXT NOT NULL, "
    "kind TEXT NOT NULL, expected INTEGER, ref BLOB, p0 BLOB NOT NULL, p1 BLOB NOT NULL, UNIQUE(set_key, stem))",
    "CREATE TABLE IF NOT EXISTS raters (id TEXT PRIMARY KEY, token_sha256 TEXT, created REAL NOT NULL, seen REAL)",
    "CREATE TABLE IF NOT EXISTS assignments (rater TEXT NOT NULL REFERENCES raters(id), "
    "item INTEGER NOT NULL REFERENCES items(id), position INTEGER NOT NULL, PRIMARY KEY(rater, item))",
    "CREATE TABLE IF NOT EXISTS answers (id INTEGER PRIMARY KEY, rater TEXT NOT NULL REFERENCES raters(id), "
    "item INTEGER NOT NULL REFERENCES items(id), swapped INTEGER NOT NULL, side TEXT NOT NULL, "
    "answer INTEGER NOT NULL, rt_ms REAL NOT NULL, timings TEXT, created REAL NOT NULL, UNIQUE(rater, item))",
)
#: Tables and indexes added after the first version; created in older studies when opened.
SCHEMA_ADDED = (
    "CREATE TABLE IF NOT EXISTS study_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS item_weights (item INTEGER PRIMARY KEY REFERENCES items(id), "
    "disagreement REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS arrivals (rater TEXT PRIMARY KEY REFERENCES raters(id), platform TEXT NOT NULL, "
    "study TEXT, session TEXT, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outcomes (rater TEXT PRIMARY KEY REFERENCES raters(id), outcome TEXT NOT NULL, "
    "code TEXT, sentinels INTEGER NOT NULL, sentinels_right INTEGER NOT NULL, decided REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS answers_item ON answers(item)",
    "CREATE INDEX IF NOT EXISTS assignments_item ON assignments(item)",
)
_ADDED_NAMES = frozenset({"study_meta", "item_weights", "arrivals", "outcomes", "answers_item", "assignments_item"})


class Progress(TypedDict):
    """How far a rater is: ``answered`` of ``total`` assigned trials; ``done`` when all are."""

    done: bool
    answered: int
    total: int


class Trial(Progress, total=False):
    """The rater's next trial (absent when ``done``): item id, kind and left/right swap.

    When ``done`` in a study on a crowd platform or with screening, what the rater is to do next.
    """

    item: int
    kind: str
    swapped: int
    completion: Completion


class Ack(TypedDict):
    """An answer committed to the database."""

    stored: bool
    item: int
    answer: int


def _platform_codes(cfg: StudyConfig) -> StudyConfig:
    """Completion codes made up for a platform study that was given none."""
    out = cfg.copy()
    if out["platform"] != "none" and out["completion_code"] is None:
        out["completion_code"] = new_code()
    screening = out["min_sentinel_accuracy"] is not None and out["screen_out"] == "code"
    if out["platform"] != "none" and screening and out["screened_code"] is None:
        out["screened_code"] = new_code(avoid=out["completion_code"])
    return out


def create_study(db: PathLike, items: list[Item], *, distances: PathLike | None = None, **settings: Any) -> Path:
    """Write a new study database (temp name, then rename); refuses to overwrite one.

    Args:
        db: the database file to create.
        items: the study's real items.
        distances: optional per-item metric distances (:mod:`.disagreement`) whose disagreement
            weights adaptive assignment.
        **settings: study settings (:mod:`.settings`). A platform study given no completion code
            gets a random one (read it back with :func:`load_config` or ``bapps judge link``).

    Raises:
        FileExistsError: ``db`` exists.
        ValueError: a setting out of range.
        DataError: a distances file that is malformed or lacks an item.
    """
    path = Path(db)
    if path.exists():
        raise FileExistsError(f"study database {path} already exists")
    cfg = _platform_codes(validate_config(settings))
    weights = item_disagreement([(it.key, it.stem) for it in items], read_distances(distances)) if distances else {}
    n_real = len(items)
    n_sent = round(cfg["sentinel_share"] * n_real / (1.0 - cfg["sentinel_share"]))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    con = connect(tmp)
    try:
        for statement in SCHEMA + SCHEMA_ADDED:
            con.execute(statement)
        with transaction(con):
            con.executemany("INSERT INTO config VALUES (?, ?)", [(k, json.dumps(v)) for k, v in cfg.items()])
            for it in list(items) + make_sentinels(items, n_sent, cfg["seed"]):
                cur = con.execute("INSERT INTO items (set_key, stem, kind, expected, ref, p0, p1) "
                                  "VALUES (?,?,?,?,?,?,?)", (it.key, it.stem, it.kind, it.expected,
                                                             it.images.get("ref"), it.images["p0"], it.images["p1"]))
                if it.expected is None and weights:
                    con.execute("INSERT INTO item_weights VALUES (?, ?)", (cur.lastrowid, weights[(it.key, it.stem)]))
            create_keys(con)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    os.replace(tmp, path)
    return path


def _upgrade(con: sqlite3.Connection) -> None:
    """Add what later versions keep (raters' activity, arrivals, outcomes, indexes) to an older study."""
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    has_seen = "seen" in {r[1] for r in con.execute("PRAGMA table_info(raters)")}
    if has_seen and _ADDED_NAMES <= names:
        return
    with transaction(con):  # checked again under the lock
        if "seen" not in {r[1] for r in con.execute("PRAGMA table_info(raters)")}:
            con.execute("ALTER TABLE raters ADD COLUMN seen REAL")
        for statement in SCHEMA_ADDED:
            con.execute(statement)


def open_study(db: PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to the study database ``db``, checked to be one.

    Raises:
        DataError: ``db`` is missing or not a study database (names it).
    """
    path = Path(db)
    if not path.is_file():
        raise DataError(f"study database {path} does not exist (create it from a SET first)")
    con = connect(path, busy_timeout_s)
    try:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        con.close()
        raise DataError(f"{path} is not a study database ({exc})") from None
    if not {"config", "items", "answers"} <= names:
        con.close()
        raise DataError(f"{path} is not a study database (missing tables)")
    _upgrade(con)
    return con


def serving_connection(db: PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """:func:`open_study` for the web app, whose refusals are shown to raters.

    Raises:
        StudyUnavailable: the database cannot be opened now (the detail, with its path, is logged).
    """
    try:
        return db_errors(open_study)(db, busy_timeout_s)
    except DataError as exc:
        log.warning("study database unavailable: %s", exc)
        raise StudyUnavailable(CANNOT_OPEN, "io") from None


def load_config(con: sqlite3.Connection) -> StudyConfig:
    """The study's settings, checked (:func:`~.settings.stored_config`); later-added settings take their default.

    Raises:
        DataError: naming the ``config`` table and the setting that no study could hold.
    """
    return stored_config(con.execute("SELECT name, value FROM config"))


def add_rater(db: PathLike, rater: str) -> str:
    """Register ``rater`` with a fresh random token (returned once, stored hashed).

    Raises:
        ValueError: ``rater`` is not a valid rater id.
    """
    if not valid_rater(rater):
        raise ValueError(f"rater id {rater!r}: use {RATER_RULE}")
    token = secrets.token_urlsafe(24)
    con = open_study(db)
    try:
        with transaction(con):
            if con.execute("SELECT 1 FROM raters WHERE id=?", (rater,)).fetchone():
                con.execute("UPDATE raters SET token_sha256=? WHERE id=?", (token_hash(token), rater))
            else:
                con.execute("INSERT INTO raters (id, token_sha256, created) VALUES (?, ?, ?)",
                            (rater, token_hash(token), time.time()))
    finally:
        con.close()
    return token


@db_errors
def check_rater(con: sqlite3.Connection, rater: object, token: object, require_token: bool) -> str:
    """The rater id if the request may act as that rater; writes nothing.

    A rater with a token must present it (constant-time compare); when ``require_token`` is
    set (server reachable beyond 127.0.0.1, or a study on a crowd platform) only raters added
    with a token or arrived through the study link are accepted. A rater id not seen before is
    admitted here but recorded only when it is given trials (:func:`next_trial`).

    Raises:
        InvalidRequest: a malformed rater id or token.
        NotAllowed: a missing or wrong token.
        StudyUnavailable: the database cannot be read.
    """
    if not valid_rater(rater):
        raise InvalidRequest(f"rater: expected an id of {RATER_RULE}")
    rater = str(rater)
    if token is not None and (not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS):
        raise InvalidRequest(f"token: expected a string of at most {MAX_TOKEN_CHARS} characters")
    row = con.execute("SELECT token_sha256 FROM raters WHERE id=?", (rater,)).fetchone()
    stored = row[0] if row else None
    if stored is None and require_token:
        raise NotAllowed(f"rater {rater!r} has no token; this server only admits raters added with one "
                         "or arriving through the study's link")
    if stored is not None:
        if not isinstance(token, str) or not secrets.compare_digest(token_hash(token), stored):
            raise NotAllowed(f"wrong or missing token for rater {rater!r}")
    return rater


def _settled(con: sqlite3.Connection, rater: str, n_had: int, n_open: int, cfg: StudyConfig) -> bool:
    """Whether the rater keeps their order: items left, no reassignment, crowd platform, or completion given."""
    if n_open or (n_had and (not cfg["reassign_after_s"] or cfg["platform"] != "none")):
        return True
    return bool(n_had) and recorded_outcome(con, rater) is not None


def _assign(con: sqlite3.Connection, rater: str, cfg: StudyConfig, new_raters_per_minute: int) -> None:
    """Give ``rater`` their seeded order, or more items once it is answered (:mod:`.assign`).

    A rater seen for the first time is recorded here, with its first items, within the cap on new raters;
    nothing is written when there is nothing to give, and no lock is taken when the rater's order stays as it
    is.
    """
    if _settled(con, rater, *rater_counts(con, rater)[:2], cfg):
        return
    with transaction(con):
        n_had, n_open, last = rater_counts(con, rater)
        if _settled(con, rater, n_had, n_open, cfg):
            return
        known = bool(n_had) or con.execute("SELECT 1 FROM raters WHERE id=?", (rater,)).fetchone() is not None
        if not known:
            check_new_rater_cap(con, new_raters_per_minute)
        chosen = choose(con, rater, cfg, n_had)
        if not chosen:
            return
        now = time.time()
        if not known:
            con.execute("INSERT INTO raters (id, created, seen) VALUES (?, ?, ?)", (rater, now, now))
        base = 0 if last is None else last + 1
        con.executemany("INSERT INTO assignments VALUES (?, ?, ?)",
                        [(rater, item, base + pos) for pos, item in enumerate(chosen)])
        con.execute("UPDATE raters SET seen=? WHERE id=?", (now, rater))


def swapped_for(cfg: StudyConfig, rater: str, item: int, kind: str = "2afc") -> int:
    """Whether ``p1`` is shown on the left for this rater and 2AFC item (seeded, reproducible).

    Always 0 for JND: as in BAPPS, ``p0`` (the reference) is shown first, then ``p1``.
    """
    if kind != "2afc":
        return 0
    digest = hashlib.sha256(f"{cfg['seed']}:{rater}:{item}".encode()).digest()
    return digest[0] & 1


@db_errors
def next_trial(con: sqlite3.Connection, rater: str, cfg: StudyConfig, new_raters_per_minute: int = 0) -> Trial:
    """The rater's first unanswered assigned item (so a closed tab resumes), with progress.

    When the rater is done in a study on a crowd platform (or one that screens raters by their
    sentinels), the reply carries the ``completion`` (:func:`.arrivals.completion`), recorded
    before it is returned.

    Args:
        con: a connection to the study.
        rater: a rater id admitted by :func:`check_rater`.
        cfg: the study's settings (:func:`load_config`).
        new_raters_per_minute: at most this many raters without a token are recorded per
            minute (0 = no cap).

    Raises:
        TooManyNewRaters: ``rater`` is new and the cap is reached (nothing written).
        StudyUnavailable: the database cannot be read or written now.
    """
    _assign(con, rater, cfg, new_raters_per_minute)
    total = con.execute("SELECT COUNT(*) FROM assignments WHERE rater=?", (rater,)).fetchone()[0]
    done = con.execute("SELECT COUNT(*) FROM answers WHERE rater=?", (rater,)).fetchone()[0]
    row = con.execute("SELECT a.item, i.kind FROM assignments a JOIN items i ON i.id=a.item "
                      "WHERE a.rater=? AND a.item NOT IN (SELECT item FROM answers WHERE rater=?) "
                      "ORDER BY a.position LIMIT 1", (rater, rater)).fetchone()
    if row is None:
        out: Trial = {"done": True, "answered": done, "total": total}
        end = completion(con, rater, cfg, total)
        if end is not None:
            out["completion"] = end
        return out
    item, kind = row
    return {"done": False, "item": item, "kind": kind, "swapped": swapped_for(cfg, rater, item, kind),
            "answered": done, "total": total}


_IMAGE_SQL = {"ref": "SELECT ref FROM items WHERE id=?", "p0": "SELECT p0 FROM items WHERE id=?",
              "p1": "SELECT p1 FROM items WHERE id=?"}


@db_errors
def image_png(con: sqlite3.Connection, rater: str, item: object, role: str) -> bytes:
    """The PNG bytes of image ``role`` (ref, p0 or p1) of an item assigned to ``rater``.

    Raises:
        NotFound: no such role, item id out of range, or the item has no such image.
        NotAllowed: the item is not assigned to ``rater``.
    """
    if role not in _IMAGE_SQL:
        raise NotFound(f"no image role {short(role)}")
    item_ = item_id(item)
    if not con.execute("SELECT 1 FROM assignments WHERE rater=? AND item=?", (rater, item_)).fetchone():
        raise NotAllowed(f"item {item_} is not assigned to rater {rater!r}")
    row = con.execute(_IMAGE_SQL[role], (item_,)).fetchone()
    if row is None or row[0] is None:
        raise NotFound(f"item {item_} has no {role} image")
    return bytes(row[0])


@db_errors
def record_answer(con: sqlite3.Connection, rater: str, cfg: StudyConfig, post: AnswerPost) -> Ack:
    """Store one answer, committed before return; nothing is written on any refusal.

    Raises:
        NotFound: no such item.
        InvalidRequest: ``side`` or ``timings`` do not fit the item's kind.
        NotAllowed: the item is not assigned to ``rater``.
        AlreadyAnswered: the rater has answered this item before.
        StudyUnavailable: the database cannot be written now.
    """
    row = con.execute("SELECT kind FROM items WHERE id=?", (post.item,)).fetchone()
    if row is None:
        raise NotFound(f"item {post.item}: no such item in this study")
    kind = row[0]
    swapped = swapped_for(cfg, rater, post.item, kind)
    side, answer = side_answer(kind, post.side, swapped)
    timings = timings_json(kind, post.timings)
    try:
        with transaction(con):
            if not con.execute("SELECT 1 FROM assignments WHERE rater=? AND item=?", (rater, post.item)).fetchone():
                raise NotAllowed(f"item {post.item} is not assigned to rater {rater!r}")
            now = time.time()
            con.execute("INSERT INTO answers (rater, item, swapped, side, answer, rt_ms, timings, created) "
                        "VALUES (?,?,?,?,?,?,?,?)", (rater, post.item, swapped, side, answer, post.rt_ms, timings, now))
            con.execute("UPDATE raters SET seen=? WHERE id=?", (now, rater))
    except sqlite3.IntegrityError:
        raise AlreadyAnswered(f"rater {rater!r} already answered item {post.item}") from None
    return {"stored": True, "item": post.item, "answer": answer}
