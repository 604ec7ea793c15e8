"""Pack a correlation benchmark (TID2013, KADID-10k, PIPAL, LIVE, CSIQ, PieAPP test) into one HDF5
file, and verify it.

Format ``bapps-iqa-h5/1`` (attribute ``bapps_toolkit_format``, written last): images keep their
**original size** (no resizing: the correlation protocol scores images at native size, and LIVE's
sizes vary), each unique image decoded once (:func:`~bapps_toolkit.data.images.read_rgb`, RGB
uint8) and stored flat:

* ``pixels`` uint8 ``[total]``, ``offsets`` int64 ``[M + 1]``, ``shapes`` int32 ``[M, 3]``,
  ``names`` (path relative to the set root) — image ``k`` is
  ``pixels[offsets[k]:offsets[k+1]].reshape(shapes[k])``;
* per item: ``dist_index``, ``ref_index`` (int32 into the images), ``score`` float64,
  ``dist_type``, ``ref_id`` (strings), ``level`` int32;
* attributes: set name, score name and direction, synthetic flag, counts, toolkit version, and
  the SHA-256 of every array (``sha256:<name>``), which :func:`verify_iqa` recomputes.

The file is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import PathLike, atomic_path
from ..._version import __version__
from ...errors import DataError
from ..images import read_rgb
from .base import CorrelationSet

FORMAT_ATTR = "bapps_toolkit_format"
FORMAT = "bapps-iqa-h5/1"
ARRAYS = ("pixels", "offsets", "shapes", "names", "dist_index", "ref_index", "score", "dist_type",
          "ref_id", "level")


def _digest(a: np.ndarray) -> str:
    h = hashlib.sha256()
    if a.dtype.kind in ("O", "S", "U"):
        for v in a.reshape(-1):
            h.update((v.decode() if isinstance(v, bytes) else str(v)).encode() + b"\0")
    else:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _images(cset: CorrelationSet) -> tuple[list[Path], dict[Path, int]]:
    order: dict[Path, int] = {}
    for p in [*cset.ref, *cset.dist]:
        order.setdefault(p, len(order))
    return list(order), order


def pack_correlation_set(cset: CorrelationSet, out_h5: PathLike) -> Path:
    """Write ``cset`` to ``out_h5`` (format in the module docstring); returns the path."""
    import h5py

    paths, index = _images(cset)
    decoded = [read_rgb(p) for p in paths]
    sizes = np.array([a.size for a in decoded], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "pixels": np.concatenate([a.reshape(-1) for a in decoded]),
        "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "shapes": np.array([a.shape for a in decoded], dtype=np.int32),
        "names": np.array([p.relative_to(cset.root).as_posix() for p in paths], dtype=object),
        "dist_index": np.array([index[p] for p in cset.dist], dtype=np.int32),
        "ref_index": np.array([index[p] for p in cset.ref], dtype=np.int32),
        "score": np.asarray(cset.score, dtype=np.float64),
        "dist_type": np.array(cset.dist_type, dtype=object),
        "ref_id": np.array(cset.ref_id, dtype=object),
        "level": np.asarray(cset.level, dtype=np.int32),
    }
    out = Path(out_h5)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for name, a in arrays.items():
            if a.dtype == object:
                f.create_dataset(name, data=a.astype(str).tolist(), dtype=h5py.string_dtype())
            else:
                f.create_dataset(name, data=a)
            f.attrs[f"sha256:{name}"] = _digest(a)
        f.attrs.update(set_name=cset.name, score_name=cset.score_name, higher_is_better=cset.higher_is_better,
                       synthetic=cset.synthetic, n_items=len(cset), n_images=len(paths),
                       toolkit_version=__version__, size_rule="original sizes kept (no resizing)")
        f.attrs[FORMAT_ATTR] = FORMAT
    return out


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc})") from None
    with f:
        if f.attrs.get(FORMAT_ATTR) != FORMAT:
            raise DataError(f"{path} is not a {FORMAT} file (attribute {FORMAT_ATTR} missing or different)")
        missing = [n for n in ARRAYS if n not in f]
        if missing:
            raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
        attrs = dict(f.attrs)
        data = {}
        for n in ARRAYS:
            ds = f[n]
            data[n] = (np.array(ds.asstr()[()], dtype=object) if h5py.check_string_dtype(ds.dtype)
                       else ds[()])
    return attrs, data


def verify_iqa(path: PathLike) -> dict[str, Any]:
    """Recompute every array's SHA-256 and check counts and indices; returns the attributes."""
    path = Path(path)
    attrs, data = _read(path)
    for key, a in data.items():
        want = attrs.get(f"sha256:{key}")
        if want != _digest(a):
            raise DataError(f"{path}: array {key} does not match its recorded SHA-256 (file corrupt or altered)")
    n_img, n = int(attrs["n_images"]), int(attrs["n_items"])
    if data["offsets"].size != n_img + 1 or data["offsets"][-1] != data["pixels"].size:
        raise DataError(f"{path}: offsets do not cover the pixels of {n_img} images")
    if np.any(np.prod(data["shapes"].astype(np.int64), axis=1) != np.diff(data["offsets"])):
        raise DataError(f"{path}: shapes disagree with offsets")
    for k in ("dist_index", "ref_index", "score", "dist_type", "ref_id", "level"):
        if data[k].shape[0] != n:
            raise DataError(f"{path}: array {k} has {data[k].shape[0]} entries, expected {n}")
    for k in ("dist_index", "ref_index"):
        if data[k].size and (data[k].min() < 0 or data[k].max() >= n_img):
            raise DataError(f"{path}: array {k} points outside the {n_img} images")
    return attrs


class PackedCorrelationSet:
    """A packed set read back (after :func:`verify_iqa`): ``image(k)``, ``pair(i)``, labels."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.attrs = verify_iqa(self.path)
        _, self.data = _read(self.path)
        self.score = self.data["score"]
        self.ref_id = [str(v) for v in self.data["ref_id"]]
        self.dist_type = [str(v) for v in self.data["dist_type"]]
        self.higher_is_better = bool(self.attrs["higher_is_better"])
        self.synthetic = bool(self.attrs["synthetic"])
        self.name = str(self.attrs["set_name"])

    def __len__(self) -> int:
        return int(self.score.size)

    def image(self, k: int) -> np.ndarray:
        o = self.data["offsets"]
        return self.data["pixels"][o[k]:o[k + 1]].reshape(tuple(self.data["shapes"][k]))

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(reference, distorted)`` uint8 HWC of item ``i``."""
        return self.image(int(self.data["ref_index"][i])), self.image(int(self.data["dist_index"][i]))

    @property
    def score_name(self) -> str:
        return str(self.attrs.get("score_name", ""))

    @property
    def notes(self) -> list[str]:
        return []


def pack_benchmark(root: PathLike, out_h5: PathLike, *, format: str | None = None, size: int | None = None,
                   live_scores: str = "realigned", pairs: bool = False, force: bool = False,
                   workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Pack the benchmark in ``root`` (detected, or ``format``) into ``out_h5``; returns a summary
    ``{"format", "path", "items", "size_rule", "synthetic", "sets", "notes"}``.

    Correlation sets keep their images' original sizes (``size`` must be ``None``) in
    ``bapps-iqa-h5/1``; NIGHTS goes to the BAPPS format at ``size`` (default 224, bicubic; see
    :mod:`.pack_2afc`); ``pairs=True`` packs PieAPP's labelled pairs instead of its test scores
    (BAPPS format, :func:`.pack_2afc.pack_pieapp_pairs`). An existing ``out_h5`` is refused
    unless ``force``.
    """
    from .detect import CORRELATION_FORMATS, detect_format, loader
    from .pack_2afc import NIGHTS_SIZE, pack_nights, pack_pieapp_pairs

    fmt = detect_format(root, format)
    out = Path(out_h5)
    if pairs and fmt != "pieapp":
        raise DataError(f"--pairs: only PieAPP has labelled pairs to pack as 2AFC, not {fmt}")
    if fmt == "nights" or pairs:
        if fmt == "nights":
            path, notes = pack_nights(root, out, size=NIGHTS_SIZE if size is None else size, force=force,
                                      workers=workers, progress=progress)
        else:
            path, notes = pack_pieapp_pairs(root, out, size=size, force=force, workers=workers, progress=progress)
        import h5py

        with h5py.File(path, "r") as f:
            counts = {k: int(v) for k, v in json.loads(f.attrs["counts"]).items()}
            synthetic, rule = bool(f.attrs["synthetic"]), str(f.attrs["size_rule"])
        return dict(format=fmt, path=path, items=sum(counts.values()), size_rule=rule,
                    synthetic=synthetic, sets=counts, notes=notes)
    if fmt not in CORRELATION_FORMATS:
        raise DataError(f"{root}: format {fmt!r} is not an IQA benchmark; pack BAPPS folders with "
                        "`bapps pack ROOT OUT.h5`")
    if size is not None:
        raise DataError(f"--size {size}: {fmt} is a correlation set, packed at its images' original sizes "
                        "(the correlation protocol scores images at native size); drop --size")
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; pass --force (force=True) to overwrite it")
    cset = loader(fmt)(root, scores=live_scores) if fmt == "live" else loader(fmt)(root)
    path = pack_correlation_set(cset, out)
    attrs = verify_iqa(path)
    return dict(format=fmt, path=path, items=int(attrs["n_items"]), size_rule=str(attrs["size_rule"]),
                synthetic=bool(attrs["synthetic"]), sets={fmt: int(attrs["n_items"])}, notes=list(cset.notes))
