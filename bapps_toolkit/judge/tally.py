"""Reading a study database for export and reports, and the tally of votes per item.

:func:`read_study` reads its raters, items and answers, checked; :func:`tally` counts the votes
of the kept raters per item into typed records (:class:`Tally`).

The database is read as untrusted data: every rater id, answer and platform field is checked
before use, and a :class:`~bapps_toolkit.errors.DataError` names the table, row and field.
Sentinel trials are never counted as items. ``min_sentinel_accuracy`` drops raters below it
(and raters who met no sentinel) from the votes, the agreement and the ceiling.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._io import PathLike
from ..data.ids import shown
from ..errors import DataError
from ..scores import human_ceiling_2afc
from .answers import RATER_RE
from .rows import ItemRow, item_rows
from .store import open_study
from .store_reports import answer_records, arrival_records, rater_ids


@dataclass(frozen=True)
class RaterOrigin:
    """Where a rater came from: a crowd platform's ids and the outcome (``''`` where none)."""

    platform: str = ""
    study_id: str = ""
    session_id: str = ""
    outcome: str = ""


@dataclass
class RaterTally:
    """One rater's row of ``raters.csv``: answers, sentinels, agreement, kept or not, origin.

    ``sentinel_accuracy``, ``median_rt_ms`` and the agreements are NaN where undefined.
    """

    rater: str
    answers: int = 0
    answers_2afc: int = 0
    answers_jnd: int = 0
    median_rt_ms: float = math.nan
    sentinels: int = 0
    sentinels_right: int = 0
    sentinel_accuracy: float = math.nan
    agreement_2afc: float = math.nan
    agreement_jnd: float = math.nan
    kept: bool = True
    origin: RaterOrigin = field(default_factory=RaterOrigin)


@dataclass
class TallyItem:
    """A real (non-sentinel) item and the votes of the kept raters: ``(rater, answer)``."""

    id: int
    key: str
    stem: str
    kind: str
    votes: list[tuple[str, int]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Share of votes for ``p1`` (2AFC) or for "same" (JND); NaN with no vote."""
        return float(np.mean([v for _, v in self.votes])) if self.votes else math.nan


@dataclass(frozen=True)
class KindTally:
    """Per kind (2AFC or JND): items, items with a kept vote, pairwise agreement of kept raters."""

    items: int
    items_judged: int
    pairwise_agreement: float


@dataclass(frozen=True)
class TallySummary:
    """The study-wide figures of an export's ``summary.json`` (see :meth:`as_json`)."""

    raters: int
    raters_kept: int
    min_sentinel_accuracy: float | None
    kinds: dict[str, KindTally]
    human_ceiling_2afc: float | None

    def as_json(self) -> dict[str, object]:
        """The flat form ``summary.json`` holds (``2afc_items``, ``jnd_pairwise_agreement``, …).

        Returns:
            The figures by name; the ceiling only when some 2AFC item was judged.
        """
        out: dict[str, object] = {"raters": self.raters, "raters_kept": self.raters_kept,
                                  "min_sentinel_accuracy": self.min_sentinel_accuracy}
        for kind, k in self.kinds.items():
            out[f"{kind}_items"] = k.items
            out[f"{kind}_items_judged"] = k.items_judged
            out[f"{kind}_pairwise_agreement"] = k.pairwise_agreement
        if self.human_ceiling_2afc is not None:
            out["human_ceiling_2afc"] = self.human_ceiling_2afc
        return out


@dataclass(frozen=True)
class Tally:
    """What :func:`tally` returns: items by id, raters by id, and the summary."""

    items: dict[int, TallyItem]
    raters: dict[str, RaterTally]
    summary: TallySummary


@dataclass
class StudyRecords:
    """What export and status read from a study database, checked."""

    raters: list[str]
    items: dict[int, ItemRow]
    answers: list[tuple[str, int, int, float]]  # rater, item, answer (0/1), response time in ms
    arrivals: dict[str, RaterOrigin]  # every rater


def read_study(con: Any, db: PathLike) -> StudyRecords:
    """Raters, items and answers of a study, checked.

    A DataError names the table, row and field of anything that is not what the study server writes.
    """
    raters = []
    for rid in rater_ids(con):
        if not isinstance(rid, str) or not RATER_RE.fullmatch(rid):
            raise DataError(f"study database {db}: raters row, field 'id': {shown(str(rid))} is not a rater "
                            "id (1-64 letters, digits, '_', '.', '-')")
        raters.append(rid)
    items = {row.id: row for row in item_rows(con, db)}
    known, answers = set(raters), []
    for aid, rid, item, answer, rt in answer_records(con):
        where = f"study database {db}: answers row id={aid!r}"
        if rid not in known or item not in items:
            raise DataError(f"{where}, fields 'rater','item': {repr(rid)[:60]}, {repr(item)[:60]} are not "
                            "both in the study")
        if type(answer) is not int or answer not in (0, 1) or type(rt) not in (int, float):
            raise DataError(f"{where}, fields 'answer','rt_ms': {repr(answer)[:60]}, {repr(rt)[:60]} "
                            "(expected 0 or 1, and milliseconds)")
        answers.append((rid, item, answer, float(rt)))
    return StudyRecords(raters, items, answers, _read_arrivals(con, db, raters))


_OUTCOMES = ("", "complete", "screened_out")
_PLATFORMS = ("", "prolific", "generic")


def _read_arrivals(con: Any, db: PathLike, raters: list[str]) -> dict[str, RaterOrigin]:
    """Platform, study, session and outcome per rater (``''`` where none), each checked.

    The platform and outcome are words the server writes, the study and session ids rater-id-like.
    """
    out = {rid: RaterOrigin() for rid in raters}
    for rid, plat, study, session, outcome in arrival_records(con):
        where = f"study database {db}: arrivals/outcomes of rater {shown(str(rid))}"
        if (plat or "") not in _PLATFORMS or (outcome or "") not in _OUTCOMES:
            raise DataError(f"{where}, fields 'platform','outcome': {repr(plat)[:40]}, {repr(outcome)[:40]} "
                            f"(expected one of {_PLATFORMS[1:]} and {_OUTCOMES[1:]})")
        for name, value in (("study_id", study), ("session_id", session)):
            if value and (not isinstance(value, str) or not RATER_RE.fullmatch(value)):
                raise DataError(f"{where}, field {name!r}: {repr(value)[:60]} is not an id "
                                "(1-64 letters, digits, '_', '.', '-')")
        out[rid] = RaterOrigin(plat or "", study or "", session or "", outcome or "")
    return out


def rater_table(study: StudyRecords) -> dict[str, RaterTally]:
    """Answers, sentinels and median response time per rater (agreement and ``kept`` unset).

    Args:
        study: the checked records of a study (:func:`read_study`).

    Returns:
        One :class:`RaterTally` per rater, in the study's order.
    """
    raters = {rid: RaterTally(rid, origin=study.arrivals[rid]) for rid in study.raters}
    rts: dict[str, list[float]] = defaultdict(list)
    for rid, item, answer, rt in study.answers:
        r, it = raters[rid], study.items[item]
        r.answers += 1
        if it.kind == "2afc":
            r.answers_2afc += 1
        else:
            r.answers_jnd += 1
        rts[rid].append(rt)
        if it.expected is not None:
            r.sentinels += 1
            r.sentinels_right += int(answer == it.expected)
    for r in raters.values():
        r.sentinel_accuracy = r.sentinels_right / r.sentinels if r.sentinels else math.nan
        r.median_rt_ms = float(np.median(rts[r.rater])) if r.answers else math.nan
    return raters


def _agreement(votes: dict[int, list[tuple[str, int]]], raters: dict[str, RaterTally], kind: str) -> float:
    """Mean pairwise agreement over items with >= 2 votes; also per rater against the others.

    The per-rater values are stored as ``agreement_<kind>``.
    """
    pair_agree: list[float] = []
    per: dict[str, list[float]] = defaultdict(list)
    for vs in votes.values():
        for a in range(len(vs)):
            for b in range(a + 1, len(vs)):
                same = float(vs[a][1] == vs[b][1])
                pair_agree.append(same)
                per[vs[a][0]].append(same)
                per[vs[b][0]].append(same)
    for rid, r in raters.items():
        value = float(np.mean(per[rid])) if per[rid] else math.nan
        if kind == "2afc":
            r.agreement_2afc = value
        else:
            r.agreement_jnd = value
    return float(np.mean(pair_agree)) if pair_agree else math.nan


def tally(db: PathLike, min_sentinel_accuracy: float | None = None) -> Tally:
    """Votes per real item from the kept raters, the rater table and agreement figures.

    Args:
        db: the study database.
        min_sentinel_accuracy: keep only raters with at least this share of sentinels right
            (and at least one sentinel); ``None`` keeps every rater.

    Returns:
        The :class:`Tally`.

    Raises:
        DataError: the database holds something the study server does not write (names the
            table, row and field).

    Example:
        >>> t = tally("study.sqlite", min_sentinel_accuracy=0.8)  # doctest: +SKIP
        >>> t.summary.raters_kept, t.items[1].fraction  # doctest: +SKIP
        (12, 0.4)
    """
    con = open_study(db)
    try:
        study = read_study(con, db)
    finally:
        con.close()
    raters = rater_table(study)
    for r in raters.values():
        r.kept = min_sentinel_accuracy is None or (r.sentinels > 0 and r.sentinel_accuracy >= min_sentinel_accuracy)
    items = {row.id: TallyItem(row.id, row.key, row.stem, row.kind)
             for row in study.items.values() if row.expected is None}
    for rid, item, answer, _ in study.answers:
        if item in items and raters[rid].kept:
            items[item].votes.append((rid, answer))
    kinds: dict[str, KindTally] = {}
    ceiling = None
    for kind in ("2afc", "jnd"):
        votes = {i: it.votes for i, it in items.items() if it.kind == kind and it.votes}
        kinds[kind] = KindTally(sum(1 for it in items.values() if it.kind == kind), len(votes),
                                _agreement(votes, raters, kind))
        if kind == "2afc" and votes:
            frac = [np.mean([v for _, v in vs]) for vs in votes.values()]
            ceiling = human_ceiling_2afc(np.asarray(frac, dtype=np.float64))
    summary = TallySummary(len(raters), sum(r.kept for r in raters.values()), min_sentinel_accuracy, kinds, ceiling)
    return Tally(items, raters, summary)


__all__ = ["KindTally", "RaterOrigin", "RaterTally", "StudyRecords", "Tally", "TallyItem", "TallySummary",
           "rater_table", "read_study", "tally"]
