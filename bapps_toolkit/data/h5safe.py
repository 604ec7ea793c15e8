"""Reading an untrusted HDF5 file without believing what it declares.

An HDF5 file states the shape, type and storage of every array and the type of every attribute;
a hostile or damaged file can state anything: a billion rows in a 300 KB file (HDF5 reads
unwritten chunks back as zeros, so nothing fails until the memory or the time runs out), a
compressed array that inflates a thousandfold, an attribute of the wrong type, a link to another
file. The helpers here check each of those claims before anything is read:

* :func:`member` — an entry stored in the file itself (no soft or external link, no virtual
  dataset, no external raw storage);
* :func:`check_storage` — an array's declared bytes are all written in the file: no filter
  (compression, shuffle, checksum), a contiguous, chunked or compact layout, and declared bytes
  <= allocated bytes <= the file's size on disk;
* :func:`attr_text`, :func:`attr_int`, :func:`attr_bool`, :func:`attr_json`, :func:`attr_digest`
  — attributes of the expected type, or a :class:`~bapps_toolkit.errors.DataError` naming the
  file and the attribute;
* :func:`read_rows` and :func:`iter_blocks` — reads that turn an HDF5 failure into a
  :class:`~bapps_toolkit.errors.DataError` naming the file and the array, the latter in blocks
  of bounded size.

Every message names the file and the attribute or array (``/group/name``).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any, cast

import h5py
import numpy as np

from .._io import PathLike
from ..errors import DataError

#: Bytes of one block of :func:`iter_blocks` (at least one row is read whatever its size).
BLOCK_BYTES = 64 << 20
#: Bytes one element of a variable-length type takes in a dataset's own storage (its heap id).
_VLEN_BYTES = 16
_NOT_SET = object()
_LAYOUTS = {h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.CHUNKED: "chunked", h5py.h5d.COMPACT: "compact"}
#: What a failing h5py/HDF5 call raises on a damaged file (besides DataError's own ValueError).
H5_ERRORS = (OSError, KeyError, RuntimeError, TypeError, ValueError, IndexError, OverflowError)


def _show(value: Any) -> str:
    """A short, safe rendering of an untrusted value for an error message."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _where(obj: Any) -> str:
    try:
        return str(obj.name or "/")
    except H5_ERRORS:
        return "?"


def member(f: Any, path: PathLike, name: str, what: str) -> Any | None:
    """The group or dataset at ``/name`` of ``f``, ``None`` if there is no such entry.

    Only entries stored in the file itself are accepted: a soft or external link (which could
    make the toolkit read another file on disk as its data, or dangle), a virtual dataset (whose
    bytes come from other files) and a dataset with external raw storage are refused.

    Raises:
        DataError: naming ``path`` and the entry.
    """
    try:
        link = f.get(name, getlink=True)
    except H5_ERRORS as exc:
        raise DataError(f"{path}: {what} /{name} cannot be read ({exc})") from None
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
        raise DataError(f"{path}: {what} /{name} is {kind}, not data stored in the file; "
                        "refusing to follow it (files written by the toolkit hold no links)")
    try:
        obj = f[name]
    except H5_ERRORS as exc:
        raise DataError(f"{path}: {what} /{name} cannot be read ({exc})") from None
    if isinstance(obj, h5py.Dataset):
        if obj.is_virtual:
            raise DataError(f"{path}: {what} /{name} is a virtual dataset (its bytes live in "
                            "other files); refusing to read it")
        if obj.external:
            raise DataError(f"{path}: {what} /{name} keeps its bytes in external files; "
                            "refusing to read it")
    return obj


def file_size(path: PathLike) -> int:
    """Size on disk of ``path`` in bytes (the bound of every array it can hold)."""
    return os.stat(path).st_size


def declared_bytes(ds: Any) -> int:
    """Bytes ``ds`` declares: its element count times the stored size of one element."""
    elem = _VLEN_BYTES if ds.dtype.kind == "O" else int(ds.id.get_type().get_size())
    return math.prod(int(d) for d in ds.shape) * elem


def check_storage(ds: Any, path: PathLike, size_on_disk: int, *, row_chunks: bool = False) -> None:
    """Check that the bytes ``ds`` declares are all stored, unfiltered, within ``path``.

    Args:
        ds: an ``h5py.Dataset`` of the file at ``path``.
        path: the file (named in errors).
        size_on_disk: the file's size in bytes (:func:`file_size`).
        row_chunks: a chunked ``ds`` must hold whole rows per chunk (``chunks[1:] == shape[1:]``).

    Raises:
        DataError: a filter (compression, shuffle, checksum), a layout other than contiguous,
            chunked or compact, whole-row chunking broken, or declared bytes more than the
            allocated storage or the file's size — each naming the file and the array.
    """
    name = _where(ds)
    try:
        plist = ds.id.get_create_plist()
        layout, n_filters = plist.get_layout(), plist.get_nfilters()
        filters = [plist.get_filter(i)[3].decode("ascii", "replace") for i in range(n_filters)]
        stored = int(ds.id.get_storage_size())
        declared = declared_bytes(ds)
    except H5_ERRORS as exc:
        raise DataError(f"{path}: array {name} has unreadable storage information ({exc})") from None
    if filters:
        raise DataError(f"{path}: array {name} is stored through filter(s) {', '.join(filters)}; the "
                        "toolkit writes arrays uncompressed and refuses filtered ones (their "
                        "decoded size cannot be checked against the file)")
    if layout not in _LAYOUTS:
        raise DataError(f"{path}: array {name} has storage layout {layout}, expected contiguous or chunked")
    if row_chunks and ds.chunks is not None and tuple(ds.chunks[1:]) != tuple(ds.shape[1:]):
        raise DataError(f"{path}: array {name} is chunked {ds.chunks}, expected whole rows "
                        f"(k, {', '.join(str(d) for d in ds.shape[1:])})")
    if declared > size_on_disk:
        raise DataError(f"{path}: array {name} declares shape {tuple(ds.shape)} of {ds.dtype} "
                        f"({declared} bytes) but the file has only {size_on_disk} bytes")
    if not declared <= stored <= size_on_disk:
        raise DataError(f"{path}: array {name} declares {declared} bytes but {stored} bytes "
                        f"of it are stored ({_LAYOUTS[layout]}, file of {size_on_disk} bytes); "
                        "an array written by the toolkit is stored whole")


# --------------------------------------------------------------------------- attributes

def read_attr(obj: Any, path: PathLike, attr: str, default: Any = _NOT_SET) -> Any:
    """The raw value of attribute ``attr`` of ``obj``, or ``default`` when it is absent.

    Raises:
        DataError: the attribute is absent (and no ``default``) or cannot be read.
    """
    try:
        if attr not in obj.attrs:
            if default is _NOT_SET:
                raise DataError(f"{path}: attribute '{attr}' of {_where(obj)} is missing")
            return default
        return obj.attrs[attr]
    except DataError:
        raise
    except H5_ERRORS as exc:
        raise DataError(f"{path}: attribute '{attr}' of {_where(obj)} cannot be read ({exc})") from None


def _bad(obj: Any, path: PathLike, attr: str, value: Any, expected: str) -> DataError:
    return DataError(f"{path}: attribute '{attr}' of {_where(obj)} is {_show(value)}, expected {expected}")


def attr_text(obj: Any, path: PathLike, attr: str, default: Any = _NOT_SET) -> Any:
    """Attribute ``attr`` as text (a scalar string, UTF-8), or ``default`` when absent."""
    v = read_attr(obj, path, attr, default)
    if v is default and default is not _NOT_SET:
        return v
    if isinstance(v, (bytes, np.bytes_)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(obj, path, attr, v, "UTF-8 text") from None
    if isinstance(v, str):
        return str(v)
    raise _bad(obj, path, attr, v, "a text string")


def attr_int(obj: Any, path: PathLike, attr: str, *, minimum: int = 0, default: Any = _NOT_SET) -> int:
    """Attribute ``attr`` as an ``int`` >= ``minimum`` (a scalar integer, not a bool)."""
    v = read_attr(obj, path, attr, default)
    if v is default and default is not _NOT_SET:
        return cast(int, v)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or int(v) < minimum:
        raise _bad(obj, path, attr, v, f"an integer >= {minimum}")
    return int(v)


def attr_bool(obj: Any, path: PathLike, attr: str, default: Any = _NOT_SET) -> bool:
    """Attribute ``attr`` as a ``bool`` (a scalar boolean, or the integer 0 or 1)."""
    v = read_attr(obj, path, attr, default)
    if v is default and default is not _NOT_SET:
        return cast(bool, v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and int(v) in (0, 1):
        return bool(v)
    raise _bad(obj, path, attr, v, "a boolean")


def attr_json(obj: Any, path: PathLike, attr: str, default: Any = _NOT_SET) -> Any:
    """Attribute ``attr`` parsed as JSON text."""
    text = attr_text(obj, path, attr, default)
    if text is default and default is not _NOT_SET:
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{path}: attribute '{attr}' of {_where(obj)} is not valid JSON "
                        f"({type(exc).__name__}: {str(exc)[:80]})") from None


def attr_digest(obj: Any, path: PathLike, attr: str) -> str:
    """Attribute ``attr`` as a SHA-256 hex digest (64 lowercase hexadecimal characters)."""
    v = attr_text(obj, path, attr)
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise _bad(obj, path, attr, v, "a SHA-256 hex digest")
    return str(v)


# --------------------------------------------------------------------------- reading

def read_rows(ds: Any, path: PathLike, start: int = 0, stop: int | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
    """Rows ``start:stop`` of ``ds`` (into ``out`` when given, which must fit them exactly).

    Raises:
        DataError: HDF5 failed to read them (a damaged chunk, an address past the end of the
            file), naming the file, the array and the rows.
    """
    stop = int(ds.shape[0]) if stop is None else stop
    try:
        if out is None:
            return np.asarray(ds[start:stop])
        ds.read_direct(out, np.s_[start:stop])
        return out
    except H5_ERRORS as exc:
        raise DataError(f"{path}: array {_where(ds)} rows {start}:{stop} cannot be read ({exc})") from None


def iter_blocks(ds: Any, path: PathLike, budget: int = BLOCK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, rows)`` for consecutive blocks of ``ds`` of at most ``budget`` bytes each.

    Each block has at least one row. A block's array is reused by the next for numeric types, so
    copy what must outlive the step.
    """
    n = int(ds.shape[0])
    row_bytes = max(1, declared_bytes(ds) // max(1, n))
    step = max(1, budget // row_bytes)
    buf = None if ds.dtype.kind == "O" else np.empty((min(step, n), *ds.shape[1:]), ds.dtype)
    for start in range(0, n, step):
        stop = min(start + step, n)
        if buf is None:
            yield start, read_rows(ds, path, start, stop)
        else:
            yield start, read_rows(ds, path, start, stop, buf[: stop - start])
