"""Checking a posted answer and rater ids before they reach the study database (no SQL, no HTTP).

A posted answer is untrusted JSON: :func:`parse_answer` turns it into an :class:`AnswerPost`
or raises :class:`~bapps_toolkit.judge.refusals.InvalidRequest` naming the field; the store
then checks ``side`` and ``timings`` against the item's kind with :func:`side_answer` and
:func:`timings_json`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .refusals import InvalidRequest, NotFound

#: Fields a posted answer may carry.
ANSWER_FIELDS = frozenset({"rater", "token", "item", "side", "rt_ms", "timings"})
#: Item ids are SQLite integers: a larger one cannot name an item.
MAX_ITEM_ID = 2**63 - 1
MAX_RT_MS = 3_600_000.0
MAX_PHASE_MS = 600_000.0
JND_PHASES = ("ref_ms", "blank_ms", "dist_ms")
SIDES = {"2afc": ("left", "right"), "jnd": ("same", "different")}
RATER_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
RATER_RULE = "1-64 letters, digits, '_', '.', '-'"


def valid_rater(rater: object) -> bool:
    """Whether ``rater`` is a rater id: the whole string is 1-64 of ``A-Z a-z 0-9 _ . -``."""
    return isinstance(rater, str) and RATER_RE.fullmatch(rater) is not None


@dataclass(frozen=True)
class AnswerPost:
    """A posted answer whose fields have the right types and ranges.

    Attributes:
        item: the item id, in ``[0, 2**63)``.
        side: what the rater clicked, still to be checked against the item's kind.
        rt_ms: response time in milliseconds, in ``[0, 3600000]``.
        timings: the JND phases measured by the page (checked for JND items only).
    """

    item: int
    side: object
    rt_ms: float
    timings: object


def short(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that echo a request value."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _milliseconds(value: object, limit: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value) if isinstance(value, float) or abs(value) <= 2**53 else float("nan")
    return v if 0.0 <= v <= limit else None


def item_id(value: object) -> int:
    """``value`` as an item id.

    Raises:
        InvalidRequest: not an integer.
        NotFound: an integer no item can have (negative or beyond SQLite's range).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("item: expected an integer item id")
    if not 0 <= value <= MAX_ITEM_ID:
        raise NotFound(f"item {short(value)}: no such item in this study")
    return value


def parse_answer(body: Mapping[str, object]) -> AnswerPost:
    """The answer in a posted JSON object.

    Args:
        body: the decoded JSON object of ``POST /api/answer``.

    Returns:
        The checked fields.

    Raises:
        InvalidRequest: an unknown field, or ``item``/``rt_ms`` of the wrong type or range.
        NotFound: an item id out of range.
    """
    extra = set(body) - ANSWER_FIELDS
    if extra:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(short(k, 30) for k in extra)[:5])}")
    item = item_id(body.get("item"))
    rt = _milliseconds(body.get("rt_ms"), MAX_RT_MS)
    if rt is None:
        raise InvalidRequest("rt_ms: expected a response time in milliseconds in [0, 3600000]")
    return AnswerPost(item=item, side=body.get("side"), rt_ms=rt, timings=body.get("timings"))


def side_answer(kind: str, side: object, swapped: int) -> tuple[str, int]:
    """The clicked side and the answer it means for an item of ``kind``.

    2AFC: 1 when the rater chose ``p1`` (the right side, unless swapped). JND: 1 for same.

    Raises:
        InvalidRequest: ``side`` is not one of the item kind's sides.
    """
    sides = SIDES.get(kind, ())
    if not isinstance(side, str) or side not in sides:
        raise InvalidRequest(f"side: expected one of {', '.join(sides)} for a {kind.upper()} item")
    if kind == "2afc":
        return side, int((side == "right") != bool(swapped))
    return side, int(side == "same")


def timings_json(kind: str, timings: object) -> str | None:
    """The JND phases measured by the page, as stored (JSON); ``None`` for a 2AFC item.

    Raises:
        InvalidRequest: a JND answer without exactly the three phases in ``[0, 600000]`` ms.
    """
    if kind != "jnd":
        return None
    if not isinstance(timings, dict) or set(timings) != set(JND_PHASES):
        raise InvalidRequest(f"timings: a JND answer needs an object with exactly {', '.join(JND_PHASES)}")
    out: dict[str, float] = {}
    for name in JND_PHASES:
        v = _milliseconds(timings[name], MAX_PHASE_MS)
        if v is None:
            raise InvalidRequest(f"timings.{name}: expected milliseconds in [0, 600000], got {short(timings[name])}")
        out[name] = v
    return json.dumps(out)
