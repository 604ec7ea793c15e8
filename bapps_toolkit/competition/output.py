"""Writing a competition's unjudged 2AFC set, item by item, so a run can be resumed.

Layout (what ``bapps judge`` reads as it is)::

    <out>/2afc/<split>/<category>/{ref,p0,p1}/<stem>.png
    <out>/competition.json, <out>/competition.csv      (written when the run completes)
    <out>/.competition/settings.json                    (the run's settings: a resume must match)
    <out>/.competition/items/<stem>.json                (one finished item: its manifest record)

Each PNG and each record is written under a temporary name and renamed; an item's record is
written last, so an item counts as finished only when its three images are in place. A rerun
with the same settings skips finished items and redoes the others; with other settings it is
refused (naming the settings that differ). One run at a time may write a folder (a lock).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .._io import FileLock, PathLike, atomic_write, remove_stale_temps, write_text_atomic
from ..data.layout import split_key
from ..data.png import png_bytes
from ..errors import DataError, UsageError
from .records import STEM_PATTERN, CompetitionItem, Manifest, item_json, parse_item, write_manifest

STATE = ".competition"


def pixel_digest(arr: np.ndarray) -> str:
    """SHA-256 of a ``uint8 [H, W, 3]`` image's shape and pixels (independent of the PNG coding)."""
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    h = hashlib.sha256(f"{a.shape[0]}x{a.shape[1]}x{a.shape[2]}:".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def to_uint8(x: Any, rng: np.random.Generator | None = None) -> np.ndarray:
    """``[C, H, W]`` values in [0, 1] (tensor or array) -> ``uint8 [H, W, 3]``.

    Without ``rng``: rounded to the nearest level. With ``rng``: stochastic rounding
    (``floor(255 x + U)``, ``U`` uniform in [0, 1)), unbiased per pixel. A synthesised image whose
    errors share one magnitude (MSE held while L1 is maximised, say) keeps its held value under
    stochastic rounding up to a small random change, where nearest rounding shifts every error
    the same way (several percent of the held metric at 16 grey levels of error).
    """
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if arr.ndim != 3:
        raise UsageError(f"expected a [C, H, W] image, got shape {arr.shape}")
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    scaled = arr.transpose(1, 2, 0) * 255.0
    levels = np.rint(scaled) if rng is None else np.floor(scaled + rng.random(scaled.shape))
    return np.asarray(np.clip(levels, 0, 255).astype(np.uint8))


def _settings_text(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, indent=1, sort_keys=True, allow_nan=False) + "\n"


class SetWriter:
    """Writes one competition set under ``out`` (see the module docstring).

    Args:
        out: the output folder (created).
        key: the set key, ``2afc/<split>/<category>``.
        settings: the run's settings (JSON-serialisable); compared with a stored run's on resume.
    """

    def __init__(self, out: PathLike, key: str, settings: Mapping[str, Any]) -> None:
        kind, _, _ = split_key(key)
        if kind != "2afc":
            raise UsageError(f"a competition writes a 2AFC set, not {key}")
        self.root = Path(out)
        self.key = key
        self.settings = dict(settings)
        self.state = self.root / STATE
        self.records = self.state / "items"

    @contextmanager
    def open(self) -> Iterator[SetWriter]:
        """Lock the folder, check or store the settings, clean leftovers of killed runs."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root, what="competition set"):
            self.records.mkdir(parents=True, exist_ok=True)
            stored = self.state / "settings.json"
            if stored.exists():
                self._check_settings(stored)
            else:
                write_text_atomic(stored, _settings_text(self.settings))
            for sub in ("ref", "p0", "p1"):
                remove_stale_temps(self.root / self.key / sub)
            remove_stale_temps(self.records)
            yield self

    def _check_settings(self, stored: Path) -> None:
        try:
            old = json.loads(stored.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{stored} is not readable JSON ({exc}); delete {self.root} to start afresh") from None
        new = json.loads(_settings_text(self.settings))
        if not isinstance(old, dict):
            raise DataError(f"{stored} does not hold a settings object; delete {self.root} to start afresh")
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if differ:
            raise UsageError(f"{self.root} holds a run with other settings ({', '.join(differ)}); "
                             "resume with the same settings or choose another output folder")

    def finished(self) -> set[str]:
        """Stems whose record exists (their items are complete)."""
        return {p.stem for p in self.records.glob("*.json")
                if not p.name.startswith(".") and STEM_PATTERN.fullmatch(p.stem)}

    def write_item(self, item: CompetitionItem, images: Mapping[str, np.ndarray]) -> CompetitionItem:
        """Write the ``ref``/``p0``/``p1`` images of ``item`` and then its record.

        Returns:
            The item with the pixel digests filled in.
        """
        if item.key != self.key or STEM_PATTERN.fullmatch(item.stem) is None:
            raise UsageError(f"item {item.key}/{item.stem} does not belong to set {self.key}")
        digests = {}
        for role in ("ref", "p0", "p1"):
            arr = images[role]
            folder = self.root / self.key / role
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(folder / f"{item.stem}.png") as fh:
                fh.write(png_bytes(arr))
            digests[role] = pixel_digest(arr)
        done = dataclasses.replace(item, digests=digests)
        write_text_atomic(self.records / f"{item.stem}.json", json.dumps(item_json(done), allow_nan=False))
        return done

    def write_start(self, stem: str, arr: np.ndarray) -> None:
        """Keep a start image (for the grid figure) as ``.competition/start/<stem>.png``."""
        path = self.state / "start" / f"{stem}.png"
        if STEM_PATTERN.fullmatch(stem) is None or path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as fh:
            fh.write(png_bytes(arr))

    def load(self) -> list[CompetitionItem]:
        """Every finished item's record, sorted by stem (checked as untrusted input)."""
        out = []
        for stem in sorted(self.finished()):
            path = self.records / f"{stem}.json"
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DataError(f"item record {path} is not readable JSON ({exc}); "
                                "delete it to redo the item") from None
            out.append(parse_item(doc, str(path)))
        return out

    def finish(self, manifest: Manifest) -> tuple[Path, Path]:
        """Write ``competition.json`` and ``competition.csv`` (the run is complete)."""
        return write_manifest(self.root, manifest)


__all__ = ["SetWriter", "pixel_digest", "to_uint8", "png_bytes", "STATE"]
