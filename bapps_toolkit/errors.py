"""Exceptions raised by bapps-toolkit.

Every error a user can cause derives from :class:`BappsError`; the ``bapps`` command line prints
its message (which names the offending file or argument) and exits with status 2 instead of a
traceback.
"""

import difflib


class BappsError(Exception):
    """Base class of every error the toolkit raises on bad input."""


class DataError(BappsError, ValueError):
    """A data file or folder is missing, malformed or inconsistent (the message names it)."""


class DownloadError(BappsError):
    """A download or archive extraction failed (the message names the URL or file)."""


class WeightsError(BappsError):
    """Network weights are missing, corrupt or of the wrong architecture."""


class LockedError(BappsError):
    """Another process holds the lock on an output path."""


class CheckpointError(BappsError):
    """A training checkpoint is missing, unsafe, or does not fit the requested model."""


class UnknownMetricError(BappsError, ValueError):
    """A metric name that is neither registered nor a plugin spec (the message lists the known ones)."""


class MetricOptionError(BappsError, ValueError):
    """An option that a registered metric does not take.

    Attributes:
        metric: The metric's registry name.
        option: The option that was given.
        allowed: The options the metric takes, in its signature's order.
    """

    def __init__(self, metric: str, option: str, allowed: tuple[str, ...]) -> None:
        self.metric = metric
        self.option = option
        self.allowed = allowed
        close = difflib.get_close_matches(option, allowed, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        listing = f" Its options: {', '.join(allowed)}." if allowed else ""
        super().__init__(f"metric {metric} has no option {option}{hint}{listing}")
