"""``bapps judge``: collect human 2AFC and JND judgments with the BAPPS protocol in a browser.

* :mod:`.items` — read an unjudged SET (folders, ``.h5``, CSV manifest); sentinel trials.
* :mod:`.store` — the SQLite (WAL) study database: items, raters, assignments, answers.
* :mod:`.refusals` — why a request is refused (typed errors; the app maps them to HTTP statuses).
* :mod:`.guard` — which hosts and origins may use the server.
* :mod:`.app` — the Flask app and its waitress server (optional extra ``judge``).
* :mod:`.export` — export to the BAPPS layout or a CSV manifest; status report.
"""
from .export import export, status_text, tally
from .items import Item, read_items
from .refusals import Refused, StudyUnavailable
from .store import add_rater, create_study, open_study

__all__ = ["Item", "read_items", "create_study", "open_study", "add_rater", "Refused", "StudyUnavailable",
           "export", "status_text", "tally", "create_from_set"]


def create_from_set(source, db, **settings):
    """Read SET ``source`` and write a new study database ``db`` with ``settings``."""
    return create_study(db, read_items(source), **settings)
