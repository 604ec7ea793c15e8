"""Which benchmark a folder holds, and the folders of a parent holding several.

:func:`detect_format` looks for each set's signature (its label file and image folders, matched
case-insensitively) and returns the one set that matches; an explicit ``format`` bypasses it.
:func:`find_benchmarks` returns ``(format, folder)`` for a folder that is itself a set, or for
each immediate sub-folder that is one (a folder holding several sets). BAPPS is recognised by its
``2afc/`` or ``jnd/`` folders or as a packed ``.h5`` file, and left to the BAPPS loaders; a packed
``.h5`` is told apart by its attributes (:func:`packed_format`: a packed correlation set, a packed
NIGHTS file, or BAPPS).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..._io import PathLike
from ...errors import DataError
from .base import CaseResolver, CorrelationSet, TwoAFCFileSet
from .registry import benchmark_names, benchmarks, get_benchmark


def __getattr__(name: str) -> tuple[str, ...]:
    """The format lists, read from the registry when asked (so plugins count).

    They are ``FORMATS`` (``bapps`` and every registered set), ``CORRELATION_FORMATS``,
    ``TWOAFC_FORMATS``.
    """
    if name == "FORMATS":
        return ("bapps", *benchmark_names())
    if name == "CORRELATION_FORMATS":
        return benchmark_names("correlation")
    if name == "TWOAFC_FORMATS":
        return ("bapps", *benchmark_names("2afc"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _has(folder: Path, names: tuple[str, ...]) -> bool:
    r = CaseResolver(folder, "detect")
    return all(r.find(n) is not None for n in names)


def _root_attrs(path: PathLike, names: tuple[str, ...]) -> dict[str, str] | None:
    """The root attributes ``names`` of an HDF5 file that hold text, or ``None`` if it won't open.

    Attributes that are not text are left out; a damaged attribute is left for the readers (which
    name it) to report.
    """
    import h5py

    from ..h5safe import H5_ERRORS, attr_text

    try:
        with h5py.File(path, "r") as f:
            out = {}
            for name in names:
                try:
                    value = attr_text(f, path, name, None)
                except DataError:
                    continue
                if value is not None:
                    out[name] = value
            return out
    except H5_ERRORS:
        return None


def packed_marker(path: PathLike) -> str | None:
    """The format marker (``bapps_toolkit_format``) of a packed ``.h5``, ``None`` if it has none."""
    attrs = _root_attrs(path, ("bapps_toolkit_format",))
    return None if attrs is None else attrs.get("bapps_toolkit_format")


def packed_format(path: PathLike) -> str | None:
    """The benchmark a packed ``.h5`` holds.

    That is a correlation set's name (``bapps-iqa-h5/1``), ``"nights"`` (``bapps-h5/1`` with
    ``benchmark = "nights"``, :mod:`.pack_2afc`), ``"bapps"`` (any other ``bapps-h5/1`` file),
    or ``None`` (not a readable file of ours).
    """
    attrs = _root_attrs(path, ("bapps_toolkit_format", "benchmark", "set_name"))
    if attrs is None:
        return None
    text = attrs.get("bapps_toolkit_format")
    if text == "bapps-iqa-h5/1" and "set_name" in attrs:
        return attrs["set_name"]
    if text == "bapps-h5/1":
        name = attrs.get("benchmark", "")
        return name if name in benchmark_names("2afc") else "bapps"
    return None


def is_packed(path: PathLike) -> bool:
    """Whether ``path`` is a file named like an HDF5 file (``.h5`` or ``.hdf5``, any case)."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() in (".h5", ".hdf5")


def _matches(folder: Path) -> list[str]:
    if folder.is_file():
        fmt = packed_format(folder) if is_packed(folder) else None
        return [fmt] if fmt is not None else []
    found = []
    for name, bench in benchmarks().items():
        if any(_has(where, bench.signature) for where in (folder, *(folder / sub for sub in bench.nested))):
            found.append(name)
    if (folder / "2afc").is_dir() or (folder / "jnd").is_dir():
        found.append("bapps")
    return found


def detect_format(folder: PathLike, format: str | None = None) -> str:
    """The format of ``folder`` (``format`` overrides detection, after a name check)."""
    folder = Path(folder)
    if format is not None:
        known = ("bapps", *benchmark_names())
        if format not in known:
            raise DataError(f"unknown benchmark format {format!r}; known: {', '.join(known)} "
                            "(add your own with --benchmark-plugin FILE.py:CLASS)")
        return format
    if not folder.exists():
        raise DataError(f"{folder} does not exist")
    found = _matches(folder)
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"{folder}: no known benchmark layout found (looked for "
                        + "; ".join(f"{n}: {', '.join(b.signature)}" for n, b in benchmarks().items())
                        + "; bapps: 2afc/ or jnd/); name the format explicitly")
    raise DataError(f"{folder} matches several layouts ({', '.join(found)}); name the format explicitly")


def find_benchmarks(folder: PathLike, format: str | None = None) -> list[tuple[str, Path]]:
    """``[(format, path)]``: ``folder`` itself if it is a set, else each sub-folder that is one."""
    folder = Path(folder)
    if format is not None or (folder.exists() and _matches(folder)):
        return [(detect_format(folder, format), folder)]
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist or is not a folder")
    out = []
    for sub in sorted(folder.iterdir()):
        found = _matches(sub)
        if len(found) == 1:
            out.append((found[0], sub))
    if not out:
        detect_format(folder)  # raises the message naming what was looked for
    return out


def iqa_format(source: PathLike) -> str | None:
    """The one non-BAPPS benchmark layout the folder ``source`` holds, else ``None``.

    ``None`` stands for a BAPPS folder, a file, several layouts or none.
    """
    p = Path(source)
    if not p.is_dir():
        return None
    found = _matches(p)
    return found[0] if len(found) == 1 and found[0] != "bapps" else None


def loader(format: str) -> Callable[..., CorrelationSet | TwoAFCFileSet]:
    """The ``load(root, **options)`` of a registered set.

    Its options are ``scores`` for LIVE and ``split`` for a 2AFC set.

    Raises:
        DataError: ``format`` is not a registered set.
    """
    bench = get_benchmark(format)

    def load(root: PathLike, **options: str) -> CorrelationSet | TwoAFCFileSet:
        if "scores" in options:
            options["live_scores"] = options.pop("scores")
        return bench.load(Path(root), options)

    return load


def is_bapps_source(source: PathLike) -> bool:
    """Whether ``source`` is a BAPPS folder root (``2afc/`` or ``jnd/``) or a packed BAPPS ``.h5``.

    A packed IQA set or NIGHTS file is not BAPPS; a missing or foreign ``.h5`` counts as BAPPS, so
    the BAPPS reader names what is wrong with it).
    """
    p = Path(source)
    if p.suffix.lower() in (".h5", ".hdf5"):
        return not p.is_file() or packed_format(p) in ("bapps", None)
    return (p / "2afc").is_dir() or (p / "jnd").is_dir()
