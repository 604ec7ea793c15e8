"""Write a BAPPS folder tree (or in-memory arrays) as one packed HDF5 file, and verify such a file.

The format (``bapps-h5/1``) and its reader are in :mod:`.h5format`; the PNG decoding in
:mod:`.decode` and :mod:`.images`. Every array is written with ``attrs["sha256"]`` and the format
marker last, so a file cut short never looks like ours.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import h5py
import numpy as np

from .._io import TMP_MARK, FileLock, atomic_path, remove_stale_temps
from .._version import __version__
from ..errors import DataError
from .decode import decode_pool, iter_decoded, make_bar
from .h5format import FORMAT, FORMAT_ATTR, attr_str, judgments_digest, open_h5, read_stems, stems_digest
from .images import PATCH
from .layout import SetFiles, discover, folders_of, is_synthetic_root, order_keys, resolve_root, scan_set, split_key

PathLike = Union[str, "os.PathLike[str]"]

#: Items per HDF5 chunk of an image array (1024 × 12 KiB = 12 MiB). Measured on 20k patches:
#: whole-array reads at ~4 GiB per CPU-second (as fast as a contiguous layout; 256-row chunks
#: 25 % slower), while slices still read only the rows asked for. LZF saved 21 % of the bytes
#: but read 10× slower, so arrays are stored uncompressed.
CHUNK_ITEMS = 1024

# --------------------------------------------------------------------------- writing

def _create_set_group(f, key: str, n: int):
    """The group of one set, with its kind/split/category/count attributes."""
    kind, split, cat = split_key(key)
    g = f.create_group(key)
    g.attrs.update({"kind": kind, "split": split, "category": cat, "count": n})
    return g


def _write_judgments_and_stems(g, name: str, judgments: np.ndarray, stems: Sequence[str]) -> None:
    """The judgment array (``judge``/``same``) and the stems of a set, each with its SHA-256."""
    jd = g.create_dataset(name, data=judgments)
    jd.attrs["sha256"] = judgments_digest(judgments)
    sd = g.create_dataset("stems", data=np.array(stems, dtype=object), dtype=h5py.string_dtype("utf-8"))
    sd.attrs["sha256"] = stems_digest(stems)


# --------------------------------------------------------------------------- pack

def pack(root: PathLike, out_h5: PathLike, *, workers: int | None = None, force: bool = False,
         progress: bool = True) -> Path:
    """Pack every BAPPS set under ``root`` into the HDF5 file ``out_h5``; returns its path.

    The whole tree is listed and paired first (a layout error stops before anything is
    written); PNGs are decoded by ``workers`` processes (default: every core this process may
    use); the file is written under a temporary name and renamed at the end, under a lock on
    ``out_h5`` (a second concurrent pack to the same output fails at once with
    :class:`~bapps_toolkit.errors.LockedError`). An existing ``out_h5`` is refused unless
    ``force``. Leftover temporaries of killed runs are removed.
    """
    out = Path(out_h5)
    base = resolve_root(root)
    if out.exists() and out.is_dir():
        raise DataError(f"output {out} is a folder; give a file name such as {out / 'bapps.h5'}")
    with FileLock(out, "packed file"):
        if out.exists() and not force:
            raise FileExistsError(f"{out} already exists; pass --force (force=True) to overwrite it")
        # Only this output's temporaries: other files in the folder have locks of their own.
        remove_stale_temps(out.parent, f".{glob.escape(out.name)}{TMP_MARK}*")
        keys = discover(base)
        sets = [scan_set(base, k) for k in keys]
        synthetic = is_synthetic_root(base)
        n_images = sum(len(sf) * (len(folders_of(sf.key)) - 1) for sf in sets)
        bar = make_bar(n_images, f"pack {out.name}", progress)
        try:
            with atomic_path(out) as tmp, decode_pool(workers, n_images) as pool:
                with h5py.File(tmp, "w", libver="latest") as f:
                    for sf in sets:
                        _write_set(f, sf, pool, bar)
                    f.attrs["source"] = str(base.resolve())
                    f.attrs["toolkit_version"] = __version__
                    f.attrs["synthetic"] = bool(synthetic)
                    f.attrs["keys"] = json.dumps(keys)
                    f.attrs["counts"] = json.dumps({sf.key: len(sf) for sf in sets})
                    f.attrs[FORMAT_ATTR] = FORMAT
        finally:
            bar.close()
    return out


def chunk_rows(n: int) -> int:
    """Rows per HDF5 chunk: at most :data:`CHUNK_ITEMS`, split evenly so the last chunk is not
    mostly padding (HDF5 allocates whole chunks)."""
    n_chunks = -(-n // CHUNK_ITEMS)
    return max(1, -(-n // n_chunks))


def _write_set(f, sf: SetFiles, pool, bar) -> None:
    folders = folders_of(sf.key)
    n = len(sf)
    g = _create_set_group(f, sf.key, n)
    chunk = chunk_rows(n)
    dsets = {name: g.create_dataset(name, shape=(n, PATCH, PATCH, 3), dtype=np.uint8,
                                    chunks=(chunk, PATCH, PATCH, 3)) for name in folders[:-1]}
    judg = np.empty((n,), np.float32)
    hashes = {name: hashlib.sha256() for name in folders[:-1]}
    for start, arrays, j in iter_decoded(sf, pool, bar):
        stop = start + len(j)
        for name, a in zip(folders[:-1], arrays, strict=False):
            dsets[name][start:stop] = a
            hashes[name].update(np.ascontiguousarray(a).data)
        judg[start:stop] = j
    for name, h in hashes.items():
        dsets[name].attrs["sha256"] = h.hexdigest()
    _write_judgments_and_stems(g, folders[-1], judg, sf.stems)


def write_packed(out_h5: PathLike, sets: dict[str, tuple[dict[str, np.ndarray], list[str]]], *,
                 source: str, synthetic: bool) -> Path:
    """Write in-memory arrays as a ``bapps-h5/1`` file (atomically): ``sets[key] = (arrays,
    stems)`` with ``arrays`` holding the set's image folders (uint8 ``[N, 64, 64, 3]``) and its
    judgment folder (float ``[N]``). Used by benchmarks and tools that synthesise files."""
    out = Path(out_h5)
    for key in sets:
        split_key(key)
    keys = order_keys(sets)
    with atomic_path(out) as tmp, h5py.File(tmp, "w", libver="latest") as f:
        for key in keys:
            arrays, stems = sets[key]
            folders = folders_of(key)
            n = len(stems)
            g = _create_set_group(f, key, n)
            for name in folders[:-1]:
                a = np.ascontiguousarray(arrays[name], dtype=np.uint8)
                if a.shape != (n, PATCH, PATCH, 3):
                    raise ValueError(f"{key}/{name} has shape {a.shape}, expected {(n, PATCH, PATCH, 3)}")
                ds = g.create_dataset(name, data=a, chunks=(chunk_rows(n), PATCH, PATCH, 3))
                ds.attrs["sha256"] = hashlib.sha256(a.data).hexdigest()
            _write_judgments_and_stems(g, folders[-1], np.ascontiguousarray(arrays[folders[-1]], dtype=np.float32),
                                       stems)
        f.attrs["source"] = source
        f.attrs["toolkit_version"] = __version__
        f.attrs["synthetic"] = bool(synthetic)
        f.attrs["keys"] = json.dumps(keys)
        f.attrs["counts"] = json.dumps({k: len(sets[k][1]) for k in keys})
        f.attrs[FORMAT_ATTR] = FORMAT
    return out


# --------------------------------------------------------------------------- verify

def verify(h5: PathLike, *, progress: bool = False) -> dict[str, Any]:
    """Re-check a packed file: marker, schema, counts, judgment range and every SHA-256.

    Returns a summary ``{"path", "format", "toolkit_version", "source", "synthetic", "sets":
    {key: N}, "images", "arrays_checked", "ok": True}``; raises :class:`DataError` naming the
    file and the array on the first failure.
    """
    p = Path(h5)
    f, info = open_h5(p)
    checked = 0
    try:
        total = sum(n * (len(folders_of(k)) - 1) for k, n in info["counts"].items())
        bar = make_bar(total, f"verify {p.name}", progress)
        try:
            for key in info["keys"]:
                g = f[key]
                n = info["counts"][key]
                folders = folders_of(key)
                for name in folders[:-1]:
                    ds = g[name]
                    h = hashlib.sha256()
                    buf = np.empty((min(4096, n), PATCH, PATCH, 3), np.uint8)
                    for start in range(0, n, buf.shape[0]):
                        stop = min(start + buf.shape[0], n)
                        view = buf[: stop - start]
                        ds.read_direct(view, np.s_[start:stop])
                        h.update(view.data)
                        bar.update(stop - start)
                    _check_digest(p, key, name, ds, h.hexdigest())
                    checked += 1
                jd = g[folders[-1]]
                j = jd[...]
                _check_digest(p, key, folders[-1], jd, judgments_digest(j))
                bad = ~np.isfinite(j) | (j < 0) | (j > 1)
                if bad.any():
                    raise DataError(f"{p}: array /{key}/{folders[-1]} holds values outside [0, 1] "
                                    f"(first at index {int(np.flatnonzero(bad)[0])})")
                stems = read_stems(g["stems"])
                _check_digest(p, key, "stems", g["stems"], stems_digest(stems))
                checked += 2
        finally:
            bar.close()
    finally:
        f.close()
    return {"path": str(p), "format": FORMAT, "toolkit_version": info["toolkit_version"],
            "source": info["source"], "synthetic": info["synthetic"], "sets": dict(info["counts"]),
            "images": sum(n * (len(folders_of(k)) - 1) for k, n in info["counts"].items()),
            "arrays_checked": checked, "ok": True}


def _check_digest(path: Path, key: str, name: str, ds, actual: str) -> None:
    expected = ds.attrs.get("sha256")
    if expected is None:
        raise DataError(f"{path}: array /{key}/{name} has no sha256 attribute")
    if attr_str(expected) != actual:
        raise DataError(f"{path}: array /{key}/{name} fails its SHA-256 check (stored "
                        f"{attr_str(expected)[:12]}…, computed {actual[:12]}…): the file is damaged")
