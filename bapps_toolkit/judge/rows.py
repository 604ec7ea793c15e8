"""Checked reads of a study's ``items`` table: the database is a file like any other."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .._io import PathLike
from ..data.ids import check_id, id_key, shown
from ..data.layout import is_set_key, kind_of
from ..errors import DataError
from .store_reports import item_records


@dataclass(frozen=True)
class ItemRow:
    """One row of a study's ``items`` table (without its images), checked."""

    id: int
    key: str
    stem: str
    kind: str
    expected: int | None


def item_rows(con: sqlite3.Connection, db: PathLike, *, real_only: bool = False) -> list[ItemRow]:
    """The study's items in id order, each checked before its names are used.

    The database is a file like any other (it may have been edited or sent by someone else), and ``export``
    makes file names of its set keys and stems.

    Args:
        con: an open study (:func:`open_study`).
        db: its path, for messages.
        real_only: leave out the sentinel trials.

    Raises:
        DataError: naming the database, the row's id and the field, for a set key that is not
            ``kind/split/category`` (:func:`~bapps_toolkit.data.layout.is_set_key`), a ``kind``
            that is not the set key's, a stem that is not a valid item id
            (:mod:`bapps_toolkit.data.ids`), or a stem repeated within its set (ignoring case).
    """
    out: list[ItemRow] = []
    seen: dict[tuple[str, str], int] = {}
    for i, key, stem, kind, expected in item_records(con, real_only=real_only):
        where = f"study database {db}: items row id={i!r}"
        if not isinstance(i, int) or isinstance(key, bytes) or not is_set_key(key):
            raise DataError(f"{where}, field 'set_key': {shown(str(key))} is not a set key such as "
                            "'2afc/val/own' (KIND/SPLIT/CATEGORY)")
        if kind != kind_of(key):
            raise DataError(f"{where}, field 'kind': {shown(str(kind))} does not match its set key {key!r}")
        check_id(stem, f"{where}, field 'stem'")
        if (key, id_key(stem)) in seen:
            raise DataError(f"{where}, field 'stem': {stem!r} repeats item {seen[key, id_key(stem)]} of set "
                            f"{key} (stems are unique within a set, ignoring case)")
        seen[key, id_key(stem)] = i
        out.append(ItemRow(i, key, stem, kind, expected))
    return out
