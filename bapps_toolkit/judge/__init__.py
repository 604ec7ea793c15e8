"""``bapps judge``: collect human 2AFC and JND judgments with the BAPPS protocol in a browser.

* :mod:`.items` — read an unjudged SET (folders, ``.h5``, CSV manifest); sentinel trials.
* :mod:`.store` — the SQLite (WAL) study database: items, raters, assignments, answers.
* :mod:`.assign` — the assignment policies (``balanced``, ``adaptive``); :mod:`.posterior` their
  Beta–binomial arithmetic; :mod:`.disagreement` metric distances given at creation.
* :mod:`.platform`, :mod:`.arrivals`, :mod:`.keys` — crowd platforms: study links, arrivals,
  completion codes, screening by sentinels; the study's secrets and admin token.
* :mod:`.summary` — the dashboard's summary (and ``bapps judge status``).
* :mod:`.simulate` — simulated studies that compare the assignment policies.
* :mod:`.refusals` — why a request is refused (typed errors; the app maps them to HTTP statuses).
* :mod:`.guard` — which hosts and origins may use the server.
* :mod:`.app` — the Flask app and its waitress server (optional extra ``judge``).
* :mod:`.tally` — a study's raters, items and answers read back, checked, and the votes per
  item of the kept raters (typed records: :class:`~.tally.Tally`).
* :mod:`.export` — export to the BAPPS layout or a CSV manifest; per-item status report.

SQL lives in the store modules (store, assign, arrivals, keys, summary, export, db); HTTP only
in :mod:`.app` (and :mod:`.transport`, waitress' own refusals).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .._io import PathLike
from .export import export, status_text
from .items import Item, read_items
from .refusals import Refused, StudyUnavailable
from .store import add_rater, create_study, open_study
from .tally import tally

__all__ = ["Item", "read_items", "create_study", "open_study", "add_rater", "Refused", "StudyUnavailable",
           "export", "status_text", "tally", "create_from_set"]


def create_from_set(source: PathLike, db: PathLike, *, distances: PathLike | None = None,
                    **settings: Any) -> Path:
    """Read SET ``source`` and write a new study database ``db`` with ``settings``.

    For adaptive assignment, optional per-item metric ``distances`` may be given: see :mod:`.disagreement`.
    """
    return create_study(db, read_items(source), distances=distances, **settings)
