"""Exceptions raised by bapps-toolkit.

Every error a user can cause derives from :class:`BappsError`; the ``bapps`` command line prints
its message (which names the offending file or argument) and exits with status 2 instead of a
traceback.
"""


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
