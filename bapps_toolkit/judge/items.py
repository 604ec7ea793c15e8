"""Reading an unjudged study SET into items, and making sentinel (catch) trials.

Accepted SETs:

* a BAPPS-layout folder (``2afc/<split>/<cat>/{ref,p0,p1}`` and/or ``jnd/<split>/<cat>/{p0,p1}``)
  whose ``judge/`` / ``same/`` folders may be absent (an *unjudged* set, as ``bapps loss-study``
  writes) — any present judgments are ignored;
* a packed ``.h5`` written by ``bapps pack`` (its judgments are ignored: the set is judged anew);
* a CSV manifest (:mod:`bapps_toolkit.data.manifest`, read with ``judged=False``): a header
  ``ref,p0,p1`` (2AFC) or ``p0,p1`` (JND); judgment/vote columns are not needed and are ignored;
  paths relative to the CSV's folder; the optional ``split``/``category``/``id`` (or
  ``set_key``/``stem``) columns name the set (default ``2afc/val/own`` / ``jnd/val/own``) and
  the item, so a set exported with ``--format csv`` is read back under its own keys.

Every image is decoded with the toolkit's guarded reader and stored in the study database as
PNG bytes, so the server never opens a file named by a request.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .._io import PathLike
from ..data.datasets import load_2afc, load_jnd
from ..data.images import read_rgb
from ..data.layout import IMAGE_EXTENSIONS, discover, kind_of, list_folder, resolve_root
from ..data.manifest import read_manifests
from ..data.png import png_bytes
from ..errors import DataError

ROLES = {"2afc": ("ref", "p0", "p1"), "jnd": ("p0", "p1")}


@dataclass(frozen=True)
class Item:
    """One trial: ``images[role]`` are PNG bytes.

    ``expected`` is the sentinel's right answer (2AFC: 0 = p0, 1 = p1; JND: 1 = same, 0 = different), ``None``
    for a real item.
    """

    key: str
    stem: str
    images: dict[str, bytes]
    expected: int | None = None

    @property
    def kind(self) -> str:
        """The judgment kind of the item's set (``2afc`` or ``jnd``)."""
        return kind_of(self.key)


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes written by this module to ``uint8 [H, W, 3]`` RGB."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _stems(folder: Path) -> dict[str, Path]:
    """The images of a role folder by stem (each a valid, unique item id)."""
    return list_folder(folder, IMAGE_EXTENSIONS)


def _folder_set(set_dir: Path, key: str) -> list[Item]:
    roles = ROLES[kind_of(key)]
    listed = {}
    for role in roles:
        d = set_dir / role
        if not d.is_dir():
            raise DataError(f"missing subfolder {d} (a {kind_of(key).upper()} set needs {', '.join(roles)})")
        listed[role] = _stems(d)
    stems = sorted(listed[roles[0]])
    for role in roles[1:]:
        if set(listed[role]) != set(stems):
            diff = sorted(set(listed[role]) ^ set(stems))[:5]
            raise DataError(f"images do not pair up by stem in {set_dir}: {role}/ differs from "
                            f"{roles[0]}/ at stems {diff}")
    if not stems:
        raise DataError(f"no images in {set_dir / roles[0]}")
    return [Item(key, s, {r: png_bytes(read_rgb(listed[r][s])) for r in roles}) for s in stems]


def _folder_items(root: Path) -> list[Item]:
    base = resolve_root(root)
    items: list[Item] = []
    try:
        keys = discover(base)  # BAPPS's categories and the user's own (2afc/val/denoise)
    except DataError:
        keys = []
    for key in keys:
        items.extend(_folder_set(base / key, key))
    if not items:
        raise DataError(f"no 2AFC or JND set folders under {base} (expected e.g. 2afc/val/cnn/ref)")
    return items


def _h5_items(path: Path) -> list[Item]:
    items: list[Item] = []
    for loader, kind in ((load_2afc, "2afc"), (load_jnd, "jnd")):
        try:
            sets = loader(path)
        except DataError as exc:
            if "no " in str(exc).lower():
                continue
            raise
        for s in sets:
            for i, stem in enumerate(s.stems):
                items.append(Item(s.key, stem, {r: png_bytes(getattr(s, r)[i]) for r in ROLES[kind]}))
    if not items:
        raise DataError(f"no 2AFC or JND sets in {path}")
    return items


def _csv_items(path: Path) -> list[Item]:
    """A CSV manifest read by the toolkit's manifest reader in its unjudged mode.

    Image columns only; its split/category/id/set_key columns name the set and stems.
    """
    items: list[Item] = []
    man = read_manifests([path], judged=False)
    try:
        for sf in man.sets:
            roles = ROLES[kind_of(sf.key)]
            for j, stem in enumerate(sf.stems):
                items.append(Item(sf.key, stem, {r: png_bytes(read_rgb(sf.files[r][j])) for r in roles}))
    except DataError as exc:  # an image that fails to decode: name the manifest row and field
        raise man.blame(exc) from None
    return items


def read_items(source: PathLike) -> list[Item]:
    """Every item of an unjudged SET (folder, ``.h5`` or ``.csv``); raises DataError naming it."""
    p = Path(source)
    if not p.exists():
        raise DataError(f"study set {p} does not exist")
    if p.is_dir():
        return _folder_items(p)
    if p.suffix.lower() == ".csv":
        return _csv_items(p)
    return _h5_items(p)


def _heavy(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An unmistakable distortion: strong noise plus a colour inversion of half the patch."""
    y = x.astype(np.float64) + rng.normal(0.0, 80.0, x.shape)
    y[:, : x.shape[1] // 2] = 255.0 - y[:, : x.shape[1] // 2]
    return np.clip(y, 0, 255).astype(np.uint8)


def make_sentinels(items: list[Item], n: int, seed: int) -> list[Item]:
    """``n`` catch trials built from the study's own images, answers known.

    2AFC: one side is the reference itself, the other heavily distorted (the identical one is
    right). JND: alternately an identical pair (right: same) and a heavily distorted pair
    (right: different).
    """
    if n <= 0 or not items:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for j in range(n):
        src = items[int(rng.integers(len(items)))]
        base = decode_png(src.images["ref" if src.kind == "2afc" else "p0"])
        bad = png_bytes(_heavy(base, rng))
        same = png_bytes(base)
        stem = f"sentinel{j:04d}"
        if src.kind == "2afc":
            right = int(rng.integers(2))
            imgs = {"ref": same, "p0": bad if right else same, "p1": same if right else bad}
            out.append(Item(src.key, stem, imgs, expected=right))
        else:
            identical = j % 2 == 0
            out.append(Item(src.key, stem, {"p0": same, "p1": same if identical else bad},
                            expected=1 if identical else 0))
    return out
