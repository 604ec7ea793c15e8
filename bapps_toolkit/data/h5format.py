r"""The packed HDF5 format: its schema, opening a file read-only, and reading it back.

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
for ``stems`` the UTF-8 of the stems joined by ``"\n"``). The format marker is written last, so
a file cut short never looks like ours.

Reading trusts nothing the file declares (:mod:`.h5safe`): every group and array must be
stored in the file itself (no link, virtual or external storage), unfiltered, of the schema's
dtype and shape, and stored whole within the file's size on disk — all checked before the first
byte of data is read; attribute errors name the file and the attribute.

Image rule and judgment checks: see :mod:`bapps_toolkit.data.images`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import h5py
import numpy as np

from .._io import PathLike
from ..errors import DataError
from .h5safe import (
    H5_ERRORS,
    attr_bool,
    attr_int,
    attr_json,
    attr_text,
    check_storage,
    file_size,
    member,
    read_rows,
)
from .ids import check_ids
from .images import PATCH
from .layout import folders_of, is_set_key

FORMAT_ATTR = "bapps_toolkit_format"
FORMAT = "bapps-h5/1"
#: Most sets one file may list (BAPPS has 20; every key is a distinct category).
_MAX_SETS = 10_000


class SchemaInfo(TypedDict):
    """What :func:`check_schema` found in a packed file.

    That is: the set keys in file order, items and patch side per set, and the file's
    provenance attributes.
    """

    keys: list[str]
    counts: dict[str, int]
    sizes: dict[str, int]
    synthetic: bool
    source: str
    toolkit_version: str


class PackedSummary(SchemaInfo):
    """:class:`SchemaInfo` plus ``images``, the number of patches the file holds (:func:`describe`)."""

    images: int


def stems_digest(stems: Sequence[str]) -> str:
    """SHA-256 of the stems joined by newlines, as UTF-8 (the stored form)."""
    return hashlib.sha256("\n".join(stems).encode("utf-8")).hexdigest()


def judgments_digest(judgments: np.ndarray) -> str:
    """SHA-256 of a judgment array as little-endian float32 (the stored form)."""
    return hashlib.sha256(np.asarray(judgments).astype("<f4").tobytes()).hexdigest()


def attr_str(v: Any) -> str:
    """An attribute value as text (``bytes`` decoded as UTF-8, anything else through ``str``)."""
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _header_json(f: Any, path: PathLike, attr: str) -> Any:
    """Root attribute ``attr`` parsed as JSON; a failure is a damaged header."""
    try:
        return attr_json(f, path, attr)
    except DataError as exc:
        raise DataError(f"{path}: damaged bapps-toolkit header "
                        f"({str(exc).removeprefix(f'{path}: ')})") from None


def _key_list(f: Any, path: PathLike) -> tuple[list[str], dict[str, int]]:
    """The header's set keys and their item counts (``keys`` and ``counts`` attributes)."""
    keys = _header_json(f, path, "keys")
    if (not isinstance(keys, list) or not keys or len(keys) > _MAX_SETS
            or not all(isinstance(k, str) and is_set_key(k) for k in keys) or len(set(keys)) != len(keys)):
        raise DataError(f"{path}: damaged bapps-toolkit header (attribute 'keys' of / is "
                        f"{str(keys)[:80]!r}, expected a list of distinct set keys such as '2afc/val/cnn')")
    counts = _header_json(f, path, "counts")
    if not isinstance(counts, dict):
        raise DataError(f"{path}: damaged bapps-toolkit header (attribute 'counts' of / is "
                        f"{str(counts)[:80]!r}, expected an object {{set key: item count}})")
    for key in keys:
        n = counts.get(key)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"{path}: damaged bapps-toolkit header (attribute 'counts' of / gives "
                            f"{str(n)[:40]!r} items for {key}, expected a positive integer)")
    return list(keys), {k: int(counts[k]) for k in keys}


def check_schema(f: Any, path: PathLike) -> SchemaInfo:
    """Check an open ``h5py.File`` is a bapps-toolkit file with a sound schema (no checksums).

    Every group and array on the way to the data must be stored in the file itself: links
    (soft or external), virtual datasets and external raw storage are refused, so an untrusted
    file cannot make the toolkit read other files. Every array's declared dtype and shape are
    checked against the schema and its declared bytes against the file's size on disk and its
    allocated storage (:func:`~.h5safe.check_storage`) before anything is read, so a file
    cannot make a reader allocate more memory, or read more bytes, than it holds.

    Args:
        f: the open file.
        path: its path (named in errors).

    Returns:
        The file's :class:`SchemaInfo`.

    Raises:
        DataError: naming the file and the attribute or array at fault.
    """
    marker = attr_text(f, path, FORMAT_ATTR, None)
    if marker is None:
        raise DataError(f"{path} is not a bapps-toolkit file (no '{FORMAT_ATTR}' attribute; "
                        "pack a BAPPS folder with `bapps pack ROOT OUT.h5`)")
    if marker != FORMAT:
        raise DataError(f"{path} has format {marker[:40]!r} (attribute '{FORMAT_ATTR}'); this "
                        f"toolkit reads {FORMAT!r}")
    keys, counts = _key_list(f, path)
    disk = file_size(path)
    sizes = {key: _check_set(f, path, key, counts[key], disk) for key in keys}
    return {"keys": keys, "counts": counts, "sizes": sizes,
            "synthetic": attr_bool(f, path, "synthetic", False),
            "source": attr_text(f, path, "source", ""),
            "toolkit_version": attr_text(f, path, "toolkit_version", "")}


def _set_group(f: Any, path: PathLike, key: str, n: int) -> Any:
    """The group of set ``key``, stored in the file, whose ``count`` attribute is ``n``."""
    parts = key.split("/")
    g: Any = None
    for depth in range(1, len(parts) + 1):
        g = member(f, path, "/".join(parts[:depth]), "set group")
        if g is None or not isinstance(g, h5py.Group):
            raise DataError(f"{path}: set group /{key} listed in the header's 'keys' is missing")
    count = attr_int(g, path, "count", minimum=1)
    if count != n:
        raise DataError(f"{path}: /{key} count {count} (attribute 'count') does not match the "
                        f"header's attribute 'counts', which gives {n}")
    return g


def _arrays(f: Any, path: PathLike, key: str) -> dict[str, h5py.Dataset]:
    """The arrays of set ``key`` by name: its folders, ``stems`` and ``n_votes`` where present."""
    optional = ("n_votes",) if member(f, path, f"{key}/n_votes", "array") is not None else ()
    arrays: dict[str, h5py.Dataset] = {}
    for name in (*folders_of(key), "stems", *optional):
        ds = member(f, path, f"{key}/{name}", "array")
        if not isinstance(ds, h5py.Dataset):
            raise DataError(f"{path}: array /{key}/{name} is missing")
        try:
            ds.dtype  # noqa: B018 - a type h5py cannot map raises here
        except H5_ERRORS as exc:
            raise DataError(f"{path}: array /{key}/{name} has an unreadable type ({exc})") from None
        arrays[name] = ds
    return arrays


def _check_set(f: Any, path: PathLike, key: str, n: int, disk: int) -> int:
    """Check the group of set ``key`` and its arrays; return the patch side.

    The arrays must be present, stored in the file, of the right dtypes and shapes for ``n``
    items (as the header lists them) and stored whole within the file's ``disk`` bytes.
    """
    g = _set_group(f, path, key, n)
    arrays = _arrays(f, path, key)
    folders = folders_of(key)
    shape0 = arrays[folders[0]].shape
    size = int(shape0[1]) if len(shape0) == 4 and shape0[1] >= 1 else PATCH
    size = attr_int(g, path, "size", minimum=1, default=size)
    for name in folders[:-1]:
        ds = arrays[name]
        if ds.dtype != np.uint8 or ds.shape != (n, size, size, 3):
            raise DataError(f"{path}: array /{key}/{name} is {ds.dtype} {ds.shape}, expected "
                            f"uint8 {(n, size, size, 3)} (N square RGB patches of one size)")
    votes = arrays.get("n_votes")
    if votes is not None and (votes.dtype.kind not in "iu" or votes.shape != (n,)):
        raise DataError(f"{path}: array /{key}/n_votes is {votes.dtype} "
                        f"{votes.shape}, expected integers {(n,)}")
    for name in (folders[-1], "stems"):
        ds = arrays[name]
        if ds.shape != (n,):
            raise DataError(f"{path}: array /{key}/{name} has shape {ds.shape}, expected {(n,)}")
    if arrays[folders[-1]].dtype != np.float32:
        raise DataError(f"{path}: array /{key}/{folders[-1]} is {arrays[folders[-1]].dtype}, expected float32")
    if arrays["stems"].dtype.kind not in "OS" or (arrays["stems"].dtype.kind == "O"
                                                   and h5py.check_string_dtype(arrays["stems"].dtype) is None):
        raise DataError(f"{path}: array /{key}/stems is {arrays['stems'].dtype}, expected strings")
    for name, ds in arrays.items():
        check_storage(ds, path, disk, row_chunks=name in folders[:-1])
    return size


def open_h5(path: PathLike) -> tuple[h5py.File, SchemaInfo]:
    """Open a packed file read-only after checking it is ours (:func:`check_schema`).

    Args:
        path: the packed file.

    Returns:
        ``(h5py.File, info)``; the caller closes the file.

    Raises:
        DataError: the file is missing, not HDF5, or not a sound ``bapps-h5/1`` file.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"packed file {p} does not exist")
    if not p.is_file():
        raise DataError(f"{p} is not a file")
    if not h5py.is_hdf5(str(p)):
        raise DataError(f"{p} is not a bapps-toolkit file (not HDF5 at all)")
    try:
        f = h5py.File(p, "r")
    except H5_ERRORS as exc:
        raise DataError(f"{p} is not a bapps-toolkit file (cannot open as HDF5: {exc})") from None
    try:
        info = check_schema(f, p)
    except BaseException:
        f.close()
        raise
    return f, info


def decode_stems(raw: Any, ds: Any, start: int = 0) -> list[str]:
    """Stems read from ``ds`` (bytes or str), as text.

    Raises:
        DataError: naming the first stem that is not UTF-8.
    """
    out = []
    for i, s in enumerate(raw):
        try:
            out.append(s.decode("utf-8") if isinstance(s, bytes) else str(s))
        except UnicodeDecodeError:
            raise DataError(f"{ds.file.filename}: array {ds.name} item {start + i} is not UTF-8 text") from None
    return out


def read_stems(ds: Any) -> list[str]:
    """Every stem of a ``stems`` array of a file checked by :func:`check_schema`.

    Each is checked to be a valid, unique item id (:mod:`.ids`).
    """
    return check_ids(decode_stems(read_rows(ds, ds.file.filename), ds),
                     f"packed file {ds.file.filename}: array {ds.name}")


def describe(path: PathLike) -> PackedSummary:
    """:func:`check_schema`'s summary of a packed file, plus ``"images"`` (patches it holds).

    Args:
        path: the packed file.

    Returns:
        Its :class:`PackedSummary`.

    Raises:
        DataError: the file is not a sound packed file (:func:`check_schema`).
    """
    f, info = open_h5(path)
    f.close()
    images = sum(n * (len(folders_of(k)) - 1) for k, n in info["counts"].items())
    return PackedSummary(**info, images=images)
