"""Which items a rater is given: the ``balanced`` and ``adaptive`` assignment policies.

Its SQL is in :mod:`.store_serve`; no HTTP.

Both policies share the bookkeeping. A rater's first request gives them up to
``items_per_rater`` real items (0 = all) that are *open*, with the sentinels mixed in at random
positions; the order is seeded by the study seed and the rater id, so it is reproducible. The
*live count* of an item is its answers plus the unanswered assignments of raters *active*
within ``reassign_after_s`` seconds (active = their last answer or assignment). The items of a
rater who stopped answering for longer are offered again: to new raters at their first request,
and to a rater who has answered all their items at their next request, which appends those
*abandoned* items (at most ``items_per_rater`` at a time). The idle rater keeps their
assignment: if they return they may still answer, and the item then ends with one answer more
than the policy wanted. ``reassign_after_s = 0`` never reassigns.

* **balanced**: an item is open while its live count is below ``judgments_per_item``; the
  items with the lowest live count are given first (ties broken by the seeded shuffle).
* **adaptive**: each item's judge fraction (2AFC: share choosing ``p1``; JND: share saying
  "same") has the posterior ``Beta(a + k, b + n − k)`` of the ``prior`` ``(a, b)``, with the
  unanswered assignments of active raters counted as virtual answers at the posterior mean
  (:mod:`.posterior`). An item is open while the width of its central ``credible_level``
  interval is at least ``target_width`` and its live count is below ``judgments_per_item``
  (the most any item gets); the items with the widest interval — multiplied by
  ``1 + disagreement_weight × metric disagreement`` when the study carries metric distances —
  are given first.

Everything runs inside the caller's ``BEGIN IMMEDIATE`` transaction, so two raters arriving
together see each other's assignments.
"""
from __future__ import annotations

import math
import random
import sqlite3
import time
from dataclasses import dataclass

import numpy as np

from .posterior import credible_width, posterior_params
from .refusals import TooManyNewRaters
from .settings import StudyConfig, prior_of
from .store_serve import (
    item_counts,
    rater_assignment_counts,
    real_item_count,
    recent_new_raters,
    sentinel_ids,
)

__all__ = ["ItemState", "item_state", "open_items", "choose", "check_new_rater_cap", "rater_counts"]

@dataclass(frozen=True)
class ItemState:
    """Per real item not yet assigned to the rater (arrays of equal length, by item id).

    Attributes:
        ids: item ids.
        n: answers.
        k: answers ``1`` (2AFC: ``p1`` chosen; JND: "same").
        active: unanswered assignments of active raters.
        idle: unanswered assignments of idle raters (abandoned).
        disagreement: metric disagreement in ``[0, 1]`` (0 without metric distances).
    """

    ids: np.ndarray
    n: np.ndarray
    k: np.ndarray
    active: np.ndarray
    idle: np.ndarray
    disagreement: np.ndarray

    @property
    def live(self) -> np.ndarray:
        """Answers plus the unanswered assignments of active raters."""
        return np.asarray(self.n + self.active)


def item_state(con: sqlite3.Connection, rater: str, cfg: StudyConfig) -> ItemState:
    """The counts of every real item not assigned to ``rater`` (one query)."""
    after = float(cfg["reassign_after_s"])
    cutoff = time.time() - after if after > 0 else -math.inf
    rows = item_counts(con, rater, cutoff)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    ids, n, k, active, idle = (np.asarray(c, dtype=np.int64) for c in cols[:5])
    return ItemState(ids, n, k, active, idle, np.asarray(cols[5], dtype=np.float64))


def adaptive_widths(state: ItemState, cfg: StudyConfig) -> np.ndarray:
    """Credible-interval width of each item, the active raters' pending answers counted as virtual."""
    a, b = posterior_params(state.k, state.n, prior_of(cfg), virtual=state.active)
    return credible_width(a, b, float(cfg["credible_level"]))


def open_items(state: ItemState, cfg: StudyConfig, adopt: bool) -> tuple[np.ndarray, np.ndarray]:
    """The open items and their sort key (smaller first): ``(positions in state, key)``.

    With ``adopt`` only items an idle rater left unanswered are open.
    """
    mask = state.live < cfg["judgments_per_item"]
    if adopt:
        mask &= state.idle > 0
    if cfg["assignment"] == "adaptive":
        width = adaptive_widths(state, cfg)
        mask &= width >= float(cfg["target_width"])
        key = -width * (1.0 + float(cfg["disagreement_weight"]) * state.disagreement)
    else:
        key = state.live.astype(np.float64)
    pos = np.flatnonzero(mask)
    return pos, key[pos]


def choose(con: sqlite3.Connection, rater: str, cfg: StudyConfig, n_had: int) -> list[int]:
    """The items to append to the rater's order, ranked by the policy, sentinels mixed in the first time.

    The open items are ranked by the policy (ties broken by a seeded shuffle); the first time, the sentinels are
    mixed in at random positions.
    """
    rng = random.Random(f"{cfg['seed']}:{rater}" + (f":{n_had}" if n_had else ""))  # noqa: S311 (an order, not a secret)
    state = item_state(con, rater, cfg)
    pos, key = open_items(state, cfg, adopt=bool(n_had))
    order = list(range(len(pos)))
    rng.shuffle(order)
    ranked = sorted(order, key=lambda j: float(key[j]))  # stable: shuffled order breaks ties
    take = cfg["items_per_rater"] or len(ranked)
    chosen = [int(state.ids[pos[j]]) for j in ranked[:take]]
    rng.shuffle(chosen)
    if not n_had:
        sentinels = sentinel_ids(con)
        n_total = real_item_count(con) or 1
        n_sent = min(len(sentinels), round(len(sentinels) * len(chosen) / n_total)) if chosen else 0
        for s in rng.sample(sentinels, n_sent):
            chosen.insert(rng.randint(0, len(chosen)), s)
    return chosen


def rater_counts(con: sqlite3.Connection, rater: str) -> tuple[int, int, int | None]:
    """The rater's assigned items, how many are unanswered, and the last position."""
    return rater_assignment_counts(con, rater)


def check_new_rater_cap(con: sqlite3.Connection, per_minute: int) -> None:
    """Raise TooManyNewRaters when ``per_minute`` new raters were recorded in the last 60 s.

    Counted are the raters recorded without a token or by arriving through a study link (raters added by
    the researcher do not count).
    """
    if per_minute <= 0:
        return
    now = time.time()
    recent = recent_new_raters(con, now - 60.0, per_minute)
    if len(recent) >= per_minute:
        wait = max(1, math.ceil(recent[-1] + 60.0 - now))
        raise TooManyNewRaters(f"Many new raters joined in the last minute (this server admits {per_minute} "
                               f"a minute). Please try again in {wait} s.", wait)
