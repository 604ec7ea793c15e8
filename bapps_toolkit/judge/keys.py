"""The study's secrets: study id, link secret and key, link raters' tokens, the dashboard's admin token.

The study link's key signs the link; raters who arrive through it get tokens (SQL in :mod:`.store_serve`; no HTTP).

* Every study has a random ``study_id`` and a 256-bit ``link_secret``, kept in ``study_meta``
  (a study made before they existed gets them when ``bapps judge link`` or ``admin-token``
  first needs them).
* The study link carries ``key`` = HMAC-SHA256(link secret, ``"link:" + study_id``), base64url.
  A link not issued for this study (another study's, a made-up or truncated key) is refused.
* A rater arriving through the link gets the token HMAC-SHA256(link secret, ``"rater:" + id``):
  the same on every arrival of that rater, so no token is stored in clear; its SHA-256 is
  stored as for any rater with a token.
* The admin token (256 bits) is shown once when issued; only its SHA-256 is stored. Issuing a new
  one replaces the old.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass

from ..errors import DataError
from .db import transaction
from .store_serve import meta_value, set_meta

#: Characters of a link key, a rater token and an admin token (base64url, no padding).
TOKEN_ALPHABET = "A-Za-z0-9_-"  # noqa: S105 (a character class, not a secret)
MAX_KEY_CHARS = 128


@dataclass(frozen=True)
class StudyKeys:
    """The study's id and the secret its links and arrival tokens are derived from."""

    study_id: str
    secret: bytes


def token_hash(token: str) -> str:
    """SHA-256 hex digest of a token (what the database keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def study_keys(con: sqlite3.Connection) -> StudyKeys | None:
    """The study's keys, or ``None`` for a study that has none yet (reads only)."""
    sid, secret = meta_value(con, "study_id"), meta_value(con, "link_secret")
    if sid is None or secret is None:
        return None
    if re.fullmatch(r"[0-9a-f]{16}", sid) is None or re.fullmatch(r"[0-9a-f]{64}", secret) is None:
        raise DataError("study database: study_meta rows 'study_id' and 'link_secret' must be 16 and 64 hex "
                        "digits as this toolkit writes them (a shorter secret would make study links guessable)")
    return StudyKeys(sid, bytes.fromhex(secret))


def create_keys(con: sqlite3.Connection) -> StudyKeys:
    """The study's keys, made and stored if missing (inside the caller's transaction)."""
    keys = study_keys(con)
    if keys is None:
        keys = StudyKeys(secrets.token_hex(8), secrets.token_bytes(32))
        set_meta(con, "study_id", keys.study_id)
        set_meta(con, "link_secret", keys.secret.hex())
    return keys


def ensure_keys(con: sqlite3.Connection) -> StudyKeys:
    """:func:`create_keys` in its own transaction."""
    keys = study_keys(con)
    if keys is not None:
        return keys
    with transaction(con):
        return create_keys(con)


def link_key(keys: StudyKeys) -> str:
    """The ``key`` parameter of the study's link."""
    return _b64(hmac.new(keys.secret, b"link:" + keys.study_id.encode(), hashlib.sha256).digest())


def link_key_ok(keys: StudyKeys | None, key: str) -> bool:
    """Whether ``key`` is the study's link key (constant-time compare)."""
    return keys is not None and hmac.compare_digest(link_key(keys).encode(), key.encode("utf-8", "replace"))


def rater_token(keys: StudyKeys, rater: str) -> str:
    """The token of a rater who arrived through the study link."""
    return _b64(hmac.new(keys.secret, b"rater:" + rater.encode(), hashlib.sha256).digest())


def issue_admin_token(con: sqlite3.Connection) -> str:
    """A new admin token (returned once; its hash replaces the previous one)."""
    token = secrets.token_urlsafe(32)
    with transaction(con):
        create_keys(con)
        set_meta(con, "admin_token_sha256", token_hash(token))
    return token


def admin_token_ok(con: sqlite3.Connection, token: str) -> bool:
    """Whether ``token`` is the study's admin token (constant-time compare of the hashes)."""
    stored = meta_value(con, "admin_token_sha256")
    return stored is not None and hmac.compare_digest(token_hash(token), stored)
