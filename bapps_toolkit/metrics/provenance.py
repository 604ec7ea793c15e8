"""Provenance of weights files: how the weights were obtained, carried in safetensors metadata.

Every safetensors file the toolkit writes carries the metadata key ``bapps_provenance``: a JSON
object with at least ``source`` (``"imagenet"``, ``"random"``, ``"trained"`` or ``"from-file"``),
``calibrated`` (bool) and ``note`` (why it is not calibrated; empty otherwise), plus what fits the
source: ``seed`` (random), ``variant``/``data``/``synthetic`` (trained), ``path``/``sha256``
(from-file). Every loader of weights files reads it back with :func:`file_calibration`, so
weights that were random or trained on synthetic data stay labelled UNCALIBRATED however often
they are saved and passed back in.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._io import PathLike

#: The safetensors metadata key holding the provenance JSON.
PROVENANCE_KEY = "bapps_provenance"

#: Largest safetensors header read (safetensors' own limit).
MAX_HEADER_BYTES = 100_000_000

#: Longest provenance JSON parsed (characters).
MAX_PROVENANCE_CHARS = 1 << 16


def provenance_json(source: str, *, calibrated: bool, note: str = "", **fields: Any) -> str:
    """The metadata value for ``source``; ``note`` says why the weights are not calibrated."""
    obj: dict[str, Any] = {"source": source, "calibrated": bool(calibrated), "note": "" if calibrated else note}
    obj.update({k: v for k, v in fields.items() if v is not None})
    return json.dumps(obj, sort_keys=True)


def safetensors_metadata(path: PathLike) -> dict[str, str]:
    """The metadata strings of a safetensors file; ``{}`` for any other file."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return {}
            n = int.from_bytes(head, "little")
            if n <= 0 or n > MAX_HEADER_BYTES:
                return {}
            header = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def printable_note(text: str, limit: int = 500) -> str:
    """``text`` cut to ``limit`` characters, every non-printable character shown as ``?``.

    Non-printable: a terminal escape sequence, a newline. A note read from a file goes into labels and messages.
    """
    return "".join(ch if ch.isprintable() else "?" for ch in str(text)[:limit])


def calibration_from_metadata(meta: Mapping[str, str]) -> tuple[bool, str]:
    """``(calibrated, note)`` recorded in safetensors metadata.

    Reads :data:`PROVENANCE_KEY`; files written before it existed are judged by their older keys
    (``calibrated`` = ``"0"``, or ``source`` = ``"random"`` on a backbone file). A file without
    any such record is taken as calibrated (torchvision's and other foreign files).
    """
    raw = meta.get(PROVENANCE_KEY)
    if raw:
        try:
            if len(raw) > MAX_PROVENANCE_CHARS:
                raise ValueError("too long")
            prov = json.loads(raw)
        except (ValueError, RecursionError):
            return False, f"unreadable {PROVENANCE_KEY} metadata"
        if isinstance(prov, dict) and not prov.get("calibrated", True):
            return False, printable_note(prov.get("note") or f"{prov.get('source', 'unknown')} weights")
        return True, ""
    if meta.get("calibrated") == "0":
        return False, printable_note(meta.get("calibration_note") or "uncalibrated training run")
    if meta.get("source") == "random":
        return False, "random backbone"
    return True, ""


def file_calibration(path: PathLike) -> tuple[bool, str]:
    """``(calibrated, note)`` of a weights file, from its provenance metadata (see module doc)."""
    return calibration_from_metadata(safetensors_metadata(path))


def merge_notes(*notes: str) -> str:
    """Distinct non-empty notes joined with ``"; "`` (order kept).

    A part that begins another,
    longer part (``random backbone`` and ``random backbone (seed 3)``) is said once, the longer way.
    """
    out: list[str] = []
    for n in notes:
        for part in (n or "").split("; "):
            if part and part not in out:
                out.append(part)
    return "; ".join(p for p in out if not any(q != p and q.startswith(p) for q in out))


__all__ = ["PROVENANCE_KEY", "provenance_json", "safetensors_metadata", "calibration_from_metadata",
           "file_calibration", "merge_notes", "printable_note"]
