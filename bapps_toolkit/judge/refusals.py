"""Why the judging server refuses a request, as typed errors free of HTTP.

The study store and the request checks raise these; the web app alone maps each class to an
HTTP status (:data:`bapps_toolkit.judge.app.STATUS`). Whenever one is raised nothing has been
written to the study database. Messages are shown to raters in the page, so they name the
offending field or value but never a file path or other server internals.
"""
from __future__ import annotations

from ..errors import BappsError


class Refused(BappsError):
    """A request the study refuses; nothing was written."""


class InvalidRequest(Refused):
    """A field, query parameter, header or body is malformed (names the field)."""


class NotAllowed(Refused):
    """The request may not act as this rater, on this item, or from this host or origin."""


class NotFound(Refused):
    """The named item or image does not exist in this study."""


class AlreadyAnswered(Refused):
    """The rater has already answered this item (answers are never overwritten)."""


class NotAuthorized(Refused):
    """A request for the study's admin data without the admin token, or with a wrong one."""


class RateLimited(Refused):
    """Too many requests of a kind in the last minute; try again later.

    Args:
        message: the text shown to the rater.
        retry_after_s: whole seconds after which a request will be admitted again.
    """

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooManyNewRaters(RateLimited):
    """The server's cap on new raters per minute is reached."""


class TooManyAttempts(RateLimited):
    """Too many requests with a wrong admin token in the last minute (no token is checked now)."""


class StudyUnavailable(BappsError):
    """The study database cannot be used now (read-only, disk full, locked, I/O error).

    Args:
        message: the text shown to the rater (no path, no SQL).
        reason: a short machine-readable cause: ``read-only``, ``full``, ``busy``, ``io`` or ``damaged``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
