"""Pack a 2AFC benchmark held as files into the toolkit's BAPPS format ``bapps-h5/1``.

The benchmark is NIGHTS or any :class:`~.base.TwoAFCFileSet`; the format is that of
:mod:`bapps_toolkit.data.h5format`, so that ``bapps train`` trains on it and ``bapps evaluate``
scores it exactly as it does BAPPS.

**Size rule** (stated in the file's ``size_rule`` attribute): every image is decoded to RGB
(:func:`~bapps_toolkit.data.images.read_rgb`) and resized to ``size``×``size`` with PIL's bicubic
filter, without cropping — DreamSim's preprocessing ``Resize((224, 224), BICUBIC)`` (Fu et al.,
NeurIPS 2023) — unless it already has that size. The default for NIGHTS is 224, the input size
of DreamSim's evaluation and the size ``bapps evaluate`` uses on a NIGHTS folder, so a folder and
its packed file give the same figures. ``size=64`` gives BAPPS-sized patches (cheaper training:
the network sees patches as in the LPIPS paper). One rule for every set of a file.

**Keys** (the BAPPS format has the splits ``train`` and ``val`` only, so NIGHTS' test parts are
``val``-split categories whose names say *test*)::

    2afc/train/nights                    NIGHTS train
    2afc/val/nights                      NIGHTS val
    2afc/val/nights-test-imagenet        NIGHTS test, is_imagenet True
    2afc/val/nights-test-no-imagenet     NIGHTS test, is_imagenet False

The file's attributes ``benchmark = "nights"`` and ``parts`` (JSON: NIGHTS part -> key) let
``bapps evaluate`` score it by the NIGHTS protocol (val, the two test parts and their
count-weighted total). Training with ``--val`` should name ``--val-datasets val/nights``, or it
also reports the test parts. A split with no rows (``votes >= 6``) is left out and said so.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import FileLock, PathLike, atomic_path
from ..._version import __version__
from ...errors import DataError
from ..decode import decode_pool, make_bar
from ..h5format import FORMAT, FORMAT_ATTR
from ..ids import id_key, id_problem
from .base import TwoAFCFileSet
from .registry import Benchmark, PackSummary

NIGHTS_SIZE = 224
#: NIGHTS part -> set key of the packed file.
NIGHTS_KEYS = {"train": "2afc/train/nights", "val": "2afc/val/nights",
               "test_imagenet": "2afc/val/nights-test-imagenet",
               "test_no_imagenet": "2afc/val/nights-test-no-imagenet"}
SIZE_RULE = ("each image resized to {s}x{s} with PIL bicubic, no crop (DreamSim's "
             "Resize(({s}, {s}), BICUBIC)); an image already {s}x{s} kept as is")
_CHUNK = 128


def resize_bicubic(img: np.ndarray, size: int | None) -> np.ndarray:
    """``img`` (uint8 HWC) resized to ``size``×``size`` by PIL bicubic (``None``: unchanged)."""
    if size is None or img.shape[:2] == (size, size):
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def read_resized(path: PathLike, size: int | None) -> np.ndarray:
    """Decode ``path`` to RGB uint8 and apply :func:`resize_bicubic` (the module's size rule)."""
    from ..images import read_rgb

    return resize_bicubic(read_rgb(path), size)


def _decode_chunk(paths: tuple[str, ...], size: int) -> np.ndarray:
    """Worker: one chunk of images at ``size`` (module level so it pickles)."""
    return np.stack([read_resized(p, size) for p in paths])


def _stems(tset: TwoAFCFileSet) -> list[str]:
    """The items' stems: the p0 files' paths below the root with ``/`` as ``_``, or item numbers.

    The item numbers (``000000``…) are used when the paths are not all valid, unique item ids
    (:mod:`..ids`).
    """
    stems = []
    for p in tset.p0:
        try:
            rel = p.relative_to(tset.root).with_suffix("").as_posix()
        except ValueError:
            rel = p.stem
        stems.append(rel.replace("/", "_"))
    if any(id_problem(s) for s in stems) or len({id_key(s) for s in stems}) != len(stems):
        stems = [f"{i:06d}" for i in range(len(stems))]
    return stems


def _write_set(f: Any, key: str, tset: TwoAFCFileSet, size: int, pool: Any, bar: Any) -> None:
    import hashlib

    from ..pack import chunk_rows, create_set_group, write_judgments_and_stems

    n = len(tset)
    g = create_set_group(f, key, n)
    g.attrs["size"] = size
    for name, paths in (("ref", tset.ref), ("p0", tset.p0), ("p1", tset.p1)):
        ds = g.create_dataset(name, shape=(n, size, size, 3), dtype=np.uint8, chunks=(chunk_rows(n), size, size, 3))
        h = hashlib.sha256()
        chunks = [tuple(str(p) for p in paths[s:s + _CHUNK]) for s in range(0, n, _CHUNK)]
        results = (pool.map(_decode_chunk, chunks, [size] * len(chunks)) if pool is not None
                   else (_decode_chunk(c, size) for c in chunks))
        for k, arr in enumerate(results):
            ds[k * _CHUNK:k * _CHUNK + len(arr)] = arr
            h.update(np.ascontiguousarray(arr).data)
            bar.update(len(arr))
        ds.attrs["sha256"] = h.hexdigest()
    write_judgments_and_stems(g, "judge", np.asarray(tset.judge, dtype=np.float32), _stems(tset))


def write_2afc_file_sets(out_h5: PathLike, sets: dict[str, TwoAFCFileSet], *, size: int,
                         attrs: dict[str, Any] | None = None, force: bool = False,
                         workers: int | None = None, progress: bool = True) -> Path:
    """Write ``sets`` (key -> triplets on disk) as one ``bapps-h5/1`` file at ``size``.

    The size rule is in the module docstring. The file is written atomically, under a lock;
    ``attrs`` are added to the file's.
    """
    import h5py

    from ..layout import order_keys, split_key

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"size must be a positive number of pixels, got {size!r}")
    for key in sets:
        split_key(key)
    keys = order_keys(sets)
    out = Path(out_h5)
    n_images = 3 * sum(len(s) for s in sets.values())
    with FileLock(out, "packed file"):
        if out.exists() and not force:
            raise FileExistsError(f"{out} already exists; pass --force (force=True) to overwrite it")
        bar = make_bar(n_images, f"pack {out.name}", progress)
        try:
            with atomic_path(out) as tmp, decode_pool(workers, n_images) as pool, \
                    h5py.File(tmp, "w", libver="latest") as f:
                for key in keys:
                    _write_set(f, key, sets[key], size, pool, bar)
                first = sets[keys[0]]
                f.attrs.update({"source": str(Path(first.root).resolve()), "toolkit_version": __version__,
                                "synthetic": any(s.synthetic for s in sets.values()), "keys": json.dumps(keys),
                                "counts": json.dumps({k: len(sets[k]) for k in keys}),
                                "size_rule": SIZE_RULE.format(s=size), **(attrs or {})})
                f.attrs[FORMAT_ATTR] = FORMAT
        finally:
            bar.close()
    return out


def two_afc_sets(bench: Benchmark, root: PathLike, parts: Sequence[str]
                 ) -> tuple[dict[str, TwoAFCFileSet], list[str]]:
    """``({part: set}, notes)``: the ``parts`` of the 2AFC set ``bench`` present in ``root``.

    A part without rows is left out with a note; any other error is raised.

    Raises:
        DataError: no part has rows, or a part is unsound.
    """
    sets, notes = {}, []
    for part in parts:
        try:
            tset = bench.load(Path(root), {"split": part})
        except DataError as exc:
            if "no rows of split" not in str(exc):
                raise
            notes.append(f"{bench.name}: {exc}; left out")
            continue
        if not isinstance(tset, TwoAFCFileSet):
            raise DataError(f"benchmark {bench.name!r}: load() returned {type(tset).__name__}, "
                            "expected a TwoAFCFileSet")
        sets[part] = tset
    if not sets:
        raise DataError(f"{bench.name}: no split of {root} has rows; nothing to use")
    return sets, notes


def nights_sets(root: PathLike, parts: Sequence[str] = tuple(NIGHTS_KEYS)
                ) -> tuple[dict[str, TwoAFCFileSet], list[str]]:
    """``({part: set}, notes)``: the NIGHTS ``parts`` present in ``root`` (a part without rows is a note)."""
    from .registry import get_benchmark

    try:
        return two_afc_sets(get_benchmark("nights"), root, parts)
    except DataError as exc:
        if "nothing to use" in str(exc):
            raise DataError(f"nights: no split of {root} has rows with votes >= 6; nothing to pack") from None
        raise


def pack_nights(root: PathLike, out_h5: PathLike, *, size: int = NIGHTS_SIZE, force: bool = False,
                workers: int | None = None, progress: bool = True) -> tuple[Path, list[str]]:
    """Pack NIGHTS (keys and size rule in the module docstring); returns ``(path, notes)``."""
    found, notes = nights_sets(root)
    parts = {part: NIGHTS_KEYS[part] for part in found}
    sets = {NIGHTS_KEYS[part]: tset for part, tset in found.items()}
    out = write_2afc_file_sets(out_h5, sets, size=size, force=force, workers=workers, progress=progress,
                               attrs={"benchmark": "nights", "parts": json.dumps(parts)})
    return out, notes


def packed_parts(path: PathLike) -> tuple[dict[str, str], str, dict[str, int], bool]:
    """What a packed 2AFC benchmark file says of itself, checked (:func:`~..h5format.open_h5`).

    Args:
        path: a ``bapps-h5/1`` file written by :func:`write_2afc_file_sets`.

    Returns:
        ``(parts, size_rule, counts, synthetic)``: the ``parts`` attribute (benchmark part ->
        set key of the file; empty when absent), the ``size_rule`` attribute, items per set and
        the synthetic flag.

    Raises:
        DataError: the file or one of these attributes is unsound, naming the file and the attribute.
    """
    from ..h5format import open_h5
    from ..h5safe import attr_json, attr_text

    f, info = open_h5(path)
    with f:
        parts = attr_json(f, path, "parts", {})
        rule = attr_text(f, path, "size_rule", "")
    if not isinstance(parts, dict) or not all(isinstance(k, str) and v in info["keys"] for k, v in parts.items()):
        raise DataError(f"{path}: attribute 'parts' of / is {str(parts)[:80]!r}, expected an object "
                        "{part: set key of this file}")
    return dict(parts), rule, dict(info["counts"]), bool(info["synthetic"])


def summary_of(name: str, path: Path, notes: list[str]) -> PackSummary:
    """The :class:`~.registry.PackSummary` of a packed 2AFC file of benchmark ``name``."""
    _, rule, counts, synthetic = packed_parts(path)
    return PackSummary(format=name, path=path, items=sum(counts.values()), size_rule=rule, synthetic=synthetic,
                       sets=counts, notes=list(notes))
