"""Exceptions raised by bapps-toolkit, and the exit status the ``bapps`` command gives each.

Every error a user can cause derives from :class:`BappsError`; its message names the offending
file, row, field or argument. The ``bapps`` command line prints that message as one line and
exits with the class's :attr:`~BappsError.exit_code`; anything else is a bug and keeps its
traceback (``bapps --debug`` or ``BAPPS_DEBUG=1`` prints it).

=========  =====================================================================
exit code  meaning
=========  =====================================================================
0          success
1          unexpected error (a bug: ``--debug`` or ``BAPPS_DEBUG=1`` shows the traceback)
2          the input was refused: a usage error, bad data, missing weights, a lock held…
130        interrupted (Ctrl-C)
=========  =====================================================================

Hierarchy::

    BappsError
    ├── UsageError          (also a ValueError) arguments or options that do not fit together
    │   ├── OptionError     an option a metric's factory does not take, or of the wrong type
    │   └── MetricInputError  tensors or arguments a metric or loss cannot take
    ├── DataError           (also a ValueError) a data file or folder is missing or malformed
    ├── DownloadError       a download or archive extraction failed
    ├── WeightsError        weights are corrupt or of the wrong architecture
    │   └── MissingWeightsError   weights that are needed are not on this machine
    ├── CheckpointError     a training checkpoint is missing, unsafe or does not fit
    └── LockedError         another process holds the lock on an output path
"""
from __future__ import annotations

import difflib

#: Exit status of a run that succeeded.
EXIT_OK = 0
#: Exit status of an unexpected error (a bug; its traceback is shown with ``--debug``).
EXIT_UNEXPECTED = 1
#: Exit status of refused input (every :class:`BappsError`).
EXIT_INPUT = 2
#: Exit status of an interrupted run (128 + SIGINT).
EXIT_INTERRUPTED = 130


class BappsError(Exception):
    """Base class of every error the toolkit raises on bad input.

    Attributes:
        exit_code: the status the ``bapps`` command exits with when this error stops it.
    """

    exit_code: int = EXIT_INPUT


class UsageError(BappsError, ValueError):
    """Arguments or options that are missing, out of range or do not fit together."""


class OptionError(UsageError):
    """An option a metric's (or network's) factory does not take, or a value of the wrong type.

    Args:
        message: the error, naming the option.
        owner: the metric or factory the option was given to.
        option: the option's name.
    """

    def __init__(self, message: str, owner: str = "", option: str = "") -> None:
        super().__init__(message)
        self.owner = owner
        self.option = option


class UnknownMetricError(UsageError):
    """A metric name that is neither registered nor a plugin spec (the message lists the known ones)."""


class MetricOptionError(OptionError):
    """An option that a registered metric does not take, found from the metric's signature.

    Attributes:
        metric: The metric's registry name.
        option: The option that was given.
        allowed: The options the metric takes, in its signature's order.
    """

    def __init__(self, metric: str, option: str, allowed: tuple[str, ...]) -> None:
        close = difflib.get_close_matches(option, allowed, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        listing = f" Its options: {', '.join(allowed)}." if allowed else ""
        super().__init__(f"metric {metric} has no option {option}{hint}{listing}", owner=metric, option=option)
        self.metric = metric
        self.allowed = allowed


class MetricInputError(UsageError):
    """Tensors or arguments a metric or loss cannot take: shape, range, dtype, channels, reduction, constants.

    Raised by the metrics and losses when the cause is the caller's input; the message names the
    metric, the argument and what is wrong. A :class:`ValueError` (through :class:`UsageError`),
    so code that catches ``ValueError`` keeps working.
    """


class DataError(BappsError, ValueError):
    """A data file or folder is missing, malformed or inconsistent (the message names it)."""


class DownloadError(BappsError):
    """A download or archive extraction failed (the message names the URL or file)."""


class WeightsError(BappsError):
    """Network weights are missing, corrupt or of the wrong architecture."""


class MissingWeightsError(WeightsError):
    """Weights a network needs are not on this machine and cannot be downloaded.

    The message is written for a Python caller; :meth:`cli_message` gives the same advice in the
    command line's words (``--backbone-weights alex=PATH``), for the ``bapps`` command to print.

    Args:
        message: the error for a Python caller (it names the keyword argument to pass).
        net: the network whose weights are missing (``alex``, ``vgg``, ``squeeze``…).
        what: ``"backbone"`` or ``"lin"``: which weights are missing.
        cli_hint: what a command-line user passes instead (default: built from ``net`` and ``what``).
    """

    def __init__(self, message: str, net: str = "", what: str = "backbone", cli_hint: str = "") -> None:
        super().__init__(message)
        self.net = net
        self.what = what
        self.cli_hint = cli_hint

    def cli_message(self) -> str:
        """The error as a ``bapps`` user should read it: the flags to pass, not Python keywords.

        Returns:
            ``cli_hint`` when one was given, else the message and the flags that fix it.
        """
        if self.cli_hint:
            return self.cli_hint
        flag = "--lin-weights" if self.what == "lin" else "--backbone-weights"
        return f"{self}; on the command line: {flag} {self.net or 'NET'}=PATH"


class LockedError(BappsError):
    """Another process holds the lock on an output path."""


class CheckpointError(BappsError):
    """A training checkpoint is missing, unsafe, or does not fit the requested model."""


__all__ = [
    "EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNEXPECTED",
    "BappsError", "CheckpointError", "DataError", "DownloadError", "LockedError", "MetricInputError",
    "MetricOptionError", "MissingWeightsError", "OptionError", "UnknownMetricError", "UsageError", "WeightsError",
]
