"""Numbers read from the text cells of untrusted files (CSV rows, label lists, score tables).

One parser for every reader that takes a number from a file a user did not type: the set
readers under :mod:`bapps_toolkit.data.iqa`, the manifest reader and the judging app's
disagreement tables. A refusal names where the cell was read and shows the cell cut to a
readable length (a hostile cell may be megabytes).
"""
from __future__ import annotations

import math

from ..errors import DataError
from .ids import shown


def parse_finite(text: str, where: str) -> float:
    """``text`` as a finite float.

    Args:
        text: the cell as read (surrounding blanks are allowed, as :class:`float` allows them).
        where: the file, row and field, for the error.

    Returns:
        The value.

    Raises:
        DataError: naming ``where`` when ``text`` is not a number or is infinite or NaN.

    Example:
        >>> parse_finite(" 0.25", "scores.csv, row 2, column d0")
        0.25
    """
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"{where}: {shown(text)} is not a number") from None
    if not math.isfinite(v):
        raise DataError(f"{where}: {shown(text)} is not a finite number")
    return v
