"""Item ids (stems): the one rule every reader applies before an id can name a file.

An item's id (its *stem*) comes from data: a manifest's ``id`` column, a packed file's
``stems`` array, a study database's ``items.stem``, a file name in a BAPPS-layout folder. It
later becomes a file name (``bapps judge export`` writes ``<stem>.png`` and ``<stem>.npy``) and
a CSV cell, so it is checked where it enters:

* 1 to :data:`MAX_ID_LENGTH` characters from ``A-Z a-z 0-9 _ . -`` (ASCII only: no path
  separator, no space, no control or look-alike character);
* the first character a letter, a digit or ``_`` (no leading ``.``: no hidden file, no ``.``
  or ``..``; no leading ``-``: no command-line option and no spreadsheet formula);
* unique within its set, compared without case (``Img1`` and ``img1`` would be one file on a
  case-insensitive file system).

BAPPS's own stems (``000000`` …) and the toolkit's defaults (the data row number written with
six digits) follow the rule. Every refusal is a :class:`~bapps_toolkit.errors.DataError`
naming where the id was read (file, row or entry, field) and what is wrong with it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import DataError

#: Longest id accepted (characters); with an extension it stays far below the 255 bytes a file
#: name may have.
MAX_ID_LENGTH = 128
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
#: The rule in words, for messages.
ID_RULE = (f"an id is 1-{MAX_ID_LENGTH} characters of A-Z a-z 0-9 _ . -, starting with a letter, "
           "a digit or '_'")


def shown(text: str, limit: int = 60) -> str:
    """``repr`` of ``text`` cut to about ``limit`` characters (a hostile id may be megabytes)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} characters)"


def id_problem(text: object) -> str | None:
    """What is wrong with ``text`` as an item id, or ``None`` when it is a valid id."""
    if not isinstance(text, str):
        return f"is a {type(text).__name__}, not text"
    if not text:
        return "is empty"
    if len(text) > MAX_ID_LENGTH:
        return f"is {len(text)} characters long (at most {MAX_ID_LENGTH})"
    if ID_PATTERN.fullmatch(text):
        return None
    if text[0] in ".-":
        return f"starts with {text[0]!r}"
    bad = next(c for c in text if not (c.isascii() and (c.isalnum() or c in "_.-")))
    if bad in "/\\":
        return f"holds a path separator {bad!r}"
    return f"holds the character {bad!r} (U+{ord(bad):04X})"


def check_id(text: object, where: str) -> str:
    """``text`` if it is a valid item id (module docstring), else a :class:`DataError`.

    Args:
        text: the id as read.
        where: the file, row and field it was read from, e.g. ``"manifest m.csv: data row 3
            (line 4), field 'id'"``.

    Returns:
        ``text``, unchanged.

    Raises:
        DataError: ``"{where}: {text} is not a valid item id: it {problem} ({rule})"``.

    Example:
        >>> check_id("000001", "manifest m.csv: data row 1, field 'id'")
        '000001'
    """
    problem = id_problem(text)
    if problem is not None or not isinstance(text, str):
        what = shown(text) if isinstance(text, str) else type(text).__name__
        raise DataError(f"{where}: {what} is not a valid item id: it {problem} ({ID_RULE})")
    return text


def id_key(text: str) -> str:
    """The form two ids are compared in for uniqueness (case folded)."""
    return text.casefold()


def check_ids(ids: Iterable[object], where: str, item: str = "entry") -> list[str]:
    """Every id valid and unique (compared without case); returns them as a list.

    Args:
        ids: the ids of one set, in order.
        where: the file and field they were read from, e.g. ``"packed file a.h5: array
            /2afc/val/own/stems"``; the message adds ``"{item} {i}"`` (0-based position).
        item: what one position is called in the message (``"entry"``, ``"item"``).

    Raises:
        DataError: the first invalid id, or the first one equal (ignoring case) to an earlier one.
    """
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, text in enumerate(ids):
        # The message (and its f-string) only for a bad id: packed files hold millions of stems.
        ok = (text if isinstance(text, str) and len(text) <= MAX_ID_LENGTH and ID_PATTERN.fullmatch(text)
              else check_id(text, f"{where}, {item} {i}"))
        out.append(ok)
        key = id_key(ok)
        if key in seen:
            raise DataError(f"{where}, {item} {i}: id {shown(out[-1])} repeats {item} {seen[key]} "
                            f"({shown(out[seen[key]])}); ids must be unique within a set, ignoring case")
        seen[key] = i
    return out
