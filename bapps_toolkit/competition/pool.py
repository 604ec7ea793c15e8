"""The pool of a gMAD competition: distorted images, each with its reference, and their scores.

A pool comes from

* a packed correlation benchmark (``bapps-iqa-h5/1``, written by ``bapps pack`` from TID2013,
  KADID-10k, PIPAL, LIVE, CSIQ or PieAPP; verified — every array's SHA-256, offsets, indices —
  by :func:`bapps_toolkit.data.iqa.pack_iqa.verify_iqa` before use);
* a benchmark folder in its own layout (detected as ``bapps evaluate`` detects it);
* the user's own folder: ``ref/<id>.<ext>`` and ``dist/<id>/<name>.<ext>`` (each reference's
  distorted versions in a folder named by its id).

The benchmarks' subjective scores are not used: gMAD needs only the metrics' scores. Entries
that are the reference itself (LIVE keeps reference copies among its distorted images) are left
out. A distorted image must have its reference's size (the distances are full-reference).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import PathLike
from ..data.images import read_rgb
from ..data.layout import IMAGE_EXTENSIONS
from ..errors import DataError
from .records import STEM_PATTERN

#: Largest pool accepted (distorted images).
MAX_POOL = 2_000_000


@dataclass(frozen=True)
class PoolEntry:
    """One distorted image: its reference's id and a description (file name in its set)."""

    ref_id: str
    name: str


@dataclass
class Pool:
    """Distorted images grouped by reference, loaded on demand (``uint8 [H, W, 3]``)."""

    name: str
    entries: list[PoolEntry]
    load_ref: Callable[[str], np.ndarray]
    load_entry: Callable[[int], np.ndarray]
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    def by_ref(self) -> dict[str, list[int]]:
        """Entry indices per reference id, in pool order."""
        out: dict[str, list[int]] = {}
        for i, e in enumerate(self.entries):
            out.setdefault(e.ref_id, []).append(i)
        return out


def _packed(path: Path) -> Pool:
    from ..data.iqa.pack_iqa import PackedCorrelationSet

    cset = PackedCorrelationSet(path)
    ref_index, dist_index = cset.data["ref_index"], cset.data["dist_index"]
    names = [str(n) for n in cset.data["names"]]
    keep = [i for i in range(len(cset)) if int(dist_index[i]) != int(ref_index[i])]
    ids = {int(ref_index[i]): f"r{int(ref_index[i]):06d}" for i in keep}
    entries = [PoolEntry(ids[int(ref_index[i])], names[int(dist_index[i])]) for i in keep]
    by_id = {v: k for k, v in ids.items()}
    return Pool(name=cset.name, entries=entries, load_ref=lambda rid: cset.image(by_id[rid]),
                load_entry=lambda j: cset.image(int(dist_index[keep[j]])), synthetic=cset.synthetic,
                notes=[f"pool: packed {cset.name} ({path.name}), {len(entries)} distorted images"])


def _benchmark(folder: Path, format: str | None) -> Pool:
    from ..data.iqa import detect_format
    from ..data.iqa.detect import CORRELATION_FORMATS
    from ..data.iqa.registry import get_benchmark, load_correlation

    fmt = detect_format(folder, format)
    if fmt not in CORRELATION_FORMATS:
        raise DataError(f"{folder}: a gMAD pool needs a correlation benchmark ({', '.join(CORRELATION_FORMATS)}) "
                        f"or a folder with ref/ and dist/, not {fmt}")
    cset = load_correlation(get_benchmark(fmt), folder, {})
    keep = [i for i in range(len(cset)) if cset.dist[i] != cset.ref[i]]
    refs = {f"r{k:06d}": p for k, p in enumerate(dict.fromkeys(cset.ref[i] for i in keep))}
    ids = {p: rid for rid, p in refs.items()}
    entries = [PoolEntry(ids[cset.ref[i]], cset.dist[i].relative_to(cset.root).as_posix()) for i in keep]
    return Pool(name=cset.name, entries=entries, load_ref=lambda rid: read_rgb(refs[rid]),
                load_entry=lambda j: read_rgb(cset.dist[keep[j]]), synthetic=cset.synthetic,
                notes=[f"pool: {cset.name} at {folder}, {len(entries)} distorted images"])


def _images(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS:
            if p.stem in out:
                raise DataError(f"two images with stem {p.stem!r} in {folder}")
            out[p.stem] = p
    return out


def _own(folder: Path) -> Pool:
    refs = _images(folder / "ref")
    bad = [r for r in refs if STEM_PATTERN.fullmatch(r) is None]
    if bad:
        raise DataError(f"{folder / 'ref'}: reference ids must be safe names (1-64 of A-Z a-z 0-9 _ -), got {bad[:3]}")
    entries: list[PoolEntry] = []
    paths: list[Path] = []
    for rid in refs:
        sub = folder / "dist" / rid
        if not sub.is_dir():
            continue
        for p in _images(sub).values():
            entries.append(PoolEntry(rid, f"dist/{rid}/{p.name}"))
            paths.append(p)
            if len(entries) > MAX_POOL:
                raise DataError(f"{folder}: more than {MAX_POOL} distorted images")
    if not entries:
        raise DataError(f"{folder}: no distorted images in dist/<id>/ for the references in ref/")
    synthetic = (folder / "SYNTHETIC.txt").is_file()
    return Pool(name=folder.name, entries=entries, load_ref=lambda rid: read_rgb(refs[rid]),
                load_entry=lambda j: read_rgb(paths[j]), synthetic=synthetic,
                notes=[f"pool: the folder {folder} (ref/ and dist/), {len(entries)} distorted images"])


def load_pool(source: PathLike, format: str | None = None) -> Pool:
    """The pool in ``source`` (see the module docstring).

    Raises:
        DataError: naming ``source`` when it is none of the accepted kinds or is malformed.
    """
    p = Path(source)
    if not p.exists():
        raise DataError(f"gMAD pool {p} does not exist")
    if p.is_file():
        from ..data.iqa.detect import packed_format

        fmt = packed_format(p)
        if fmt is None or fmt in ("bapps", "nights"):
            raise DataError(f"{p} is not a packed correlation benchmark (bapps-iqa-h5/1, from `bapps pack` of "
                            "TID2013, KADID-10k, PIPAL, LIVE, CSIQ or PieAPP)")
        return _packed(p)
    if (p / "ref").is_dir() and (p / "dist").is_dir() and format is None:
        return _own(p)
    return _benchmark(p, format)


__all__ = ["Pool", "PoolEntry", "load_pool", "MAX_POOL"]
