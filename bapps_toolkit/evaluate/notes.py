"""Notes: what a caller should know about how a request was read, returned as data.

A note is not an error and not a Python warning: the function that makes one returns it (on its
result's ``notes``), and the ``bapps`` command prints each as ``bapps COMMAND: note: TEXT``.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Note:
    """One thing worth telling the user, with what it is about.

    Attributes:
        topic: what the note is about (``"datasets"``: which sets a short form selected).
        text: the note in plain words, e.g. ``"val/cnn selected 2afc/val/cnn, jnd/val/cnn"``.
    """

    topic: str
    text: str


@dataclasses.dataclass(frozen=True)
class Selection:
    """The sets a ``datasets`` argument chose, in the order present, and the notes on the choice.

    Attributes:
        keys: the chosen set keys (``mode/split/category``).
        notes: one :class:`Note` per short form that selected sets of both modes.
    """

    keys: list[str]
    notes: list[Note] = dataclasses.field(default_factory=list)


__all__ = ["Note", "Selection"]
