"""Raters who arrive through a study link, and the outcome recorded when they finish.

The rules are in :mod:`.platform`, the secrets in :mod:`.keys`, the SQL in :mod:`.store_serve`; no HTTP.

An arrival is admitted when its key is the study's link key. The first arrival of a rater id
records the rater (with the token derived from the link secret, stored hashed) and its platform,
study and session in ``arrivals``, within the cap on new raters; a later arrival of the same id
with the same study and session gets the same token back and writes nothing; with another session
(or an id already used by a rater added by the researcher) it is refused.

When a rater has answered every trial, :func:`completion` decides the outcome once (by the
sentinels) and records it in ``outcomes`` before it is shown: later requests show the same code.
"""
from __future__ import annotations

import sqlite3
import time

from .assign import check_new_rater_cap
from .db import db_errors, transaction
from .keys import link_key_ok, rater_token, study_keys, token_hash
from .platform import Arrival, ArrivalPost, Completion, completion_for, outcome_for
from .refusals import NotAllowed
from .settings import StudyConfig
from .store_serve import arrival_of, insert_arrival, insert_outcome, outcome_of, sentinel_answers


def _existing(con: sqlite3.Connection, post: ArrivalPost) -> bool:
    """Whether the rater already arrived with this study and session (else refuse a known id)."""
    row = arrival_of(con, post.rater)
    if row is None:
        return False
    if row.arrived is None:
        raise NotAllowed(f"rater id {post.rater!r} is already used in this study by a rater not arriving "
                         "through its link")
    if (row.study, row.session) != (post.study, post.session):
        raise NotAllowed("this participant has already taken part in this study in another session")
    return True


@db_errors
def arrive(con: sqlite3.Connection, cfg: StudyConfig, post: ArrivalPost, new_raters_per_minute: int) -> Arrival:
    """Admit a rater arriving through the study link; commit their record before returning.

    Raises:
        NotAllowed: the key is not this study's, or the rater id is taken (see the module docstring).
        TooManyNewRaters: a new rater and the cap on new raters is reached (nothing written).
        StudyUnavailable: the database cannot be read or written now.
    """
    keys = study_keys(con)
    if keys is None or not link_key_ok(keys, post.key):
        raise NotAllowed("this link was not issued for this study (wrong key); please use the link you were given")
    token = rater_token(keys, post.rater)
    if _existing(con, post):
        return {"rater": post.rater, "token": token}
    with transaction(con):
        if not _existing(con, post):  # checked again under the lock
            check_new_rater_cap(con, new_raters_per_minute)
            now = time.time()
            insert_arrival(con, post.rater, token_hash(token), cfg["platform"], post.study, post.session, now)
    return {"rater": post.rater, "token": token}


def recorded_outcome(con: sqlite3.Connection, rater: str) -> str | None:
    """The outcome recorded for ``rater`` when they finished, if any."""
    return outcome_of(con, rater)


def completion(con: sqlite3.Connection, rater: str, cfg: StudyConfig, total: int) -> Completion | None:
    """What a rater who has answered all ``total`` trials is told, recorded the first time.

    ``None`` in a study neither on a platform nor screening by sentinels (the page shows its
    plain "done" screen). A rater given no trial is told so (``no_trials``, not recorded: an
    abandoned item may still come their way).
    """
    if cfg.get("platform", "none") == "none" and cfg.get("min_sentinel_accuracy") is None:
        return None
    n, right = sentinel_answers(con, rater)
    if total == 0:
        return completion_for(cfg, "no_trials", n, right)
    outcome = recorded_outcome(con, rater)
    if outcome is None:
        with transaction(con):
            outcome = recorded_outcome(con, rater) or outcome_for(cfg, n, right)
            end = completion_for(cfg, outcome, n, right)
            insert_outcome(con, rater, outcome, end["code"], n, right, time.time())
    return completion_for(cfg, outcome, n, right)
