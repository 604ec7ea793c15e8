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
import os
import random
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ..data.ids import check_id, id_key, shown
from ..data.layout import is_set_key, kind_of
from ..errors import BappsError, DataError
from .items import Item, make_sentinels

PathLike = Union[str, "os.PathLike[str]"]
RATER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

DEFAULTS: dict[str, Any] = {
    "judgments_per_item": 5, "items_per_rater": 0, "sentinel_share": 0.1, "seed": 0,
    "break_every": 50, "display_px": 256, "scaling": "nearest", "reassign_after_s": 900,
    "jnd_ref_ms": 1000, "jnd_blank_ms": 250, "jnd_dist_ms": 1000,
    "instructions": ("2AFC: which of the two images (left or right) is more similar to the middle "
                     "reference? Keys: A or Left arrow = left, L or Right arrow = right.\n"
                     "JND: an image is shown for a second, then a blank, then a second image. "
                     "Were they the same? Keys: S = same, D = different."),
}

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


class RequestError(BappsError):
    """A request the study refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def connect(db: PathLike) -> sqlite3.Connection:
    con = sqlite3.connect(str(db), timeout=30.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA foreign_keys=ON")
    return con


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown study settings: {', '.join(sorted(unknown))}")
    out = {**DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    for k in ("judgments_per_item", "break_every", "display_px", "jnd_ref_ms", "jnd_blank_ms", "jnd_dist_ms"):
        if not isinstance(out[k], int) or out[k] < 1:
            raise ValueError(f"{k} must be a positive integer, got {out[k]!r}")
    if not isinstance(out["items_per_rater"], int) or out["items_per_rater"] < 0:
        raise ValueError(f"items_per_rater must be >= 0 (0 = every item), got {out['items_per_rater']!r}")
    if not 0.0 <= float(out["sentinel_share"]) < 0.5:
        raise ValueError(f"sentinel_share must be in [0, 0.5), got {out['sentinel_share']!r}")
    r = out["reassign_after_s"]
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1e9:
        raise ValueError(f"reassign_after_s must be seconds >= 0 (0 = never reassign), got {r!r}")
    if out["scaling"] not in ("nearest", "bilinear"):
        raise ValueError(f"scaling must be 'nearest' or 'bilinear', got {out['scaling']!r}")
    return out


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


def open_study(db: PathLike) -> sqlite3.Connection:
    path = Path(db)
    if not path.is_file():
        raise DataError(f"study database {path} does not exist (create it from a SET first)")
    con = connect(path)
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


def load_config(con: sqlite3.Connection) -> dict[str, Any]:
    """The study's settings; a setting added after the study was made takes its default."""
    return {**DEFAULTS, **{k: json.loads(v) for k, v in con.execute("SELECT name, value FROM config")}}


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_rater(db: PathLike, rater: str) -> str:
    """Register ``rater`` with a fresh random token (returned once, stored hashed)."""
    if not RATER_RE.match(rater):
        raise ValueError(f"rater id {rater!r}: use 1-64 letters, digits, '_', '.', '-'")
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


def check_rater(con: sqlite3.Connection, rater: Any, token: Any, require_token: bool) -> str:
    """The rater id if the request may act as that rater; RequestError otherwise.

    A rater with a token must present it (constant-time compare); when ``require_token`` is
    set (server reachable beyond 127.0.0.1) only raters added with a token are accepted.
    """
    if not isinstance(rater, str) or not RATER_RE.match(rater):
        raise RequestError(400, "rater: expected an id of 1-64 letters, digits, '_', '.', '-'")
    row = con.execute("SELECT token_sha256 FROM raters WHERE id=?", (rater,)).fetchone()
    stored = row[0] if row else None
    if stored is None and require_token:
        raise RequestError(403, f"rater {rater!r} has no token; this server only admits raters added with one")
    if stored is not None:
        if not isinstance(token, str) or not secrets.compare_digest(_token_hash(token), stored):
            raise RequestError(403, f"wrong or missing token for rater {rater!r}")
    if row is None:
        with transaction(con):
            con.execute("INSERT OR IGNORE INTO raters (id, created) VALUES (?, ?)", (rater, time.time()))
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
        f"SELECT i.id, (SELECT COUNT(*) FROM answers a WHERE a.item=i.id) + "
        f"(SELECT COUNT(*) FROM ({PENDING} AND {active})), "
        f"EXISTS ({PENDING} AND NOT {active}) FROM items i WHERE i.expected IS NULL "
        "AND i.id NOT IN (SELECT item FROM assignments WHERE rater=:rater) ORDER BY i.id",
        {"cut": cutoff, "rater": rater}).fetchall()
    return [(i, c) for i, c, idle in rows if c < cfg["judgments_per_item"] and (idle or not adopt)]


def _assign(con: sqlite3.Connection, rater: str, cfg: dict[str, Any]) -> None:
    """Give ``rater`` its seeded, balanced item order, or more items once it is answered
    (policy in the module docstring): real items with the lowest live count first (ties broken
    by a rater-seeded shuffle), plus, the first time, the sentinels mixed in at random positions."""
    with transaction(con):
        n_had, n_open, last = con.execute(
            "SELECT COUNT(*), COALESCE(SUM(NOT EXISTS (SELECT 1 FROM answers a WHERE a.rater=s.rater "
            "AND a.item=s.item)), 0), MAX(position) FROM assignments s WHERE rater=?", (rater,)).fetchone()
        if n_open or (n_had and not cfg["reassign_after_s"]):
            return
        rng = random.Random(f"{cfg['seed']}:{rater}" + (f":{n_had}" if n_had else ""))
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
        if not chosen:
            return
        base = 0 if last is None else last + 1
        con.executemany("INSERT INTO assignments VALUES (?, ?, ?)",
                        [(rater, item, base + pos) for pos, item in enumerate(chosen)])
        con.execute("UPDATE raters SET seen=? WHERE id=?", (time.time(), rater))


def swapped_for(cfg: dict[str, Any], rater: str, item: int, kind: str = "2afc") -> int:
    """Whether ``p1`` is shown on the left for this rater and 2AFC item (seeded, reproducible).
    Always 0 for JND: as in BAPPS, ``p0`` (the reference) is shown first, then ``p1``."""
    if kind != "2afc":
        return 0
    digest = hashlib.sha256(f"{cfg['seed']}:{rater}:{item}".encode()).digest()
    return digest[0] & 1


def next_trial(con: sqlite3.Connection, rater: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The rater's first unanswered assigned item (so a closed tab resumes), with progress."""
    _assign(con, rater, cfg)
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


def _check_timings(kind: str, timings: Any) -> str | None:
    if kind != "jnd":
        return None
    names = ("ref_ms", "blank_ms", "dist_ms")
    if not isinstance(timings, dict) or set(timings) != set(names):
        raise RequestError(400, f"timings: a JND answer needs an object with exactly {', '.join(names)}")
    for n in names:
        v = timings[n]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 600000:
            raise RequestError(400, f"timings.{n}: expected milliseconds in [0, 600000], got {v!r}")
    return json.dumps({n: float(timings[n]) for n in names})


def record_answer(con: sqlite3.Connection, rater: str, cfg: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Validate and store one answer, committed before return; RequestError and nothing written
    on any problem (unknown/unassigned item, duplicate, bad field)."""
    allowed = {"rater", "token", "item", "side", "rt_ms", "timings"}
    extra = set(body) - allowed
    if extra:
        raise RequestError(400, f"unknown fields: {', '.join(sorted(map(str, extra)))}")
    item, side, rt = body.get("item"), body.get("side"), body.get("rt_ms")
    if isinstance(item, bool) or not isinstance(item, int):
        raise RequestError(400, "item: expected an integer item id")
    if isinstance(rt, bool) or not isinstance(rt, (int, float)) or not 0 <= rt <= 3600000:
        raise RequestError(400, "rt_ms: expected a response time in milliseconds in [0, 3600000]")
    row = con.execute("SELECT kind FROM items WHERE id=?", (item,)).fetchone()
    if row is None:
        raise RequestError(404, f"item {item}: no such item in this study")
    kind = row[0]
    sides = ("left", "right") if kind == "2afc" else ("same", "different")
    if side not in sides:
        raise RequestError(400, f"side: expected one of {', '.join(sides)} for a {kind.upper()} item")
    timings = _check_timings(kind, body.get("timings"))
    swapped = swapped_for(cfg, rater, item, kind)
    if kind == "2afc":
        answer = int((side == "right") != bool(swapped))
    else:
        answer = int(side == "same")
    try:
        with transaction(con):
            if not con.execute("SELECT 1 FROM assignments WHERE rater=? AND item=?", (rater, item)).fetchone():
                raise RequestError(403, f"item {item} is not assigned to rater {rater!r}")
            now = time.time()
            con.execute("INSERT INTO answers (rater, item, swapped, side, answer, rt_ms, timings, created) "
                        "VALUES (?,?,?,?,?,?,?,?)", (rater, item, swapped, side, answer, float(rt), timings, now))
            con.execute("UPDATE raters SET seen=? WHERE id=?", (now, rater))
    except sqlite3.IntegrityError:
        raise RequestError(409, f"rater {rater!r} already answered item {item}") from None
    return {"stored": True, "item": item, "answer": answer}


@dataclass(frozen=True)
class ItemRow:
    """One row of a study's ``items`` table (without its images), checked."""

    id: int
    key: str
    stem: str
    kind: str
    expected: int | None


def item_rows(con: sqlite3.Connection, db: PathLike, *, real_only: bool = False) -> list[ItemRow]:
    """The study's items in id order, each checked before its names are used: the database is a
    file like any other (it may have been edited or sent by someone else), and ``export`` makes
    file names of its set keys and stems.

    Args:
        con: an open study (:func:`open_study`).
        db: its path, for messages.
        real_only: leave out the sentinel trials.

    Raises:
        DataError: naming the database, the row's id and the field, for a set key that is not
            ``kind/split/category`` (:func:`~bapps_toolkit.data.layout.is_set_key`), a ``kind``
            that is not the set key's, a stem that is not a valid item id
            (:mod:`bapps_toolkit.data.ids`), or a stem repeated within its set (ignoring case).
    """
    out: list[ItemRow] = []
    seen: dict[tuple[str, str], int] = {}
    query = "SELECT id, set_key, stem, kind, expected FROM items"
    for i, key, stem, kind, expected in con.execute(query + (" WHERE expected IS NULL" if real_only else "")
                                                    + " ORDER BY id"):
        where = f"study database {db}: items row id={i!r}"
        if not isinstance(i, int) or isinstance(key, bytes) or not is_set_key(key):
            raise DataError(f"{where}, field 'set_key': {shown(str(key))} is not a set key such as "
                            "'2afc/val/own' (KIND/SPLIT/CATEGORY)")
        if kind != kind_of(key):
            raise DataError(f"{where}, field 'kind': {shown(str(kind))} does not match its set key {key!r}")
        check_id(stem, f"{where}, field 'stem'")
        if (key, id_key(stem)) in seen:
            raise DataError(f"{where}, field 'stem': {stem!r} repeats item {seen[key, id_key(stem)]} of set "
                            f"{key} (stems are unique within a set, ignoring case)")
        seen[key, id_key(stem)] = i
        out.append(ItemRow(i, key, stem, kind, expected))
    return out
