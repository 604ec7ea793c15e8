"""The study database: SQLite in WAL mode, one row per answer.

Tables: ``config`` (the study settings, JSON), ``items`` (every trial with its images as PNG
bytes; sentinels flagged with their right answer), ``raters`` (id, SHA-256 of the token if
one was issued), ``assignments`` (rater, item, position: the rater's seeded order) and
``answers`` (rater, item, left/right swap shown, side clicked, answer, response time, the
JND timings measured in the page, time of commit) with ``UNIQUE(rater, item)``.

Assignment policy (balanced, seeded, robust to raters who leave): a rater's first request
gives them up to ``items_per_rater`` real items (0 = all) among those whose *live count* is
below ``judgments_per_item``, fewest first; the live count of an item is its answers plus the
unanswered assignments of raters *active* within ``reassign_after_s`` seconds (active = their
last answer or assignment). So the items of a rater who stopped answering for longer are
offered again: to new raters at their first request, and to a rater who has answered all their
items at their next request (``/api/next``), which appends those *abandoned* items (at most
``items_per_rater`` at a time) to their order. The idle rater keeps their assignment: if they
return they may still answer, and the item then ends with more than the wanted judgments
(never fewer, as long as enough raters come). ``reassign_after_s = 0`` never reassigns.

Every write runs in one ``BEGIN IMMEDIATE`` transaction and is committed before the caller
replies, so an acknowledged answer survives a crash of the server process.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, TypedDict, Union

from ..errors import DataError
from .answers import AnswerPost, item_id, short, side_answer, timings_json
from .db import BUSY_TIMEOUT_S, CANNOT_OPEN, connect, db_errors, log, transaction
from .items import Item, make_sentinels
from .refusals import AlreadyAnswered, InvalidRequest, NotAllowed, NotFound, StudyUnavailable, TooManyNewRaters
from .settings import DEFAULTS, validate_config

__all__ = ["DEFAULTS", "validate_config", "create_study", "open_study", "load_config", "add_rater", "valid_rater",
           "check_rater", "next_trial", "record_answer", "image_png", "swapped_for", "Progress", "Trial", "Ack"]

PathLike = Union[str, "os.PathLike[str]"]
RATER_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
RATER_RULE = "1-64 letters, digits, '_', '.', '-'"
MAX_TOKEN_CHARS = 256
ROLES = ("ref", "p0", "p1")

SCHEMA = """
CREATE TABLE IF NOT EXISTS config (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, set_key TEXT NOT NULL, stem TEXT NOT NULL,
  kind TEXT NOT NULL, expected INTEGER, ref BLOB, p0 BLOB NOT NULL, p1 BLOB NOT NULL,
  UNIQUE(set_key, stem));
CREATE TABLE IF NOT EXISTS raters (id TEXT PRIMARY KEY, token_sha256 TEXT, created REAL NOT NULL,
  seen REAL);
CREATE TABLE IF NOT EXISTS assignments (rater TEXT NOT NULL REFERENCES raters(id),
  item INTEGER NOT NULL REFERENCES items(id), position INTEGER NOT NULL, PRIMARY KEY(rater, item));
CREATE TABLE IF NOT EXISTS answers (id INTEGER PRIMARY KEY, rater TEXT NOT NULL REFERENCES raters(id),
  item INTEGER NOT NULL REFERENCES items(id), swapped INTEGER NOT NULL, side TEXT NOT NULL,
  answer INTEGER NOT NULL, rt_ms REAL NOT NULL, timings TEXT, created REAL NOT NULL,
  UNIQUE(rater, item));
"""


class Progress(TypedDict):
    """How far a rater is: ``answered`` of ``total`` assigned trials; ``done`` when all are."""

    done: bool
    answered: int
    total: int


class Trial(Progress, total=False):
    """The rater's next trial (absent when ``done``): item id, kind and left/right swap."""

    item: int
    kind: str
    swapped: int


class Ack(TypedDict):
    """An answer committed to the database."""

    stored: bool
    item: int
    answer: int


def create_study(db: PathLike, items: list[Item], **settings: Any) -> Path:
    """Write a new study database (temp name, then rename); refuses to overwrite one."""
    path = Path(db)
    if path.exists():
        raise FileExistsError(f"study database {path} already exists")
    cfg = validate_config(settings)
    n_real = len(items)
    n_sent = round(cfg["sentinel_share"] * n_real / (1.0 - cfg["sentinel_share"]))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    con = connect(tmp)
    try:
        con.executescript(SCHEMA)
        with transaction(con):
            con.executemany("INSERT INTO config VALUES (?, ?)", [(k, json.dumps(v)) for k, v in cfg.items()])
            for it in list(items) + make_sentinels(items, n_sent, cfg["seed"]):
                con.execute("INSERT INTO items (set_key, stem, kind, expected, ref, p0, p1) VALUES (?,?,?,?,?,?,?)",
                            (it.key, it.stem, it.kind, it.expected, it.images.get("ref"),
                             it.images["p0"], it.images["p1"]))
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    os.replace(tmp, path)
    return path


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
    if "seen" not in {r[1] for r in con.execute("PRAGMA table_info(raters)")}:
        with transaction(con):  # a study made before raters' activity was recorded (checked again under the lock)
            if "seen" not in {r[1] for r in con.execute("PRAGMA table_info(raters)")}:
                con.execute("ALTER TABLE raters ADD COLUMN seen REAL")
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


def load_config(con: sqlite3.Connection) -> dict[str, Any]:
    """The study's settings; a setting added after the study was made takes its default."""
    return {**DEFAULTS, **{k: json.loads(v) for k, v in con.execute("SELECT name, value FROM config")}}


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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
                con.execute("UPDATE raters SET token_sha256=? WHERE id=?", (_token_hash(token), rater))
            else:
                con.execute("INSERT INTO raters (id, token_sha256, created) VALUES (?, ?, ?)",
                            (rater, _token_hash(token), time.time()))
    finally:
        con.close()
    return token


def valid_rater(rater: object) -> bool:
    """Whether ``rater`` is a rater id: the whole string is 1-64 of ``A-Z a-z 0-9 _ . -``."""
    return isinstance(rater, str) and RATER_RE.fullmatch(rater) is not None


@db_errors
def check_rater(con: sqlite3.Connection, rater: object, token: object, require_token: bool) -> str:
    """The rater id if the request may act as that rater; writes nothing.

    A rater with a token must present it (constant-time compare); when ``require_token`` is
    set (server reachable beyond 127.0.0.1) only raters added with a token are accepted. A
    rater id not seen before is admitted here but recorded only when it is given trials
    (:func:`next_trial`).

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
        raise NotAllowed(f"rater {rater!r} has no token; this server only admits raters added with one")
    if stored is not None:
        if not isinstance(token, str) or not secrets.compare_digest(_token_hash(token), stored):
            raise NotAllowed(f"wrong or missing token for rater {rater!r}")
    return rater


PENDING = ("SELECT s.item FROM assignments s JOIN raters r ON r.id=s.rater WHERE s.item=i.id AND "
           "NOT EXISTS (SELECT 1 FROM answers a WHERE a.rater=s.rater AND a.item=s.item)")


def _open_items(con: sqlite3.Connection, rater: str, cfg: dict[str, Any], adopt: bool) -> list[tuple[int, int]]:
    """``(item, live count)`` of the real items not assigned to ``rater`` whose live count is
    below ``judgments_per_item``; with ``adopt`` only items an idle rater left unanswered."""
    after = float(cfg["reassign_after_s"])
    cutoff = time.time() - after if after > 0 else float("-inf")
    active = "(r.seen IS NULL OR r.seen >= :cut)"
    rows = con.execute(
        f"SELECT i.id, (SELECT COUNT(*) FROM answers a WHERE a.item=i.id) + "  # noqa: S608 (fixed SQL text)
        f"(SELECT COUNT(*) FROM ({PENDING} AND {active})), "
        f"EXISTS ({PENDING} AND NOT {active}) FROM items i WHERE i.expected IS NULL "
        "AND i.id NOT IN (SELECT item FROM assignments WHERE rater=:rater) ORDER BY i.id",
        {"cut": cutoff, "rater": rater}).fetchall()
    return [(i, c) for i, c, idle in rows if c < cfg["judgments_per_item"] and (idle or not adopt)]


def _counts(con: sqlite3.Connection, rater: str) -> tuple[int, int, int | None]:
    """The rater's assigned items, how many are unanswered, and the last position."""
    n_had, n_open, last = con.execute(
        "SELECT COUNT(*), COALESCE(SUM(NOT EXISTS (SELECT 1 FROM answers a WHERE a.rater=s.rater "
        "AND a.item=s.item)), 0), MAX(position) FROM assignments s WHERE rater=?", (rater,)).fetchone()
    return n_had, n_open, last


def _settled(n_had: int, n_open: int, cfg: dict[str, Any]) -> bool:
    """Whether the rater keeps their order as it is (unanswered items left, or no reassignment)."""
    return bool(n_open or (n_had and not cfg["reassign_after_s"]))


def _check_new_rater_cap(con: sqlite3.Connection, per_minute: int) -> None:
    """TooManyNewRaters if ``per_minute`` raters without a token were recorded in the last 60 s."""
    if per_minute <= 0:
        return
    now = time.time()
    recent = con.execute("SELECT created FROM raters WHERE token_sha256 IS NULL AND created > ? "
                         "ORDER BY created DESC LIMIT ?", (now - 60.0, per_minute)).fetchall()
    if len(recent) >= per_minute:
        wait = max(1, math.ceil(recent[-1][0] + 60.0 - now))
        raise TooManyNewRaters(f"Many new raters joined in the last minute (this server admits {per_minute} "
                               f"a minute). Please try again in {wait} s.", wait)


def _choose(con: sqlite3.Connection, rater: str, cfg: dict[str, Any], n_had: int) -> list[int]:
    """The items to append to the rater's order: real items with the lowest live count first
    (ties broken by a rater-seeded shuffle), plus, the first time, the sentinels mixed in at
    random positions."""
    rng = random.Random(f"{cfg['seed']}:{rater}" + (f":{n_had}" if n_had else ""))  # noqa: S311 (an order, not a secret)
    counts = _open_items(con, rater, cfg, adopt=bool(n_had))
    rng.shuffle(counts)
    ranked = sorted((c, k, i) for k, (i, c) in enumerate(counts))
    chosen = [i for _, _, i in ranked[:cfg["items_per_rater"] or len(ranked)]]
    rng.shuffle(chosen)
    if not n_had:
        sentinels = [r[0] for r in con.execute("SELECT id FROM items WHERE expected IS NOT NULL")]
        n_total = con.execute("SELECT COUNT(*) FROM items WHERE expected IS NULL").fetchone()[0] or 1
        n_sent = min(len(sentinels), round(len(sentinels) * len(chosen) / n_total)) if chosen else 0
        for s in rng.sample(sentinels, n_sent):
            chosen.insert(rng.randint(0, len(chosen)), s)
    return chosen


def _assign(con: sqlite3.Connection, rater: str, cfg: dict[str, Any], new_raters_per_minute: int) -> None:
    """Give ``rater`` its seeded, balanced item order, or more items once it is answered
    (policy in the module docstring). A rater seen for the first time is recorded here, with
    its first items, within the cap on new raters; nothing is written when there is nothing
    to give, and no lock is taken when the rater's order stays as it is."""
    if _settled(*_counts(con, rater)[:2], cfg):
        return
    with transaction(con):
        n_had, n_open, last = _counts(con, rater)
        if _settled(n_had, n_open, cfg):
            return
        known = bool(n_had) or con.execute("SELECT 1 FROM raters WHERE id=?", (rater,)).fetchone() is not None
        if not known:
            _check_new_rater_cap(con, new_raters_per_minute)
        chosen = _choose(con, rater, cfg, n_had)
        if not chosen:
            return
        now = time.time()
        if not known:
            con.execute("INSERT INTO raters (id, created, seen) VALUES (?, ?, ?)", (rater, now, now))
        base = 0 if last is None else last + 1
        con.executemany("INSERT INTO assignments VALUES (?, ?, ?)",
                        [(rater, item, base + pos) for pos, item in enumerate(chosen)])
        con.execute("UPDATE raters SET seen=? WHERE id=?", (now, rater))


def swapped_for(cfg: dict[str, Any], rater: str, item: int, kind: str = "2afc") -> int:
    """Whether ``p1`` is shown on the left for this rater and 2AFC item (seeded, reproducible).
    Always 0 for JND: as in BAPPS, ``p0`` (the reference) is shown first, then ``p1``."""
    if kind != "2afc":
        return 0
    digest = hashlib.sha256(f"{cfg['seed']}:{rater}:{item}".encode()).digest()
    return digest[0] & 1


@db_errors
def next_trial(con: sqlite3.Connection, rater: str, cfg: dict[str, Any], new_raters_per_minute: int = 0) -> Trial:
    """The rater's first unanswered assigned item (so a closed tab resumes), with progress.

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
        return {"done": True, "answered": done, "total": total}
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
def record_answer(con: sqlite3.Connection, rater: str, cfg: dict[str, Any], post: AnswerPost) -> Ack:
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
