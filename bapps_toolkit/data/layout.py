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

Besides BAPPS's own categories a set may carry **any category name** of the researcher's
(``2afc/val/denoise``, ``jnd/val/own``): a name of 1–64 characters from ``A–Z a–z 0–9 _ -``,
starting with a letter or digit (a safe path component on every file system; see
:func:`valid_category`). The splits stay BAPPS's: ``2afc/train``, ``2afc/val`` and ``jnd/val``.
Keys are ordered per kind and split (2AFC train, 2AFC val, JND val), BAPPS's categories first
in their usual order, then the user's categories sorted by name (:func:`order_keys`).
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import PathLike
from ..errors import DataError
from .ids import check_id, id_key, shown
from .selection import select_keys

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


#: A user category name: a safe path component (no separators, no dots, no spaces).
CATEGORY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: The splits a set of each kind may belong to.
SPLITS: dict[str, tuple[str, ...]] = {"2afc": ("train", "val"), "jnd": ("val",)}
_BAPPS_CATEGORIES = {"2afc": TWOAFC_CATEGORIES, "jnd": JND_CATEGORIES}


def valid_category(name: str) -> bool:
    """True for a category name a set may carry (BAPPS's, or the pattern of the module doc)."""
    return isinstance(name, str) and CATEGORY_PATTERN.fullmatch(name) is not None


def is_set_key(key: str) -> bool:
    """True for ``kind/split/category`` with a known kind and split and a valid category."""
    parts = key.split("/") if isinstance(key, str) else []
    return (len(parts) == 3 and parts[1] in SPLITS.get(parts[0], ())
            and valid_category(parts[2]))


def _key_rank(key: str) -> tuple[int, int, int, int, str]:
    kind, split, cat = key.split("/")
    cats = _BAPPS_CATEGORIES[kind].get(split, ())
    split_rank = SPLITS[kind].index(split)
    user = cat not in cats
    return (0 if kind == "2afc" else 1, split_rank, int(user),
            len(cats) if user else cats.index(cat), cat)


def order_keys(keys: Iterable[str]) -> list[str]:
    """Valid set keys without duplicates, in the canonical order of the module docstring.

    For BAPPS's keys alone that is the order of :data:`ALL_KEYS`.
    """
    return sorted({k for k in keys if is_set_key(k)}, key=_key_rank)


def kind_of(key: str) -> str:
    """``"2afc"`` or ``"jnd"`` for a full set key."""
    return key.split("/", 1)[0]


def folders_of(key: str) -> tuple[str, ...]:
    """The folders of a set of key ``key``: its image folders, then its judgment folder."""
    return TWOAFC_FOLDERS if kind_of(key) == "2afc" else JND_FOLDERS


def split_key(key: str) -> tuple[str, str, str]:
    """``"2afc/val/cnn"`` -> ``("2afc", "val", "cnn")``."""
    if not is_set_key(key):
        raise DataError(f"not a set key: {key!r} (expected KIND/SPLIT/CATEGORY with KIND/SPLIT "
                         "one of 2afc/train, 2afc/val, jnd/val, e.g. '2afc/val/cnn' or "
                         "'jnd/val/own'; a category is 1-64 of A-Z a-z 0-9 _ -)")
    parts = key.split("/")
    return parts[0], parts[1], parts[2]


def expand_datasets(datasets: None | str | Sequence[str], available: Sequence[str],
                    kind: str, *, where: str = "") -> list[str]:
    """Resolve a dataset selection to full keys of ``kind`` (``"2afc"`` or ``"jnd"``).

    The rule is :func:`~bapps_toolkit.data.selection.select_keys`' (the one ``bapps evaluate``
    uses), restricted to ``kind``; ``None`` chooses every ``kind`` set in ``available``.

    Args:
        datasets: a selector (``"2afc/val/cnn"``, ``"val/cnn"``, ``"val"``, ``"train"``,
            ``"2afc/val"``), a list of them, or ``None``.
        available: the keys present.
        kind: ``"2afc"`` or ``"jnd"``.
        where: the source, for messages.

    Returns:
        The chosen keys in canonical order (:func:`order_keys`), without duplicates.

    Raises:
        DataError: a selector names no present set (unknown names say what is valid), or
            nothing of ``kind`` is present.
    """
    return select_keys(order_keys(available), datasets, kinds=(kind,), default_split=None,
                       known=order_keys([*ALL_KEYS, *available]), where=where or "the source").keys


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
    """Set keys present under a folder root, in canonical order (:func:`order_keys`).

    A BAPPS category folder counts as present when it exists; a folder of another name (a
    user category such as ``2afc/val/denoise``) when its name is a valid category and it holds
    at least one of the set's sub-folders (``ref``/``p0``/``p1``/``judge``, or
    ``p0``/``p1``/``same``). Whether the sub-folders are complete is checked by
    :func:`scan_set`. Other folders (an unknown split, an unsafe name, an empty folder) are
    ignored with a warning naming them. Raises :class:`DataError` when the root holds no set.
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
            if split_dir.name not in SPLITS[kind]:
                warnings.warn(f"ignoring {split_dir}: not a {kind} split ({', '.join(SPLITS[kind])})",
                              stacklevel=2)
                continue
            for cat_dir in sorted(split_dir.iterdir()):
                if cat_dir.name.startswith(".") or not cat_dir.is_dir():
                    continue
                key = f"{kind}/{split_dir.name}/{cat_dir.name}"
                if cat_dir.name in cats[split_dir.name] or _user_set_folder(cat_dir, key):
                    found.append(key)
    keys = order_keys(found)
    if not keys:
        raise DataError(f"no BAPPS data in {base}: no known split/category folders (or folders "
                        f"holding sets) under {base / '2afc'} or {base / 'jnd'}")
    return keys


def _user_set_folder(cat_dir: Path, key: str) -> bool:
    """Whether a non-BAPPS category folder is a set (warns, naming it, when it is not)."""
    if not valid_category(cat_dir.name):
        warnings.warn(f"ignoring {cat_dir}: {cat_dir.name!r} is not a valid category name "
                      "(1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit)", stacklevel=3)
        return False
    if not any((cat_dir / sub).is_dir() for sub in folders_of(key)):
        warnings.warn(f"ignoring {cat_dir}: not a BAPPS category and holds none of the set "
                      f"sub-folders {', '.join(folders_of(key))}", stacklevel=3)
        return False
    return True


@dataclass(frozen=True, eq=False)
class SetFiles:
    """The paired files of one set: ``files[folder][i]`` all share ``stems[i]``.

    A set defined by a CSV manifest (:mod:`.manifest`) has no judgment files: ``judgments``
    holds its values (float32 ``[N]``) and ``n_votes`` its raters per item (or ``None``).
    """

    key: str
    folder: Path
    stems: list[str]
    files: dict[str, list[Path]]
    judgments: Any = None
    n_votes: Any = None

    def __len__(self) -> int:
        return len(self.stems)


def list_folder(folder: Path, exts: Iterable[str]) -> dict[str, Path]:
    """``{stem: path}`` of the files of ``folder`` with one of the extensions ``exts`` (any case).

    Hidden files are skipped. Every stem must be a valid item id (:mod:`.ids`) and unique
    ignoring case, or a :class:`DataError` names the folder and the file.
    """
    exts = tuple(exts)
    by_stem: dict[str, Path] = {}
    keys: dict[str, str] = {}
    with os.scandir(folder) as it:
        entries = sorted(e.name for e in it if not e.name.startswith("."))
    for name in entries:
        stem, ext = os.path.splitext(name)
        if ext.lower() not in exts:
            continue
        check_id(stem, f"{folder}: file {shown(name)} (rename it; its stem is its item id)")
        if id_key(stem) in keys:
            raise DataError(f"two files with stem {stem!r} in {folder} (stems are compared ignoring case): "
                            f"{by_stem[keys[id_key(stem)]].name} and {name}")
        keys[id_key(stem)] = stem
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
        listed[sub] = list_folder(d, exts)
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

