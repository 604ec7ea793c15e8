"""The BAPPS folder layout: categories, set keys, discovery under a root, pairing files by stem.

BAPPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
CVPR 2018) unpacks as::

    <root>/2afc/{train,val}/<category>/{ref,p0,p1}/<stem>.png   and  .../judge/<stem>.npy
    <root>/jnd/val/<category>/{p0,p1}/<stem>.png                and  .../same/<stem>.npy

``judge`` holds the fraction of raters who preferred ``p1``; ``same`` the fraction who said
the two patches look the same. Files are paired **by stem** across folders (a folder with a
missing or extra stem is an error naming it), never by their sorted position alone; a set's
items are then ordered by the stems' plain string order, as the official loader orders them.

A *set key* names one split/category: ``"2afc/val/cnn"``, ``"jnd/val/traditional"``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import DataError

PathLike = Union[str, "os.PathLike[str]"]

TWOAFC_CATEGORIES: dict[str, tuple[str, ...]] = {
    "train": ("traditional", "cnn", "mix"),
    "val": ("traditional", "cnn", "superres", "deblur", "color", "frameinterp"),
}
JND_CATEGORIES: dict[str, tuple[str, ...]] = {"val": ("traditional", "cnn")}

#: Sub-folders of one set: image folders first, then the judgment folder.
TWOAFC_FOLDERS: tuple[str, ...] = ("ref", "p0", "p1", "judge")
JND_FOLDERS: tuple[str, ...] = ("p0", "p1", "same")
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
JUDGMENT_EXTENSION = ".npy"

#: Every key BAPPS can hold, in canonical order (2AFC train, 2AFC val, JND val).
ALL_KEYS: tuple[str, ...] = tuple(
    [f"2afc/{s}/{c}" for s in ("train", "val") for c in TWOAFC_CATEGORIES[s]]
    + [f"jnd/{s}/{c}" for s in JND_CATEGORIES for c in JND_CATEGORIES[s]]
)


def kind_of(key: str) -> str:
    """``"2afc"`` or ``"jnd"`` for a full set key."""
    return key.split("/", 1)[0]


def folders_of(key: str) -> tuple[str, ...]:
    return TWOAFC_FOLDERS if kind_of(key) == "2afc" else JND_FOLDERS


def split_key(key: str) -> tuple[str, str, str]:
    """``"2afc/val/cnn"`` -> ``("2afc", "val", "cnn")``."""
    parts = key.split("/")
    if len(parts) != 3 or key not in ALL_KEYS:
        raise ValueError(f"not a BAPPS set key: {key!r} (expected e.g. '2afc/val/cnn' or 'jnd/val/cnn')")
    return parts[0], parts[1], parts[2]


def expand_datasets(datasets: None | str | Sequence[str], available: Sequence[str],
                    kind: str, *, where: str = "") -> list[str]:
    """Resolve a user's dataset selection to full keys of ``kind`` (``"2afc"`` or ``"jnd"``).

    Accepted forms: ``None`` (every ``kind`` set in ``available``), a full key
    (``"2afc/val/cnn"``), ``"val/cnn"``, a split (``"val"``, ``"train"``), ``"2afc/val"``, or a
    list of those. A name that matches no available set raises ``ValueError`` listing what
    exists. Keys come back in canonical order without duplicates.
    """
    avail = [k for k in ALL_KEYS if k in set(available) and kind_of(k) == kind]
    if datasets is None:
        if not avail:
            raise DataError(f"no {kind.upper()} sets in {where or 'the source'} "
                            f"(found: {', '.join(available) or 'none'})")
        return avail
    items = [datasets] if isinstance(datasets, str) else list(datasets)
    if not items:
        raise ValueError("datasets is an empty list; pass None for every set")
    chosen = set()
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"datasets entries must be strings, got {type(item).__name__}")
        name = item.strip("/")
        full = name if name.startswith(kind + "/") else f"{kind}/{name}"
        hits = [k for k in avail if k == full or k.startswith(full + "/")]
        if not hits:
            known = [k for k in ALL_KEYS if kind_of(k) == kind and (k == full or k.startswith(full + "/"))]
            if not known:
                raise ValueError(f"unknown {kind.upper()} dataset {item!r}; valid: "
                                 f"{', '.join(k for k in ALL_KEYS if kind_of(k) == kind)} "
                                 "(or short forms like 'val/cnn', 'val')")
            raise DataError(f"dataset {item!r} is not present in {where or 'the source'} "
                            f"(present: {', '.join(avail) or 'none'})")
        chosen.update(hits)
    return [k for k in avail if k in chosen]


def resolve_root(root: PathLike) -> Path:
    """The folder that holds ``2afc/`` and/or ``jnd/``.

    Accepts the dataset folder itself or a folder with a single ``dataset/`` sub-folder (how
    the official download scripts unpack). Raises :class:`DataError` naming the path when it
    does not exist or holds no BAPPS data.
    """
    p = Path(root)
    if not p.exists():
        raise DataError(f"BAPPS root {p} does not exist")
    if not p.is_dir():
        raise DataError(f"BAPPS root {p} is not a folder")
    if (p / "2afc").is_dir() or (p / "jnd").is_dir():
        return p
    if (p / "dataset").is_dir() and ((p / "dataset" / "2afc").is_dir() or (p / "dataset" / "jnd").is_dir()):
        return p / "dataset"
    raise DataError(f"no BAPPS data in {p}: expected a '2afc/' or 'jnd/' folder "
                    "(as the official archives unpack); run `bapps download` or `bapps make-mini`")


def discover(root: PathLike) -> list[str]:
    """Set keys present under a folder root, in canonical order.

    A category folder counts as present when it exists; whether its sub-folders are complete
    is checked by :func:`scan_set`. Unknown category folders are ignored with a warning.
    Raises :class:`DataError` when the root holds no set at all.
    """
    base = resolve_root(root)
    found: list[str] = []
    for kind, cats in (("2afc", TWOAFC_CATEGORIES), ("jnd", JND_CATEGORIES)):
        kdir = base / kind
        if not kdir.is_dir():
            continue
        for split_dir in sorted(kdir.iterdir()):
            if split_dir.name.startswith(".") or not split_dir.is_dir():
                continue
            if split_dir.name not in cats:
                warnings.warn(f"ignoring {split_dir}: not a BAPPS {kind} split ({', '.join(cats)})",
                              stacklevel=2)
                continue
            for cat_dir in sorted(split_dir.iterdir()):
                if cat_dir.name.startswith(".") or not cat_dir.is_dir():
                    continue
                if cat_dir.name not in cats[split_dir.name]:
                    warnings.warn(f"ignoring {cat_dir}: not a BAPPS {kind}/{split_dir.name} category "
                                  f"({', '.join(cats[split_dir.name])})", stacklevel=2)
                    continue
                found.append(f"{kind}/{split_dir.name}/{cat_dir.name}")
    keys = [k for k in ALL_KEYS if k in found]
    if not keys:
        raise DataError(f"no BAPPS data in {base}: no known split/category folders under "
                        f"{base / '2afc'} or {base / 'jnd'}")
    return keys


@dataclass(frozen=True)
class SetFiles:
    """The paired files of one set: ``files[folder][i]`` all share ``stems[i]``."""

    key: str
    folder: Path
    stems: list[str]
    files: dict[str, list[Path]]

    def __len__(self) -> int:
        return len(self.stems)


def _list_folder(folder: Path, exts: Iterable[str]) -> dict[str, Path]:
    exts = tuple(exts)
    by_stem: dict[str, Path] = {}
    with os.scandir(folder) as it:
        entries = sorted(e.name for e in it if not e.name.startswith("."))
    for name in entries:
        stem, ext = os.path.splitext(name)
        if ext.lower() not in exts:
            continue
        if stem in by_stem:
            raise DataError(f"two files with stem {stem!r} in {folder}: {by_stem[stem].name} and {name}")
        by_stem[stem] = folder / name
    return by_stem


def scan_set(root: PathLike, key: str) -> SetFiles:
    """List and pair the files of set ``key`` under ``root``; check the layout is complete.

    Raises :class:`DataError` naming the folder for a missing sub-folder, an empty set, or
    folders whose stems differ (count mismatch, or same count but different names).
    """
    base = resolve_root(root)
    split_key(key)
    set_dir = base / key
    if not set_dir.is_dir():
        raise DataError(f"missing set folder {set_dir}")
    folders = folders_of(key)
    listed: dict[str, dict[str, Path]] = {}
    for sub in folders:
        d = set_dir / sub
        if not d.is_dir():
            raise DataError(f"missing subfolder {d} (a {kind_of(key).upper()} set needs "
                            f"{', '.join(folders)})")
        exts = (JUDGMENT_EXTENSION,) if sub in ("judge", "same") else IMAGE_EXTENSIONS
        listed[sub] = _list_folder(d, exts)
    first = folders[0]
    stems = sorted(listed[first])
    if not stems:
        raise DataError(f"no files in {set_dir / first} (empty set {key})")
    ref = set(stems)
    for sub in folders[1:]:
        other = set(listed[sub])
        if other != ref:
            missing = sorted(ref - other)
            extra = sorted(other - ref)
            parts = [f"{len(listed[sub])} files in {set_dir / sub} vs {len(stems)} in {set_dir / first}"]
            if missing:
                parts.append(f"missing stems {_few(missing)}")
            if extra:
                parts.append(f"stems not in {first}/: {_few(extra)}")
            raise DataError(f"files do not pair up by stem in {set_dir}: " + "; ".join(parts))
    files = {sub: [listed[sub][s] for s in stems] for sub in folders}
    return SetFiles(key=key, folder=set_dir, stems=stems, files=files)


def _few(names: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def is_synthetic_root(root: PathLike) -> bool:
    """True when the root carries the ``SYNTHETIC.txt`` marker written by ``bapps make-mini``."""
    try:
        base = resolve_root(root)
    except DataError:
        return False
    return (base / "SYNTHETIC.txt").is_file() or (Path(root) / "SYNTHETIC.txt").is_file()

