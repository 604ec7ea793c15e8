"""Pack a BAPPS folder tree into one HDF5 file, and verify such a file.

File format ``bapps-h5/1`` (groups mirror the folder layout of Zhang et al., CVPR 2018)::

    /                          attrs: bapps_toolkit_format="bapps-h5/1", source, toolkit_version,
                                      synthetic (bool), keys (JSON list), counts (JSON dict)
    /2afc/<split>/<category>   attrs: kind, split, category, count
        ref, p0, p1            uint8 [N, 64, 64, 3], chunked (<= 1024 rows, 64, 64, 3), no compression
        judge                  float32 [N]   (fraction of raters preferring p1)
        stems                  utf-8 strings [N]
    /jnd/val/<category>        p0, p1 (as above), same float32 [N], stems

Every array carries ``attrs["sha256"]``: SHA-256 of its C-order bytes (float32 little-endian;
for ``stems`` the UTF-8 of the stems joined by ``"\\n"``). The format marker is written last, so
a file cut short never looks like ours.

Image rule and judgment checks: see :mod:`bapps_toolkit.data.images`.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import glob
import hashlib
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from .._io import TMP_MARK, FileLock, atomic_path, remove_stale_temps
from .._version import __version__
from ..errors import DataError
from .images import PATCH, decode_images, load_judgments
from .layout import ALL_KEYS, SetFiles, discover, folders_of, is_synthetic_root, resolve_root, scan_set, split_key

PathLike = Union[str, "os.PathLike[str]"]

FORMAT_ATTR = "bapps_toolkit_format"
FORMAT = "bapps-h5/1"
#: Items per HDF5 chunk of an image array (1024 × 12 KiB = 12 MiB). Measured on 20k patches:
#: whole-array reads at ~4 GiB per CPU-second (as fast as a contiguous layout; 256-row chunks
#: 25 % slower), while slices still read only the rows asked for. LZF saved 21 % of the bytes
#: but read 10× slower, so arrays are stored uncompressed.
CHUNK_ITEMS = 1024
#: Items per decode task handed to a worker process.
TASK_ITEMS = 256
#: Below this many images the decode runs in-process (a pool costs more than it saves).
POOL_MIN_IMAGES = 2048


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _progress_enabled(progress: bool) -> bool:
    return bool(progress) and sys.stderr.isatty()


def make_bar(total: int, desc: str, progress: bool, unit: str = "img"):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit=unit, disable=not _progress_enabled(progress),
                dynamic_ncols=True, leave=False)


# --------------------------------------------------------------------------- parallel decode

def _decode_task(image_lists: tuple[tuple[str, ...], ...], judgment_list: tuple[str, ...]
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """Worker: decode one slice of a set (module level so it pickles)."""
    return [decode_images(paths) for paths in image_lists], load_judgments(judgment_list)


def _tasks(sf: SetFiles) -> Iterator[tuple[int, tuple[tuple[str, ...], ...], tuple[str, ...]]]:
    folders = folders_of(sf.key)
    img_folders, jfolder = folders[:-1], folders[-1]
    for start in range(0, len(sf), TASK_ITEMS):
        stop = min(start + TASK_ITEMS, len(sf))
        images = tuple(tuple(str(p) for p in sf.files[f][start:stop]) for f in img_folders)
        yield start, images, tuple(str(p) for p in sf.files[jfolder][start:stop])


@contextlib.contextmanager
def decode_pool(workers: int | None, n_images: int) -> Iterator[cf.Executor | None]:
    """A process pool for decoding, or ``None`` when one worker (or a small job) suffices."""
    w = default_workers() if workers is None else int(workers)
    if w < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if w == 1 or n_images < POOL_MIN_IMAGES:
        yield None
        return
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    ex = cf.ProcessPoolExecutor(max_workers=w, mp_context=ctx)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def iter_decoded(sf: SetFiles, pool: cf.Executor | None, bar=None
                 ) -> Iterator[tuple[int, list[np.ndarray], np.ndarray]]:
    """Yield ``(start, [images per image folder], judgments)`` for consecutive slices, in order."""
    n_img_folders = len(folders_of(sf.key)) - 1
    if pool is None:
        for start, images, judg in _tasks(sf):
            arrays, j = _decode_task(images, judg)
            if bar is not None:
                bar.update(len(judg) * n_img_folders)
            yield start, arrays, j
        return
    window = 2 * (getattr(pool, "_max_workers", 2) or 2)
    pending: collections.deque[tuple[int, int, cf.Future]] = collections.deque()
    tasks = _tasks(sf)
    try:
        for start, images, judg in tasks:
            pending.append((start, len(judg), pool.submit(_decode_task, images, judg)))
            if len(pending) >= window:
                s, n, fut = pending.popleft()
                arrays, j = fut.result()
                if bar is not None:
                    bar.update(n * n_img_folders)
                yield s, arrays, j
        while pending:
            s, n, fut = pending.popleft()
            arrays, j = fut.result()
            if bar is not None:
                bar.update(n * n_img_folders)
            yield s, arrays, j
    finally:
        for _, _, fut in pending:
            fut.cancel()


def decode_set(sf: SetFiles, pool: cf.Executor | None = None, bar=None) -> dict[str, np.ndarray]:
    """Decode a whole set into memory: ``{"ref": ..., "p0": ..., "judge": ...}``."""
    folders = folders_of(sf.key)
    n = len(sf)
    out = {f: np.empty((n, PATCH, PATCH, 3), np.uint8) for f in folders[:-1]}
    out[folders[-1]] = np.empty((n,), np.float32)
    for start, arrays, j in iter_decoded(sf, pool, bar):
        stop = start + len(j)
        for f, a in zip(folders[:-1], arrays, strict=False):
            out[f][start:stop] = a
        out[folders[-1]][start:stop] = j
    return out


# --------------------------------------------------------------------------- schema

def stems_digest(stems: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(stems).encode("utf-8")).hexdigest()


def judgments_digest(judgments: np.ndarray) -> str:
    """SHA-256 of a judgment array as little-endian float32 (the stored form)."""
    return hashlib.sha256(np.asarray(judgments).astype("<f4").tobytes()).hexdigest()


def _create_set_group(f, key: str, n: int):
    """The group of one set, with its kind/split/category/count attributes."""
    kind, split, cat = split_key(key)
    g = f.create_group(key)
    g.attrs.update({"kind": kind, "split": split, "category": cat, "count": n})
    return g


def _write_judgments_and_stems(g, name: str, judgments: np.ndarray, stems: Sequence[str]) -> None:
    """The judgment array (``judge``/``same``) and the stems of a set, each with its SHA-256."""
    import h5py

    jd = g.create_dataset(name, data=judgments)
    jd.attrs["sha256"] = judgments_digest(judgments)
    sd = g.create_dataset("stems", data=np.array(stems, dtype=object), dtype=h5py.string_dtype("utf-8"))
    sd.attrs["sha256"] = stems_digest(stems)


def _attr_str(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _member(f: Any, path: PathLike, name: str, what: str) -> Any | None:
    """The group or dataset at ``/name`` of ``f``, ``None`` if there is no such entry.

    Only entries stored in the file itself are accepted: a soft or external link (which could
    make the toolkit read another file on disk as its data, or dangle), a virtual dataset (whose
    bytes come from other files) and a dataset with external raw storage are refused with a
    :class:`DataError` naming the file and the entry.
    """
    import h5py

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

    Returns ``{"keys": [...], "counts": {key: N}, "synthetic": bool, "source": str,
    "toolkit_version": str}``. Raises :class:`DataError` naming the file (and array).
    """
    import h5py

    marker = f.attrs.get(FORMAT_ATTR)
    if marker is None:
        raise DataError(f"{path} is not a bapps-toolkit file (no '{FORMAT_ATTR}' attribute; "
                        "pack a BAPPS folder with `bapps pack ROOT OUT.h5`)")
    if _attr_str(marker) != FORMAT:
        raise DataError(f"{path} has format {_attr_str(marker)!r}; this toolkit reads {FORMAT!r}")
    try:
        keys = json.loads(_attr_str(f.attrs["keys"]))
        counts = json.loads(_attr_str(f.attrs["counts"]))
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: damaged bapps-toolkit header ({exc})") from None
    if not isinstance(keys, list) or not keys or not all(k in ALL_KEYS for k in keys):
        raise DataError(f"{path}: damaged bapps-toolkit header (set list {keys!r})")
    for key in keys:
        parts = key.split("/")
        g = None
        for depth in range(1, len(parts) + 1):
            g = _member(f, path, "/".join(parts[:depth]), "set group")
            if g is None or not isinstance(g, h5py.Group):
                raise DataError(f"{path}: set group /{key} listed in the header is missing")
        n = counts.get(key)
        if not isinstance(n, int) or n < 1 or int(g.attrs.get("count", -1)) != n:
            raise DataError(f"{path}: /{key} count {g.attrs.get('count')} does not match header {n}")
        folders = folders_of(key)
        arrays = {}
        for name in (*folders, "stems"):
            ds = _member(f, path, f"{key}/{name}", "array")
            if not isinstance(ds, h5py.Dataset):
                raise DataError(f"{path}: array /{key}/{name} is missing")
            arrays[name] = ds
        for name in folders[:-1]:
            ds = arrays[name]
            if ds.dtype != np.uint8 or ds.shape != (n, PATCH, PATCH, 3):
                raise DataError(f"{path}: array /{key}/{name} is {ds.dtype} {ds.shape}, expected "
                                f"uint8 {(n, PATCH, PATCH, 3)}")
        for name in (folders[-1], "stems"):
            ds = arrays[name]
            if ds.shape != (n,):
                raise DataError(f"{path}: array /{key}/{name} has shape {ds.shape}, expected {(n,)}")
        if g[folders[-1]].dtype != np.float32:
            raise DataError(f"{path}: array /{key}/{folders[-1]} is {g[folders[-1]].dtype}, expected float32")
        if g["stems"].dtype.kind not in "OSU":
            raise DataError(f"{path}: array /{key}/stems is {g['stems'].dtype}, expected strings")
    return {"keys": list(keys), "counts": {k: int(counts[k]) for k in keys},
            "synthetic": bool(f.attrs.get("synthetic", False)),
            "source": _attr_str(f.attrs.get("source", "")),
            "toolkit_version": _attr_str(f.attrs.get("toolkit_version", ""))}


def open_h5(path: PathLike):
    """Open a packed file read-only after checking it is ours; returns ``(h5py.File, info)``."""
    import h5py
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
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in ds[...]]


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
    import h5py

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
    import h5py

    out = Path(out_h5)
    keys = [k for k in ALL_KEYS if k in sets]
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
    if _attr_str(expected) != actual:
        raise DataError(f"{path}: array /{key}/{name} fails its SHA-256 check (stored "
                        f"{_attr_str(expected)[:12]}…, computed {actual[:12]}…): the file is damaged")
