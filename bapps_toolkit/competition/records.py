"""The competition manifest: what each synthesised or selected item is, as a typed record.

A competition writes an unjudged 2AFC set in the BAPPS layout
(``<out>/2afc/<split>/<category>/{ref,p0,p1}/<stem>.png``) and beside it
``<out>/competition.json`` (this module's format, ``bapps-competition/1``) and
``<out>/competition.csv`` (the same items, one row each, for a spreadsheet or pandas).

Per item (:class:`CompetitionItem`): the set key and stem that locate it; the reference it was
made from; which metric was **held** (MAD) / **defender** (gMAD) and which was **pushed** /
**attacker**; both metrics' distances from the reference to ``p0`` and ``p1`` and which side
each prefers (the one with the smaller distance); for MAD the held metric's start value, its
relative drift on each saved image, the iterations and whether each image converged; for gMAD
the defender's quality level and the tolerance the pair meets; and the SHA-256 of the decoded
pixels of ``ref``, ``p0`` and ``p1`` (so a report can check that a judged set holds the very
images, on the same sides).

The manifest is read back as untrusted input (:func:`read_manifest`): its size is checked
before it is parsed, every field's type and range is checked, set keys and stems must be safe
names (:data:`STEM_PATTERN`, :func:`bapps_toolkit.data.layout.is_set_key`), and nothing in it
ever becomes a path (readers match items by ``(key, stem)`` against folders they list).
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from .._io import PathLike, write_text_atomic
from .._version import __version__
from ..data.layout import is_set_key
from ..errors import DataError

FORMAT = "bapps-competition/1"
MANIFEST_JSON = "competition.json"
MANIFEST_CSV = "competition.csv"
#: Item stems and reference ids: safe file-name stems (no separators, no leading dot).
STEM_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: Largest manifest read (bytes) and largest item count.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_ITEMS = 1_000_000
MAX_TEXT = 512
SIDES = ("p0", "p1")
KINDS = ("mad", "gmad")


class MetricRecord(TypedDict):
    """A metric as the manifest names it (JSON)."""

    name: str
    label: str
    calibrated: bool


@dataclass(frozen=True)
class CompetitionItem:
    """One 2AFC item of a competition (fields in the module docstring).

    ``values[m] = (d(ref, p0), d(ref, p1))`` for the held and the pushed metric;
    ``held_drift`` is ``(H(p0) − H₀)/|H₀|`` and the same for ``p1`` (MAD; gMAD: the defender's
    relative difference between the two). ``steps``/``converged`` are MAD's per side (empty for
    gMAD); ``level`` is gMAD's quality level (``-1`` for MAD); ``tolerance`` is the largest
    defender difference allowed (gMAD) or the held metric's per-step tolerance (MAD).
    """

    key: str
    stem: str
    kind: str
    source: str
    held: str
    pushed: str
    values: dict[str, tuple[float, float]]
    held_start: float
    held_drift: tuple[float, float]
    level: int = -1
    level_value: float = math.nan
    tolerance: float = math.nan
    steps: tuple[int, ...] = ()
    converged: tuple[bool, ...] = ()
    digests: dict[str, str] = field(default_factory=dict)

    def prefers(self, metric: str) -> str:
        """The side (``"p0"``/``"p1"``) ``metric`` calls closer to the reference (ties: ``p0``)."""
        d0, d1 = self.values[metric]
        return "p1" if d1 < d0 else "p0"

    @property
    def pushed_prefers(self) -> str:
        """The side the pushed metric (attacker) calls closer."""
        return self.prefers(self.pushed)

    @property
    def pushed_span(self) -> float:
        """The pushed metric's larger distance over its smaller one (``inf`` if one is 0)."""
        lo, hi = sorted(self.values[self.pushed])
        return hi / lo if lo > 0 else math.inf

    @property
    def max_drift(self) -> float:
        """The held metric's largest relative drift (absolute value)."""
        return max(abs(v) for v in self.held_drift)


@dataclass
class Manifest:
    """A competition's manifest: ``kind``, the metrics, the settings and the items."""

    kind: str
    metrics: list[MetricRecord]
    settings: dict[str, Any]
    items: list[CompetitionItem]
    notes: list[str] = field(default_factory=list)
    toolkit_version: str = __version__

    @property
    def uncalibrated(self) -> list[str]:
        """Labels of the metrics that are not the published ones (random backbone, …)."""
        return [m["label"] for m in self.metrics if not m["calibrated"]]

    def label(self, name: str) -> str:
        """The report label of metric ``name``."""
        return next((m["label"] for m in self.metrics if m["name"] == name), name)


# ----------------------------------------------------------------------------------- writing

def item_json(it: CompetitionItem) -> dict[str, Any]:
    """One competition item as a JSON-ready mapping (tuples written as lists)."""
    d = asdict(it)
    d["values"] = {k: list(v) for k, v in it.values.items()}
    d["held_drift"] = list(it.held_drift)
    d["steps"], d["converged"] = list(it.steps), list(it.converged)
    for k in ("level_value", "tolerance", "held_start"):
        if isinstance(d[k], float) and not math.isfinite(d[k]):
            d[k] = None
    d["prefers"] = {m: it.prefers(m) for m in it.values}
    return d


def manifest_json(m: Manifest) -> str:
    """The manifest as JSON text (format :data:`FORMAT`)."""
    doc = {"format": FORMAT, "kind": m.kind, "toolkit_version": m.toolkit_version, "metrics": m.metrics,
           "settings": m.settings, "notes": m.notes, "items": [item_json(it) for it in m.items]}
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


CSV_COLUMNS = ("key", "stem", "kind", "source", "held", "pushed", "level", "level_value", "held_p0", "held_p1",
               "pushed_p0", "pushed_p1", "held_prefers", "pushed_prefers", "held_drift_p0", "held_drift_p1",
               "pushed_span", "tolerance", "steps_p0", "steps_p1", "converged_p0", "converged_p1",
               "held_label", "pushed_label")


def manifest_csv(m: Manifest) -> str:
    """The items as CSV text, one row each (:data:`CSV_COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for it in m.items:
        steps = list(it.steps) + [""] * (2 - len(it.steps))
        conv = [str(c).lower() for c in it.converged] + [""] * (2 - len(it.converged))
        w.writerow([it.key, it.stem, it.kind, it.source, it.held, it.pushed, it.level, _num(it.level_value),
                    _num(it.values[it.held][0]), _num(it.values[it.held][1]), _num(it.values[it.pushed][0]),
                    _num(it.values[it.pushed][1]), it.prefers(it.held), it.pushed_prefers,
                    _num(it.held_drift[0]), _num(it.held_drift[1]), _num(it.pushed_span), _num(it.tolerance),
                    steps[0], steps[1], conv[0], conv[1], m.label(it.held), m.label(it.pushed)])
    return buf.getvalue()


def _num(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:.9g}"


def write_manifest(out: PathLike, m: Manifest) -> tuple[Path, Path]:
    """Write ``competition.json`` and ``competition.csv`` into ``out`` (each atomically)."""
    root = Path(out)
    js, cs = root / MANIFEST_JSON, root / MANIFEST_CSV
    write_text_atomic(cs, manifest_csv(m))
    write_text_atomic(js, manifest_json(m))
    return js, cs


# ----------------------------------------------------------------------------------- reading

def _bad(where: str, what: str) -> DataError:
    return DataError(f"{where}: {what}")


def _text(v: Any, where: str, name: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(v, str) or not v or len(v) > MAX_TEXT:
        raise _bad(where, f"field {name!r} must be a non-empty string of at most {MAX_TEXT} characters")
    if pattern is not None and pattern.fullmatch(v) is None:
        raise _bad(where, f"field {name!r} = {v[:80]!r} is not a safe name (1-64 of A-Z a-z 0-9 _ -, "
                          "starting with a letter or digit)")
    return v


def _float(v: Any, where: str, name: str, *, allow_none: bool = False) -> float:
    if v is None and allow_none:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise _bad(where, f"field {name!r} must be a finite number, got {str(v)[:40]!r}")
    return float(v)


def _pair(v: Any, where: str, name: str) -> tuple[float, float]:
    if not isinstance(v, list) or len(v) != 2:
        raise _bad(where, f"field {name!r} must be a list of two numbers")
    return _float(v[0], where, name), _float(v[1], where, name)


def _int_list(v: Any, where: str, name: str, kind: type) -> tuple[Any, ...]:
    if not isinstance(v, list) or len(v) > 2 or not all(type(x) is kind for x in v):
        raise _bad(where, f"field {name!r} must be a list of at most two {kind.__name__} values")
    return tuple(v)


def _digests(v: Any, where: str) -> dict[str, str]:
    if not isinstance(v, dict) or set(v) - {"ref", "p0", "p1"}:
        raise _bad(where, "field 'digests' must map ref/p0/p1 to SHA-256 hex digests")
    for k, d in v.items():
        if not isinstance(d, str) or re.fullmatch(r"[0-9a-f]{64}", d) is None:
            raise _bad(where, f"digest of {k} is not a SHA-256 hex digest")
    return dict(v)


def parse_item(d: Any, where: str) -> CompetitionItem:
    """A :class:`CompetitionItem` from its JSON object, every field checked (DataError naming it)."""
    if not isinstance(d, dict):
        raise _bad(where, "an item must be a JSON object")
    key = _text(d.get("key"), where, "key")
    if not is_set_key(key) or not key.startswith("2afc/"):
        raise _bad(where, f"key {key[:80]!r} is not a 2AFC set key (2afc/SPLIT/CATEGORY)")
    kind = _text(d.get("kind"), where, "kind")
    if kind not in KINDS:
        raise _bad(where, f"kind {kind[:20]!r} is not one of {', '.join(KINDS)}")
    held, pushed = _text(d.get("held"), where, "held"), _text(d.get("pushed"), where, "pushed")
    values = d.get("values")
    if not isinstance(values, dict) or set(values) != {held, pushed} or held == pushed:
        raise _bad(where, "field 'values' must give the distances of exactly the held and the pushed metric")
    level = d.get("level", -1)
    if isinstance(level, bool) or not isinstance(level, int) or not -1 <= level <= 10_000:
        raise _bad(where, "field 'level' must be an integer in [-1, 10000]")
    return CompetitionItem(
        key=key, stem=_text(d.get("stem"), where, "stem", STEM_PATTERN), kind=kind,
        source=_text(d.get("source"), where, "source"), held=held, pushed=pushed,
        values={k: _pair(v, where, f"values.{k}") for k, v in values.items()},
        held_start=_float(d.get("held_start"), where, "held_start", allow_none=True),
        held_drift=_pair(d.get("held_drift"), where, "held_drift"), level=level,
        level_value=_float(d.get("level_value"), where, "level_value", allow_none=True),
        tolerance=_float(d.get("tolerance"), where, "tolerance", allow_none=True),
        steps=_int_list(d.get("steps", []), where, "steps", int),
        converged=_int_list(d.get("converged", []), where, "converged", bool),
        digests=_digests(d.get("digests", {}), where))


def _metrics(v: Any, where: str) -> list[MetricRecord]:
    if not isinstance(v, list) or not 2 <= len(v) <= 64:
        raise _bad(where, "field 'metrics' must list 2 to 64 metrics")
    out: list[MetricRecord] = []
    for m in v:
        if not isinstance(m, dict) or not isinstance(m.get("calibrated"), bool):
            raise _bad(where, "each metric needs name, label and calibrated (true/false)")
        out.append(MetricRecord(name=_text(m.get("name"), where, "metrics.name"),
                                label=_text(m.get("label"), where, "metrics.label"),
                                calibrated=bool(m["calibrated"])))
    return out


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"competition manifest {path} does not exist")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise DataError(f"competition manifest {path} is {size} bytes (limit {MAX_MANIFEST_BYTES}); refusing it")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise DataError(f"competition manifest {path} is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"{path} is not a competition manifest (format {FORMAT} expected)")
    return doc


def _no_constant(name: str) -> float:
    raise DataError(f"{name} is not a number this manifest may hold")


def read_manifest(path: PathLike) -> Manifest:
    """Read and check a ``competition.json`` (or the folder holding one); see the module docstring.

    Raises:
        DataError: naming the file and, for a bad item, its position and field.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_JSON
    doc = _load_json(p)
    kind = doc.get("kind")
    if kind not in KINDS:
        raise DataError(f"{p}: kind must be one of {', '.join(KINDS)}")
    raw = doc.get("items")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ITEMS:
        raise DataError(f"{p}: 'items' must be a list of 1 to {MAX_ITEMS} items")
    metrics = _metrics(doc.get("metrics"), str(p))
    names = {m["name"] for m in metrics}
    items = [parse_item(d, f"{p} item {i}") for i, d in enumerate(raw)]
    seen: set[tuple[str, str]] = set()
    for i, it in enumerate(items):
        if (it.key, it.stem) in seen:
            raise DataError(f"{p} item {i}: ({it.key}, {it.stem}) appears twice")
        seen.add((it.key, it.stem))
        if not {it.held, it.pushed} <= names:
            raise DataError(f"{p} item {i}: metric {it.held!r} or {it.pushed!r} is not in 'metrics'")
    settings = doc.get("settings", {})
    notes = doc.get("notes", [])
    if not isinstance(settings, dict) or not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise DataError(f"{p}: 'settings' must be an object and 'notes' a list of strings")
    return Manifest(kind=kind, metrics=metrics, settings=settings, items=items, notes=[n[:MAX_TEXT] for n in notes],
                    toolkit_version=str(doc.get("toolkit_version", ""))[:64])


def check_stems(stems: Sequence[str]) -> None:
    """Raise ValueError unless every stem is a safe, unique name (:data:`STEM_PATTERN`)."""
    bad = [s for s in stems if STEM_PATTERN.fullmatch(s) is None]
    if bad or len(set(stems)) != len(stems):
        raise DataError(f"item stems must be unique safe names, got {bad[:3] or 'duplicates'}")


__all__ = ["FORMAT", "MANIFEST_JSON", "MANIFEST_CSV", "STEM_PATTERN", "MetricRecord", "CompetitionItem", "Manifest",
           "item_json", "manifest_json", "manifest_csv", "write_manifest", "read_manifest", "parse_item", "check_stems"]
