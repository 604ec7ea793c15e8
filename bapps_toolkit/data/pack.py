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
from typing import Any, TypedDict

import h5py
import numpy as np

from .._io import TMP_MARK, FileLock, PathLike, atomic_path, remove_stale_temps
from .._version import __version__
from ..errors import DataError
from .decode import decode_pool, iter_decoded, make_bar
from .h5format import FORMAT, FORMAT_ATTR, decode_stems, judgments_digest, open_h5, read_stems, stems_digest
from .h5safe import attr_text, iter_blocks, read_rows
from .ids import check_ids
from .images import PATCH, check_shared_square, image_size
from .layout import SetFiles, discover, folders_of, is_synthetic_root, order_keys, resolve_root, scan_set, split_key

#: Items per HDF5 chunk of an image array (1024 × 12 KiB = 12 MiB). Measured on 20k patches:
#: whole-array reads at ~4 GiB per CPU-second (as fast as a contiguous layout; 256-row chunks
#: 25 % slower), while slices still read only the rows asked for. LZF saved 21 % of the bytes
#: but read 10× slower, so arrays are stored uncompressed.
CHUNK_ITEMS = 1024

# --------------------------------------------------------------------------- writing

def create_set_group(f: h5py.File, key: str, n: int) -> h5py.Group:
    """The group of one set, with its kind/split/category/count attributes."""
    kind, split, cat = split_key(key)
    g = f.create_group(key)
    g.attrs.update({"kind": kind, "split": split, "category": cat, "count": n})
    return g


def write_judgments_and_stems(g: h5py.Group, name: str, judgments: np.ndarray, stems: Sequence[str],
                               n_votes: np.ndarray | None = None) -> None:
    """The judgment array (``judge``/``same``), stems and vote counts (when given) of a set, hashed.

    Each comes with its SHA-256. The stems must be valid, unique item ids (:mod:`.ids`).
    """
    check_ids(stems, f"set {g.name.lstrip('/')} to pack: stems")
    jd = g.create_dataset(name, data=judgments)
    jd.attrs["sha256"] = judgments_digest(judgments)
    sd = g.create_dataset("stems", data=np.array(stems, dtype=object), dtype=h5py.string_dtype("utf-8"))
    sd.attrs["sha256"] = stems_digest(stems)
    if n_votes is not None:
        votes = np.ascontiguousarray(n_votes, dtype="<i8")
        vd = g.create_dataset("n_votes", data=votes)
        vd.attrs["sha256"] = hashlib.sha256(votes.data).hexdigest()


# --------------------------------------------------------------------------- pack

def pack(root: PathLike | Sequence[PathLike], out_h5: PathLike, *, size: int | None = None,
         workers: int | None = None, force: bool = False, progress: bool = True) -> Path:
    """Pack every set of ``root`` into the HDF5 file ``out_h5``; returns its path.

    ``root``: a folder in the BAPPS layout (BAPPS's categories and the user's own, see
    :mod:`.layout`), or one or more CSV manifests (a ``.csv`` path or a list of them; format in
    :mod:`.manifest`). ``size``: the patch side of the packed sets, by the rule of
    :mod:`.images` (square images resized bilinearly to ``size``×``size``, non-square ones
    centre-cropped to their shorter side first). Without it every set keeps its images' own
    size, a folder as a CSV-defined set: they must then be square and all of one size, or the
    error names two that differ and asks for ``size`` (nothing is resized unless asked, so a
    judged 128 px study exported by ``bapps judge export`` packs at 128 px; BAPPS's own
    patches are 64×64 and pack at 64 as before).

    Everything is listed and checked first (a layout or manifest error stops before anything
    is written); images are decoded by ``workers`` processes (default: every core this process
    may use); the file is written under a temporary name and renamed at the end, under a lock on
    ``out_h5`` (a second concurrent pack to the same output fails at once with
    :class:`~bapps_toolkit.errors.LockedError`). An existing ``out_h5`` is refused unless
    ``force``. Leftover temporaries of killed runs are removed.
    """
    out = Path(out_h5)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DataError(f"size must be a positive number of pixels, got {size!r}")
    csvs = _manifest_paths(root)
    base = None if csvs else resolve_root(root)  # type: ignore[arg-type]
    if out.exists() and out.is_dir():
        raise DataError(f"output {out} is a folder; give a file name such as {out / 'bapps.h5'}")
    with FileLock(out, "packed file"):
        if out.exists() and not force:
            raise FileExistsError(f"{out} already exists; pass --force (force=True) to overwrite it")
        # Only this output's temporaries: other files in the folder have locks of their own.
        remove_stale_temps(out.parent, f".{glob.escape(out.name)}{TMP_MARK}*")
        man = None
        if base is None:
            from .manifest import read_manifests

            man = read_manifests(csvs, size=size)
            sets, side, synthetic, source = man.sets, man.size, man.synthetic, man.source
        else:
            sets = [scan_set(base, k) for k in discover(base)]
            side = size if size is not None else folder_side(sets)
            synthetic, source = is_synthetic_root(base), str(base.resolve())
        try:
            _write_file(out, sets, source=source, synthetic=synthetic, size=side, crop=size is not None,
                        workers=workers, progress=progress)
        except DataError as exc:  # an image that fails to decode: name the manifest row and field
            if man is None:
                raise
            raise man.blame(exc) from None
    return out


def folder_side(sets: Sequence[SetFiles]) -> int:
    """The common side of every image of ``sets`` (read from the file headers, nothing decoded).

    Args:
        sets: the sets of a folder in the BAPPS layout.

    Returns:
        The side ``S`` when every image is ``S``×``S`` (:data:`~.images.PATCH` for no image).

    Raises:
        DataError: an image that is not square, or two of different sizes, naming the files,
            their sizes and the ``--size`` option that packs them at one size.
    """
    first: tuple[Path, tuple[int, int]] | None = None
    for sf in sets:
        for folder in folders_of(sf.key)[:-1]:
            for f in sf.files[folder]:
                first = check_shared_square(f, image_size(f), first, f"set {sf.key}")
    return PATCH if first is None else first[1][0]


def _manifest_paths(root: PathLike | Sequence[PathLike]) -> list[Path]:
    """The CSV manifests ``root`` names (empty for a folder); a mix is an error."""
    items = [root] if isinstance(root, (str, os.PathLike)) else list(root)
    if not items:
        raise DataError("nothing to pack: give a BAPPS folder or one or more .csv manifests")
    paths = [Path(p) for p in items]
    csv = [p.suffix.lower() == ".csv" for p in paths]
    if all(csv):
        return paths
    if len(paths) == 1:
        return []
    raise DataError(f"pack takes one BAPPS folder or any number of .csv manifests, not "
                     f"{', '.join(str(p) for p in paths)}")


def _write_file(out: Path, sets: Sequence[SetFiles], *, source: str, synthetic: bool, size: int,
                crop: bool, workers: int | None, progress: bool) -> None:
    keys = [sf.key for sf in sets]
    n_images = sum(len(sf) * (len(folders_of(sf.key)) - 1) for sf in sets)
    bar = make_bar(n_images, f"pack {out.name}", progress)
    try:
        with atomic_path(out) as tmp, decode_pool(workers, n_images) as pool:
            with h5py.File(tmp, "w", libver="latest") as f:
                for sf in sets:
                    _write_set(f, sf, pool, bar, size, crop)
                f.attrs["source"] = source
                f.attrs["toolkit_version"] = __version__
                f.attrs["synthetic"] = bool(synthetic)
                f.attrs["keys"] = json.dumps(keys)
                f.attrs["counts"] = json.dumps({sf.key: len(sf) for sf in sets})
                f.attrs[FORMAT_ATTR] = FORMAT
    finally:
        bar.close()


def chunk_rows(n: int) -> int:
    """Rows per HDF5 chunk: at most :data:`CHUNK_ITEMS`, split evenly.

    The even split keeps the last chunk from being mostly padding (HDF5 allocates whole chunks).
    """
    n_chunks = -(-n // CHUNK_ITEMS)
    return max(1, -(-n // n_chunks))


def _write_set(f: h5py.File, sf: SetFiles, pool: Any, bar: Any, size: int = PATCH, crop: bool = False) -> None:
    folders = folders_of(sf.key)
    n = len(sf)
    g = create_set_group(f, sf.key, n)
    g.attrs["size"] = size
    chunk = chunk_rows(n)
    dsets = {name: g.create_dataset(name, shape=(n, size, size, 3), dtype=np.uint8,
                                    chunks=(chunk, size, size, 3)) for name in folders[:-1]}
    judg = np.empty((n,), np.float32)
    hashes = {name: hashlib.sha256() for name in folders[:-1]}
    for start, arrays, j in iter_decoded(sf, pool, bar, size, crop):
        stop = start + len(j)
        for name, a in zip(folders[:-1], arrays, strict=False):
            dsets[name][start:stop] = a
            hashes[name].update(np.ascontiguousarray(a).data)
        judg[start:stop] = j
    for name, h in hashes.items():
        dsets[name].attrs["sha256"] = h.hexdigest()
    write_judgments_and_stems(g, folders[-1], judg, sf.stems, sf.n_votes)


def write_packed(out_h5: PathLike, sets: dict[str, tuple[dict[str, np.ndarray], list[str]]], *,
                 source: str, synthetic: bool) -> Path:
    """Write in-memory arrays as a ``bapps-h5/1`` file (atomically).

    ``sets[key] = (arrays, stems)`` with ``arrays`` holding the set's image folders (uint8
    ``[N, S, S, 3]``, one ``S`` per set; 64 for BAPPS) and its judgment folder (float ``[N]``).
    Used by benchmarks and tools that synthesise files.
    """
    out = Path(out_h5)
    for key in sets:
        split_key(key)
    keys = order_keys(sets)
    with atomic_path(out) as tmp, h5py.File(tmp, "w", libver="latest") as f:
        for key in keys:
            arrays, stems = sets[key]
            folders = folders_of(key)
            n = len(stems)
            g = create_set_group(f, key, n)
            side = int(np.shape(arrays[folders[0]])[1]) if np.ndim(arrays[folders[0]]) == 4 else PATCH
            g.attrs["size"] = side
            for name in folders[:-1]:
                a = np.ascontiguousarray(arrays[name], dtype=np.uint8)
                if a.shape != (n, side, side, 3):
                    raise DataError(f"{key}/{name} has shape {a.shape}, expected {(n, side, side, 3)}")
                ds = g.create_dataset(name, data=a, chunks=(chunk_rows(n), side, side, 3))
                ds.attrs["sha256"] = hashlib.sha256(a.data).hexdigest()
            write_judgments_and_stems(g, folders[-1], np.ascontiguousarray(arrays[folders[-1]], dtype=np.float32),
                                       stems)
        f.attrs["source"] = source
        f.attrs["toolkit_version"] = __version__
        f.attrs["synthetic"] = bool(synthetic)
        f.attrs["keys"] = json.dumps(keys)
        f.attrs["counts"] = json.dumps({k: len(sets[k][1]) for k in keys})
        f.attrs[FORMAT_ATTR] = FORMAT
    return out


# --------------------------------------------------------------------------- verify

class VerifyReport(TypedDict):
    """What :func:`verify` checked in a packed file (every field also printed by ``bapps verify``).

    ``sets`` maps each set key to its number of items, ``sizes`` to its patch side; ``images``
    counts the patches, ``arrays_checked`` the arrays whose SHA-256 matched; ``ok`` is always
    true (a failure raises instead).
    """

    path: str
    format: str
    toolkit_version: str
    source: str
    synthetic: bool
    sets: dict[str, int]
    sizes: dict[str, int]
    images: int
    arrays_checked: int
    ok: bool


def verify(h5: PathLike, *, progress: bool = False) -> VerifyReport:
    """Re-check a packed file: marker, schema, counts, judgment range and every SHA-256.

    The schema (dtypes, shapes and storage against the file's size, :func:`.h5format.check_schema`)
    is checked before anything is read; then every array is read in blocks of bounded size
    (:func:`.h5safe.iter_blocks`) and hashed.

    Args:
        h5: the packed file.
        progress: show a progress bar (on a terminal).

    Returns:
        A :class:`VerifyReport` (a dict: ``report["sets"]`` is ``{key: N}``).

    Raises:
        DataError: naming the file and the array (or attribute) on the first failure.
    """
    p = Path(h5)
    f, info = open_h5(p)
    checked = 0
    try:
        total = sum(n * (len(folders_of(k)) - 1) for k, n in info["counts"].items())
        bar = make_bar(total, f"verify {p.name}", progress)
        try:
            for key in info["keys"]:
                checked += _verify_set(p, key, f[key], bar)
        finally:
            bar.close()
    finally:
        f.close()
    return VerifyReport(path=str(p), format=FORMAT, toolkit_version=info["toolkit_version"],
                        source=info["source"], synthetic=info["synthetic"], sets=dict(info["counts"]),
                        sizes=dict(info["sizes"]), images=total, arrays_checked=checked, ok=True)


def _verify_set(p: Path, key: str, g: Any, bar: Any) -> int:
    """Check every array of set ``key`` (group ``g``); returns how many were checked."""
    folders = folders_of(key)
    for name in folders[:-1]:
        h = hashlib.sha256()
        for _, rows in iter_blocks(g[name], p):
            h.update(rows.data)
            bar.update(len(rows))
        _check_digest(p, key, name, g[name], h.hexdigest())
    jd = g[folders[-1]]
    j = read_rows(jd, p)
    _check_digest(p, key, folders[-1], jd, judgments_digest(j))
    bad = ~np.isfinite(j) | (j < 0) | (j > 1)
    if bad.any():
        raise DataError(f"{p}: array /{key}/{folders[-1]} holds values outside [0, 1] "
                        f"(first at index {int(np.flatnonzero(bad)[0])})")
    h = hashlib.sha256()
    for start, raw in iter_blocks(g["stems"], p):
        text = "\n".join(decode_stems(raw, g["stems"], start)).encode("utf-8")
        h.update(b"\n" + text if start else text)
    _check_digest(p, key, "stems", g["stems"], h.hexdigest())
    read_stems(g["stems"])
    return len(folders) + 1 + _check_votes(p, key, g)


def _check_votes(path: Path, key: str, g: Any) -> int:
    """Check the optional ``n_votes`` array (digest, every count >= 1); 1 if present, else 0."""
    if "n_votes" not in g:
        return 0
    votes = np.ascontiguousarray(read_rows(g["n_votes"], path), dtype="<i8")
    _check_digest(path, key, "n_votes", g["n_votes"], hashlib.sha256(votes.data).hexdigest())
    if (votes < 1).any():
        raise DataError(f"{path}: array /{key}/n_votes holds a count below 1 "
                        f"(first at index {int(np.flatnonzero(votes < 1)[0])})")
    return 1


def _check_digest(path: Path, key: str, name: str, ds: Any, actual: str) -> None:
    expected = attr_text(ds, path, "sha256", None)
    if expected is None:
        raise DataError(f"{path}: array /{key}/{name} has no sha256 attribute")
    if expected != actual:
        raise DataError(f"{path}: array /{key}/{name} fails its SHA-256 check (attribute 'sha256' "
                        f"is {expected[:12]!r}…, computed {actual[:12]}…): the file is damaged")
