"""Pack a correlation benchmark into one HDF5 file, and verify it.

The benchmarks are TID2013, KADID-10k, PIPAL, LIVE, CSIQ and the PieAPP test set.

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
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from ..._io import PathLike, atomic_path
from ..._version import __version__
from ...errors import DataError
from ..images import read_rgb
from .base import CorrelationSet
from .registry import PackRequest, PackSummary

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


class IqaAttrs(TypedDict):
    """The attributes of a ``bapps-iqa-h5/1`` file, checked (:func:`verify_iqa`)."""

    set_name: str
    score_name: str
    higher_is_better: bool
    synthetic: bool
    n_items: int
    n_images: int
    size_rule: str
    toolkit_version: str


#: Array -> (what it holds, its shape: "M" images, "N" items, "total" any length).
_SCHEMA: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "pixels": ("uint8", ("total",)), "offsets": ("integers", ("M+1",)), "shapes": ("integers", ("M", 3)),
    "names": ("strings", ("M",)), "dist_index": ("integers", ("N",)), "ref_index": ("integers", ("N",)),
    "score": ("floats", ("N",)), "dist_type": ("strings", ("N",)), "ref_id": ("strings", ("N",)),
    "level": ("integers", ("N",)),
}


def _is_text(dtype: np.dtype) -> bool:
    import h5py

    return dtype.kind == "S" or h5py.check_string_dtype(dtype) is not None


def _fits(ds: Any, holds: str, shape: tuple[int | None, ...]) -> bool:
    """``ds`` holds ``holds`` (a :data:`_SCHEMA` word) in ``shape`` (``None``: any length)."""
    dt = ds.dtype
    ok_type = {"uint8": dt == np.uint8, "integers": dt.kind in "iu", "floats": dt.kind == "f",
               "strings": _is_text(dt)}[holds]
    return bool(ok_type) and len(ds.shape) == len(shape) and all(
        w is None or a == w for a, w in zip(ds.shape, shape, strict=True))


def _open(path: Path) -> tuple[Any, IqaAttrs, dict[str, Any]]:
    """Open ``path`` read-only and check it; return ``(file, attributes, {name: dataset})``.

    Its marker, attributes and every array's dtype, shape and storage are checked against the
    schema and the file's size (nothing of the arrays is read). The caller closes the file.
    """
    import h5py

    from ..h5safe import H5_ERRORS

    if not path.is_file() or not h5py.is_hdf5(str(path)):
        raise DataError(f"{path} is not a readable HDF5 file (missing, a folder, or not HDF5)")
    try:
        f = h5py.File(path, "r")
    except H5_ERRORS as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc})") from None
    try:
        attrs = _attrs(f, path)
        return f, attrs, _datasets(f, path, attrs)
    except BaseException:
        f.close()
        raise


def _attrs(f: Any, path: Path) -> IqaAttrs:
    from ..h5safe import attr_bool, attr_int, attr_text

    if attr_text(f, path, FORMAT_ATTR, None) != FORMAT:
        raise DataError(f"{path} is not a {FORMAT} file (attribute {FORMAT_ATTR} missing or different)")
    return IqaAttrs(set_name=attr_text(f, path, "set_name"), score_name=attr_text(f, path, "score_name", ""),
                    higher_is_better=attr_bool(f, path, "higher_is_better"),
                    synthetic=attr_bool(f, path, "synthetic", False),
                    n_items=attr_int(f, path, "n_items", minimum=1), n_images=attr_int(f, path, "n_images", minimum=1),
                    size_rule=attr_text(f, path, "size_rule", ""),
                    toolkit_version=attr_text(f, path, "toolkit_version", ""))


def _datasets(f: Any, path: Path, attrs: IqaAttrs) -> dict[str, Any]:
    import h5py

    from ..h5safe import check_storage, file_size, member

    found: dict[str, Any] = {n: member(f, path, n, "array") for n in ARRAYS}
    missing = [n for n, ds in found.items() if not isinstance(ds, h5py.Dataset)]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
    m, n = attrs["n_images"], attrs["n_items"]
    dims: dict[str | int, int | None] = {"M": m, "M+1": m + 1, "N": n, "total": None, 3: 3}
    disk = file_size(path)
    for name, ds in found.items():
        holds, shape = _SCHEMA[name]
        if not _fits(ds, holds, tuple(dims[d] for d in shape)):
            raise DataError(f"{path}: array /{name} is {ds.dtype} {ds.shape}, expected {holds} "
                            f"({', '.join(str(d) for d in shape)},) with M = attribute 'n_images' = {m}, "
                            f"N = attribute 'n_items' = {n}")
        check_storage(ds, path, disk)
    return found


def _read(path: Path, ds: Any) -> np.ndarray:
    """A checked dataset read whole (text arrays as ``object`` arrays of ``str``)."""
    from ..h5safe import read_rows

    a = read_rows(ds, path)
    if _is_text(ds.dtype):
        try:
            return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in a], dtype=object)
        except UnicodeDecodeError:
            raise DataError(f"{path}: array /{ds.name.lstrip('/')} holds text that is not UTF-8") from None
    return a


def _stream_digest(path: Path, ds: Any) -> str:
    """:func:`_digest` of ``ds`` computed a bounded block at a time."""
    from ..h5safe import iter_blocks

    h = hashlib.sha256()
    text = ds.dtype.kind in "OS"
    for _, block in iter_blocks(ds, path):
        if text:
            for v in block.reshape(-1):
                h.update((v.decode() if isinstance(v, bytes) else str(v)).encode() + b"\0")
        else:
            h.update(np.ascontiguousarray(block).data)
    return h.hexdigest()


def _check_index(path: Path, attrs: IqaAttrs, meta: dict[str, np.ndarray], n_pixels: int) -> None:
    """Offsets, shapes and indices consistent with each other and with ``n_pixels``."""
    n_img = attrs["n_images"]
    offsets, shapes = meta["offsets"].astype(np.int64), meta["shapes"].astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != n_pixels or np.any(np.diff(offsets) < 0):
        raise DataError(f"{path}: offsets do not cover the pixels of {n_img} images")
    if np.any(shapes < 1) or np.any(shapes[:, 2] != 3) or np.any(np.prod(shapes, axis=1) != np.diff(offsets)):
        raise DataError(f"{path}: shapes disagree with offsets (each image is H x W x 3)")
    for k in ("dist_index", "ref_index"):
        if meta[k].size and (meta[k].min() < 0 or meta[k].max() >= n_img):
            raise DataError(f"{path}: array {k} points outside the {n_img} images")


def verify_iqa(path: PathLike) -> IqaAttrs:
    """Check a ``bapps-iqa-h5/1`` file completely.

    Schema and storage are checked first, then every array's SHA-256 (read a bounded block at a
    time), the counts and the indices.

    Args:
        path: the packed file.

    Returns:
        Its checked attributes.

    Raises:
        DataError: naming the file and the attribute or array at fault.
    """
    from ..h5safe import attr_digest

    path = Path(path)
    f, attrs, found = _open(path)
    with f:
        for name, ds in found.items():
            if attr_digest(f, path, f"sha256:{name}") != _stream_digest(path, ds):
                raise DataError(f"{path}: array {name} does not match its recorded SHA-256 (attribute "
                                f"'sha256:{name}'; file corrupt or altered)")
        meta = {n: _read(path, ds) for n, ds in found.items() if n != "pixels"}
        _check_index(path, attrs, meta, int(found["pixels"].shape[0]))
    return attrs


class PackedCorrelationSet:
    """A packed set read back (after :func:`verify_iqa`): ``image(k)``, ``pair(i)``, labels.

    The per-item and per-image arrays are held in memory; pixels are read from the file one
    image at a time (the file stays open until :meth:`close`).
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.attrs = verify_iqa(self.path)
        self._f, _, found = _open(self.path)
        self._pixels = found["pixels"]
        self.data = {n: _read(self.path, ds) for n, ds in found.items() if n != "pixels"}
        self.score = self.data["score"]
        self.ref_id = [str(v) for v in self.data["ref_id"]]
        self.dist_type = [str(v) for v in self.data["dist_type"]]
        self.higher_is_better = self.attrs["higher_is_better"]
        self.synthetic = self.attrs["synthetic"]
        self.name = self.attrs["set_name"]

    def __len__(self) -> int:
        return int(self.score.size)

    def image(self, k: int) -> np.ndarray:
        """Image ``k`` as uint8 HWC, read from the file."""
        from ..h5safe import read_rows

        o = self.data["offsets"]
        flat = read_rows(self._pixels, self.path, int(o[k]), int(o[k + 1]))
        return flat.reshape(tuple(int(d) for d in self.data["shapes"][k]))

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(reference, distorted)`` uint8 HWC of item ``i``."""
        return self.image(int(self.data["ref_index"][i])), self.image(int(self.data["dist_index"][i]))

    def close(self) -> None:
        """Close the file (further :meth:`image` calls fail)."""
        self._f.close()

    @property
    def score_name(self) -> str:
        """The name of the set's score (e.g. MOS or DMOS), from the file's attributes."""
        return self.attrs["score_name"]

    @property
    def notes(self) -> list[str]:
        """Loader notes; a packed file carries none."""
        return []


def pack_loaded_set(name: str, cset: CorrelationSet, out: PathLike) -> PackSummary:
    """Pack a loaded correlation set into ``out`` and verify the file.

    Args:
        name: the benchmark's registry name.
        cset: the loaded set.
        out: the file to write.

    Returns:
        What was written.
    """
    path = pack_correlation_set(cset, out)
    attrs = verify_iqa(path)
    return PackSummary(format=name, path=path, items=int(attrs["n_items"]), size_rule=str(attrs["size_rule"]),
                       synthetic=bool(attrs["synthetic"]), sets={name: int(attrs["n_items"])}, notes=list(cset.notes))


def pack_benchmark(root: PathLike, out_h5: PathLike, *, format: str | None = None, size: int | None = None,
                   live_scores: str = "realigned", pairs: bool = False, force: bool = False,
                   workers: int | None = None, progress: bool = True) -> PackSummary:
    """Pack the benchmark in ``root`` (detected, or ``format``) into ``out_h5``.

    Correlation sets keep their images' original sizes (``size`` must be ``None``) in
    ``bapps-iqa-h5/1``; NIGHTS goes to the BAPPS format at ``size`` (default 224, bicubic; see
    :mod:`.pack_2afc`); ``pairs=True`` packs PieAPP's labelled pairs instead of its test scores
    (BAPPS format, :func:`.pieapp.pack_pieapp_pairs`). Each set packs by its registry entry
    (:meth:`.registry.Benchmark.pack`).

    Args:
        root: the benchmark folder.
        out_h5: the file to write; an existing one is refused unless ``force``.
        format: the benchmark's registry name (default: detected).
        size: image side (2AFC sets), ``None`` for the set's rule.
        live_scores: LIVE's score file (``realigned`` or ``dmos``).
        pairs: PieAPP: pack the labelled pairs.
        force: overwrite ``out_h5``.
        workers: decode processes.
        progress: show a progress bar.

    Returns:
        What was written.

    Raises:
        DataError: ``root`` holds no known set, or ``format`` names BAPPS or an unknown set.
    """
    from .detect import detect_format
    from .registry import get_benchmark

    fmt = detect_format(root, format)
    if fmt == "bapps":
        raise DataError(f"{root}: format {fmt!r} is not an IQA benchmark; pack BAPPS folders with "
                        "`bapps pack ROOT OUT.h5`")
    request = PackRequest(size=size, options={"live_scores": live_scores}, pairs=pairs, force=force,
                          workers=workers, progress=progress)
    return get_benchmark(fmt).pack(Path(root), Path(out_h5), request)
