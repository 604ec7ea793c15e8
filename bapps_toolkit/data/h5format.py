"""The packed HDF5 format: its schema, opening a file read-only, and reading it back.

File format ``bapps-h5/1`` (groups mirror the folder layout of Zhang et al., CVPR 2018)::

    /                          attrs: bapps_toolkit_format="bapps-h5/1", source, toolkit_version,
                                      synthetic (bool), keys (JSON list), counts (JSON dict)
    /2afc/<split>/<category>   attrs: kind, split, category, count, size (patch side S)
        ref, p0, p1            uint8 [N, S, S, 3], chunked (<= 1024 rows, S, S, 3), no compression
        judge                  float32 [N]   (fraction of raters preferring p1)
        stems                  utf-8 strings [N]
        n_votes                int64 [N], optional: raters per item (sets packed from vote counts)
    /jnd/val/<category>        p0, p1 (as above), same float32 [N], stems, optional n_votes

``S`` is the set's own patch side: 64 for BAPPS (and every folder packed without ``--size``),
whatever the researcher's images have (or ``--size`` made) for a CSV-defined set. It is read
from the arrays' shape (files written before the ``size`` attribute existed have none; where the
attribute is present the arrays must have that side). ``<category>`` is one of BAPPS's or a user category
(:func:`~bapps_toolkit.data.layout.valid_category`).

Every array carries ``attrs["sha256"]``: SHA-256 of its C-order bytes (float32 little-endian;
for ``stems`` the UTF-8 of the stems joined by ``"\\n"``). The format marker is written last, so
a file cut short never looks like ours.

Image rule and judgment checks: see :mod:`bapps_toolkit.data.images`.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import h5py
import numpy as np

from ..errors import DataError
from .ids import check_ids
from .images import PATCH
from .layout import folders_of, is_set_key

PathLike = Union[str, "os.PathLike[str]"]

FORMAT_ATTR = "bapps_toolkit_format"
FORMAT = "bapps-h5/1"


def stems_digest(stems: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(stems).encode("utf-8")).hexdigest()


def judgments_digest(judgments: np.ndarray) -> str:
    """SHA-256 of a judgment array as little-endian float32 (the stored form)."""
    return hashlib.sha256(np.asarray(judgments).astype("<f4").tobytes()).hexdigest()


def attr_str(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _member(f: Any, path: PathLike, name: str, what: str) -> Any | None:
    """The group or dataset at ``/name`` of ``f``, ``None`` if there is no such entry.

    Only entries stored in the file itself are accepted: a soft or external link (which could
    make the toolkit read another file on disk as its data, or dangle), a virtual dataset (whose
    bytes come from other files) and a dataset with external raw storage are refused with a
    :class:`DataError` naming the file and the entry.
    """
    link = f.get(name, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
        raise DataError(f"{path}: {what} /{name} is {kind}, not data stored in the file; "
                        "refusing to follow it (files written by `bapps pack` hold no links)")
    try:
        obj = f[name]
    except (KeyError, OSError) as exc:
        raise DataError(f"{path}: {what} /{name} cannot be read ({exc})") from None
    if isinstance(obj, h5py.Dataset):
        if getattr(obj, "is_virtual", False):
            raise DataError(f"{path}: {what} /{name} is a virtual dataset (its bytes live in "
                            "other files); refusing to read it")
        if getattr(obj, "external", None):
            raise DataError(f"{path}: {what} /{name} keeps its bytes in external files; "
                            "refusing to read it")
    return obj


def check_schema(f: Any, path: PathLike) -> dict[str, Any]:
    """Check an open ``h5py.File`` is a bapps-toolkit file with a sound schema (no checksums).

    Every group and array on the way to the data must be stored in the file itself: links
    (soft or external), virtual datasets and external raw storage are refused, so an untrusted
    file cannot make the toolkit read other files.

    Returns ``{"keys": [...], "counts": {key: N}, "sizes": {key: S}, "synthetic": bool,
    "source": str, "toolkit_version": str}``. Raises :class:`DataError` naming the file (and
    array).
    """
    marker = f.attrs.get(FORMAT_ATTR)
    if marker is None:
        raise DataError(f"{path} is not a bapps-toolkit file (no '{FORMAT_ATTR}' attribute; "
                        "pack a BAPPS folder with `bapps pack ROOT OUT.h5`)")
    if attr_str(marker) != FORMAT:
        raise DataError(f"{path} has format {attr_str(marker)!r}; this toolkit reads {FORMAT!r}")
    try:
        keys = json.loads(attr_str(f.attrs["keys"]))
        counts = json.loads(attr_str(f.attrs["counts"]))
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: damaged bapps-toolkit header ({exc})") from None
    if not isinstance(keys, list) or not keys or not all(is_set_key(k) for k in keys):
        raise DataError(f"{path}: damaged bapps-toolkit header (set list {keys!r})")
    sizes = {key: _check_set(f, path, key, counts.get(key)) for key in keys}
    return {"keys": list(keys), "counts": {k: int(counts[k]) for k in keys}, "sizes": sizes,
            "synthetic": bool(f.attrs.get("synthetic", False)),
            "source": attr_str(f.attrs.get("source", "")),
            "toolkit_version": attr_str(f.attrs.get("toolkit_version", ""))}


def _check_set(f: Any, path: PathLike, key: str, n: Any) -> int:
    """The group of set ``key`` and its arrays: present, stored in the file, of the right
    dtypes and shapes for ``n`` items (``n`` as the header lists it); returns the patch side."""
    parts = key.split("/")
    g: Any = None
    for depth in range(1, len(parts) + 1):
        g = _member(f, path, "/".join(parts[:depth]), "set group")
        if g is None or not isinstance(g, h5py.Group):
            raise DataError(f"{path}: set group /{key} listed in the header is missing")
    if not isinstance(n, int) or n < 1 or int(g.attrs.get("count", -1)) != n:
        raise DataError(f"{path}: /{key} count {g.attrs.get('count')} does not match header {n}")
    folders = folders_of(key)
    arrays: dict[str, Any] = {}
    optional = ("n_votes",) if _member(f, path, f"{key}/n_votes", "array") is not None else ()
    for name in (*folders, "stems", *optional):
        ds = _member(f, path, f"{key}/{name}", "array")
        if not isinstance(ds, h5py.Dataset):
            raise DataError(f"{path}: array /{key}/{name} is missing")
        arrays[name] = ds
    shape0 = arrays[folders[0]].shape
    size = int(shape0[1]) if len(shape0) == 4 and shape0[1] >= 1 else PATCH
    if "size" in g.attrs:
        size = int(g.attrs["size"])
    for name in folders[:-1]:
        ds = arrays[name]
        if ds.dtype != np.uint8 or ds.shape != (n, size, size, 3):
            raise DataError(f"{path}: array /{key}/{name} is {ds.dtype} {ds.shape}, expected "
                            f"uint8 {(n, size, size, 3)} (N square RGB patches of one size)")
    if optional and (arrays["n_votes"].dtype.kind not in "iu" or arrays["n_votes"].shape != (n,)):
        raise DataError(f"{path}: array /{key}/n_votes is {arrays['n_votes'].dtype} "
                        f"{arrays['n_votes'].shape}, expected integers {(n,)}")
    for name in (folders[-1], "stems"):
        ds = arrays[name]
        if ds.shape != (n,):
            raise DataError(f"{path}: array /{key}/{name} has shape {ds.shape}, expected {(n,)}")
    if arrays[folders[-1]].dtype != np.float32:
        raise DataError(f"{path}: array /{key}/{folders[-1]} is {arrays[folders[-1]].dtype}, expected float32")
    if arrays["stems"].dtype.kind not in "OSU":
        raise DataError(f"{path}: array /{key}/stems is {arrays['stems'].dtype}, expected strings")
    return size


def open_h5(path: PathLike):
    """Open a packed file read-only after checking it is ours; returns ``(h5py.File, info)``."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"packed file {p} does not exist")
    if not p.is_file():
        raise DataError(f"{p} is not a file")
    if not h5py.is_hdf5(str(p)):
        raise DataError(f"{p} is not a bapps-toolkit file (not HDF5 at all)")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataError(f"{p} is not a bapps-toolkit file (cannot open as HDF5: {exc})") from None
    try:
        info = check_schema(f, p)
    except BaseException:
        f.close()
        raise
    return f, info


def read_stems(ds) -> list[str]:
    """A set's stems, each checked to be a valid, unique item id (:mod:`.ids`)."""
    return check_ids([s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s) for s in ds[...]],
                     f"packed file {ds.file.filename}: array {ds.name}")


def describe(path: PathLike) -> dict[str, Any]:
    """:func:`check_schema`'s summary of a packed file, plus ``"images"`` (patches it holds)."""
    f, info = open_h5(path)
    f.close()
    info["images"] = sum(n * (len(folders_of(k)) - 1) for k, n in info["counts"].items())
    return info
