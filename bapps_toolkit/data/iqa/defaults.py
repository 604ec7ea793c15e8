"""Defaults of a benchmark (:class:`~.registry.Benchmark`): subclass one, set the attributes, write ``load``.

Example:
    A correlation set whose folder holds ``scores.csv`` and ``images/`` (see CONTRIBUTING.md for a
    whole one)::

        class MySet(CorrelationBenchmark):
            name = "myset"
            title = "MySet"
            signature = ("scores.csv", "images")

            def load(self, root, options):
                ...
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...errors import DataError
from .base import CorrelationSet, TwoAFCFileSet
from .registry import BenchmarkKind, PackRequest, PackSummary, Remote, load_correlation


class CorrelationBenchmark:
    """Defaults of a correlation set: subclass it, set the attributes and write :meth:`load`.

    Packing stores the images at their own size in ``bapps-iqa-h5/1``
    (:mod:`~bapps_toolkit.data.iqa.pack_iqa`).
    """

    name = ""
    title = ""
    kind: BenchmarkKind = "correlation"
    description = ""
    citation = ""
    signature: tuple[str, ...] = ()
    nested: tuple[str, ...] = ()
    sources: tuple[Remote, ...] = ()
    manual = ""
    after_download = ""
    parts: tuple[str, ...] = ()
    joined: Mapping[str, tuple[str, ...]] = {}

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet | TwoAFCFileSet:
        """Read the set (to be written by the subclass).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(f"benchmark {self.name!r} has no load()")

    def pack(self, root: Path, out: Path, request: PackRequest) -> PackSummary:
        """Pack the loaded set at its images' own sizes (see the class).

        Raises:
            DataError: ``request`` asks for a size or for pairs, or the set is unsound.
        """
        from .pack_iqa import pack_loaded_set

        if request.pairs:
            raise DataError(f"--pairs: only PieAPP has labelled pairs to pack as 2AFC, not {self.name}")
        if request.size is not None:
            raise DataError(f"--size {request.size}: {self.name} is a correlation set, packed at its images' "
                            "original sizes (the correlation protocol scores images at native size); drop --size")
        if out.exists() and not request.force:
            raise FileExistsError(f"{out} already exists; pass --force (force=True) to overwrite it")
        return pack_loaded_set(self.name, load_correlation(self, root, request.options), out)


class TwoAFCBenchmark(CorrelationBenchmark):
    """Defaults of a 2AFC set.

    :meth:`load` reads the part ``options["split"]``; packing is the set's own (NIGHTS overrides
    :meth:`pack`).
    """

    kind: BenchmarkKind = "2afc"

    def pack(self, root: Path, out: Path, request: PackRequest) -> PackSummary:
        """Refuse: a 2AFC set packs only where its class says how.

        Raises:
            DataError: always.
        """
        raise DataError(f"benchmark {self.name!r}: packing this 2AFC set is not supported; "
                        "evaluate its folder instead")
