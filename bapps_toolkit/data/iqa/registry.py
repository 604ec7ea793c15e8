"""The benchmark registry: one object per human-judgment data set, read by every command.

A benchmark is an object with the attributes and methods of :class:`Benchmark` (its name, kind,
help text, citation, the files that identify its folder, where to download it, how to load and
pack it). ``bapps download``, ``bapps pack``, ``bapps verify`` and ``bapps evaluate`` (and their
``--help`` texts) ask this registry, so one file adds a data set to all of them:

* the built-in sets (TID2013, KADID-10k, PIPAL, LIVE, CSIQ, PieAPP, NIGHTS) register themselves
  with :func:`register_benchmark` in their modules, which :data:`BUILTIN_MODULES` lists;
* an installed distribution adds sets through the entry-point group :data:`ENTRY_POINT_GROUP`
  (``my-set = my_pkg.bench:MySet``);
* a file or module the user names on the command line (``--benchmark-plugin toy.py:Toy`` or
  ``my_pkg.bench:MySet``) is loaded by :func:`load_benchmark_plugin`. Like a metric plugin spec,
  such a spec is code the user chose to run; no data file ever names one.

Most sets subclass :class:`~.defaults.CorrelationBenchmark` or :class:`~.defaults.TwoAFCBenchmark`,
which hold the defaults, and implement :meth:`Benchmark.load` only.

Example:
    >>> from bapps_toolkit.data.iqa.registry import get_benchmark
    >>> get_benchmark("tid2013").kind
    'correlation'
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar, runtime_checkable

from ..._plugin_files import PluginFileError, resolve_spec
from ...errors import DataError
from .base import CorrelationSet, TwoAFCFileSet

#: Entry-point group through which an installed distribution adds benchmarks.
ENTRY_POINT_GROUP = "bapps_toolkit.benchmarks"
#: Modules of :mod:`bapps_toolkit.data.iqa` that register the built-in sets (in this order).
BUILTIN_MODULES = ("tid2013", "kadid10k", "pipal", "live", "csiq", "pieapp", "nights")
#: The kinds of benchmark: per-image subjective scores, or two-alternative forced choices.
KINDS = ("correlation", "2afc")
BenchmarkKind = Literal["correlation", "2afc"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class Remote:
    """A file to fetch: ``url`` into ``<root>/<set>/<name>``; ``unpack``: a ``.zip`` to extract there."""

    url: str
    name: str
    unpack: bool


@dataclass(frozen=True)
class PackRequest:
    """How ``bapps pack`` was asked to pack a benchmark folder.

    Attributes:
        size: the side the images are resized to (``None``: the set's own rule).
        options: load options (:meth:`Benchmark.load`), e.g. ``{"live_scores": "dmos"}``.
        pairs: pack a set's labelled pairs as 2AFC sets instead of its scores (PieAPP).
        force: overwrite an existing output file.
        workers: decode processes (``None``: every core).
        progress: show a progress bar.
    """

    size: int | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    pairs: bool = False
    force: bool = False
    workers: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class PackSummary:
    """What packing a benchmark wrote.

    Attributes:
        format: the benchmark's name.
        path: the file written.
        items: items over every packed set.
        size_rule: how images were sized, as the file records it.
        synthetic: the data is a synthetic replica.
        sets: items per packed set (set name or key).
        notes: what was left out, and why.
    """

    format: str
    path: Path
    items: int
    size_rule: str
    synthetic: bool
    sets: dict[str, int]
    notes: list[str]


@runtime_checkable
class Benchmark(Protocol):
    """What the toolkit needs to know of a human-judgment data set.

    Attributes:
        name: lower-case identifier used on the command line (``tid2013``).
        title: the set's usual spelling (``TID2013``).
        kind: ``"correlation"`` (a subjective score per distorted image) or ``"2afc"``.
        description: one line for ``--help`` (size, score, what it holds).
        citation: the paper to cite.
        signature: files and folders that identify the set's root (matched case-insensitively).
        nested: sub-folders the archive unpacks into, where the signature may also be found.
        sources: files ``bapps download`` fetches (empty when the set cannot be fetched).
        manual: what to do by hand when ``sources`` is empty (``{dest}``: the target folder).
        after_download: what is left to do after a download (``{dest}``), or ``""``.
        parts: the splits ``bapps evaluate`` scores of a 2AFC set (empty for a correlation set).
        joined: 2AFC parts reported together as one more part (``{"test": ("a", "b")}``).
    """

    name: str
    title: str
    kind: BenchmarkKind
    description: str
    citation: str
    signature: tuple[str, ...]
    nested: tuple[str, ...]
    sources: tuple[Remote, ...]
    manual: str
    after_download: str
    parts: tuple[str, ...]
    joined: Mapping[str, tuple[str, ...]]

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet | TwoAFCFileSet:
        """Read the set in ``root``.

        Args:
            root: the folder holding the set (its :attr:`signature`).
            options: load options; ``split`` names the part of a 2AFC set, ``live_scores`` is
                LIVE's score file; a set ignores the options it has no use for.

        Returns:
            A checked :class:`~.base.CorrelationSet` or :class:`~.base.TwoAFCFileSet`.
        """
        ...

    def pack(self, root: Path, out: Path, request: PackRequest) -> PackSummary:
        """Pack the set in ``root`` into the HDF5 file ``out``.

        Args:
            root: the folder holding the set.
            out: the file to write (temporary name, then renamed).
            request: how ``bapps pack`` was asked to pack it.

        Returns:
            What was written.
        """
        ...


_MEMBERS = ("name", "title", "kind", "description", "citation", "signature", "nested", "sources", "manual",
            "after_download", "parts", "joined", "load", "pack")
_REGISTRY: dict[str, Benchmark] = {}
#: ``sys.path`` when the entry points were last read (they change when it does).
_SCANNED: list[tuple[str, ...]] = []
_B = TypeVar("_B")


def _check(obj: object, where: str) -> Benchmark:
    bench = obj() if isinstance(obj, type) else obj
    if not isinstance(bench, Benchmark):
        missing = [a for a in _MEMBERS if not hasattr(bench, a)]
        raise DataError(f"{where}: {type(bench).__name__} is not a benchmark (missing: {', '.join(missing)})")
    if not isinstance(bench.name, str) or not _NAME.match(bench.name):
        raise DataError(f"{where}: benchmark name {bench.name!r} should be 1-40 of a-z 0-9 _ - "
                        "(starting with a letter or digit)")
    if bench.name == "bapps":
        raise DataError(f"{where}: the name 'bapps' is taken by the BAPPS loaders")
    if bench.kind not in KINDS:
        raise DataError(f"{where}: benchmark {bench.name!r} has kind {bench.kind!r}; "
                        f"expected one of {', '.join(KINDS)}")
    if not bench.signature:
        raise DataError(f"{where}: benchmark {bench.name!r} has an empty signature (no file identifies its folder)")
    return bench


def register_benchmark(obj: _B) -> _B:
    """Add a benchmark (a class, instantiated without arguments, or an instance) to the registry.

    Usable as a class decorator. Registering the same class again is a no-op.

    Args:
        obj: the benchmark class or object.

    Returns:
        ``obj`` unchanged.

    Raises:
        DataError: ``obj`` lacks an attribute of :class:`Benchmark`, has an invalid name or kind,
            or another benchmark already holds its name.
    """
    bench = _check(obj, f"register_benchmark({getattr(obj, '__name__', type(obj).__name__)})")
    old = _REGISTRY.get(bench.name)
    if old is not None and type(old) is not type(bench):
        raise DataError(f"benchmark name {bench.name!r} is already registered by {type(old).__qualname__}")
    _REGISTRY.setdefault(bench.name, bench)
    return obj


def unregister_benchmark(name: str) -> None:
    """Remove the set ``name`` from the registry (a plugin's, when a session is done with it).

    Raises:
        DataError: ``name`` is a built-in set, or is not registered.
    """
    if name not in _REGISTRY:
        raise DataError(f"benchmark {name!r} is not registered")
    if type(_REGISTRY[name]).__module__.startswith(f"{__package__}."):
        raise DataError(f"benchmark {name!r} is built in; it cannot be removed")
    del _REGISTRY[name]
    _SCANNED.clear()


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load_all() -> None:
    """Import the built-in modules (once) and register the entry points (again when ``sys.path`` changed)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    if _SCANNED and _SCANNED[0] == tuple(sys.path):
        return
    _SCANNED[:] = [tuple(sys.path)]
    for ep in _entry_points():
        try:
            register_benchmark(ep.load())
        except Exception as exc:
            raise DataError(f"benchmark entry point {ep.name!r} ({ep.value}, group {ENTRY_POINT_GROUP}): "
                            f"loading failed: {type(exc).__name__}: {exc}") from exc


def benchmarks() -> dict[str, Benchmark]:
    """``{name: benchmark}`` of every registered set: built-ins first, then entry points and plugins."""
    _load_all()
    order = [n for n in BUILTIN_MODULES if n in _REGISTRY] + [n for n in _REGISTRY if n not in BUILTIN_MODULES]
    return {n: _REGISTRY[n] for n in order}


def benchmark_names(kind: BenchmarkKind | None = None) -> tuple[str, ...]:
    """Names of the registered sets (of ``kind`` when given), in registration order."""
    return tuple(n for n, b in benchmarks().items() if kind is None or b.kind == kind)


def get_benchmark(name: str) -> Benchmark:
    """The registered set ``name``.

    Raises:
        DataError: no set of that name is registered (the message lists those that are).
    """
    found = benchmarks().get(name)
    if found is None:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(benchmarks())} "
                        "(add your own with --benchmark-plugin FILE.py:CLASS)")
    return found


def load_benchmark_plugin(spec: str) -> Benchmark:
    """Load and register the benchmark that ``spec`` names (code the user chose to run).

    Args:
        spec: ``path/to/file.py:Attr``, ``package.module:Attr`` or an entry-point name of
            :data:`ENTRY_POINT_GROUP`.

    Returns:
        The registered benchmark.

    Raises:
        DataError: the spec is malformed, its file or module cannot be imported, or what it
            names is not a benchmark.
    """
    _load_all()
    for ep in _entry_points():
        if ep.name == spec:
            return get_benchmark(_check(ep.load(), f"entry point {spec!r}").name)
    try:
        obj = resolve_spec(spec, "_bapps_benchmark", reuse=True,
                           expected="path/to/file.py:Class or package.module:Class")
    except PluginFileError as exc:
        raise DataError(f"benchmark plugin {spec!r}: {exc}") from exc.__cause__
    register_benchmark(obj)
    return get_benchmark(_check(obj, f"benchmark plugin {spec!r}").name)


def headline_part(name: str) -> str | None:
    """The part of the 2AFC set ``name`` that a cross-benchmark table shows.

    Its first joined part (NIGHTS: ``test``), else its last part; ``None`` for a set not registered here.
    """
    bench = benchmarks().get(name)
    if bench is None:
        return None
    return next(iter(bench.joined), bench.parts[-1] if bench.parts else None)


def title_of(name: str) -> str:
    """The usual spelling of the set ``name`` (``name`` itself for a set not registered here)."""
    bench = benchmarks().get(name)
    return bench.title if bench is not None else name


def load_correlation(bench: Benchmark, root: Path, options: Mapping[str, str]) -> CorrelationSet:
    """``bench.load(root, options)``, checked to be a correlation set.

    Raises:
        DataError: the set is not a correlation set, or cannot be read.
    """
    cset = bench.load(root, options)
    if not isinstance(cset, CorrelationSet):
        raise DataError(f"benchmark {bench.name!r}: load() returned {type(cset).__name__}, expected a CorrelationSet "
                        f"(a {bench.kind} set)")
    return cset


def load_benchmark_plugins(specs: list[str] | tuple[str, ...] | None) -> list[Benchmark]:
    """:func:`load_benchmark_plugin` for each of ``specs`` (``None``: none)."""
    return [load_benchmark_plugin(s) for s in specs or ()]


def help_list(kind: BenchmarkKind | None = None, with_bapps: bool = False) -> str:
    """The registered sets as ``--help`` shows them: ``name (Title: description)``, comma-separated."""
    shown = [f"{b.name} ({b.title}: {b.description})" if b.description else f"{b.name} ({b.title})"
             for b in benchmarks().values() if kind is None or b.kind == kind]
    return ", ".join((["bapps (BAPPS 2AFC/JND)"] if with_bapps else []) + shown)


#: ``--help`` text of the ``--benchmark-plugin`` option of ``bapps download``, ``pack`` and ``evaluate``.
PLUGIN_HELP = ("a benchmark of your own: path/to/file.py:CLASS or package.module:CLASS (code you choose to run; "
               f"installed packages add theirs through the entry-point group {ENTRY_POINT_GROUP}); repeatable")


__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_MODULES", "KINDS", "PLUGIN_HELP", "Benchmark", "BenchmarkKind",
           "PackRequest", "PackSummary", "Remote", "benchmark_names", "benchmarks", "get_benchmark", "headline_part",
           "help_list", "load_correlation", "load_benchmark_plugin", "load_benchmark_plugins", "register_benchmark",
           "title_of", "unregister_benchmark"]
