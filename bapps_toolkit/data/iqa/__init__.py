"""Loaders for the human-judgment benchmarks next to BAPPS, and the registry that holds them.

The benchmarks are NIGHTS (2AFC), PieAPP, TID2013, KADID-10k, PIPAL, LIVE and CSIQ (correlation
sets).

One module per set, one design (:mod:`.base`), each registered in :mod:`.registry` (where a
plugin file or an installed package adds its own); :mod:`.detect` tells which set a folder holds;
:mod:`.pack_iqa` packs them into HDF5.
"""
from .base import CaseResolver, CorrelationSet, TwoAFCFileSet
from .defaults import CorrelationBenchmark, TwoAFCBenchmark
from .detect import detect_format, find_benchmarks, is_bapps_source, loader
from .registry import (
    Benchmark,
    benchmarks,
    get_benchmark,
    load_benchmark_plugin,
    register_benchmark,
)


def __getattr__(name: str) -> tuple[str, ...]:
    """``FORMATS``, ``CORRELATION_FORMATS``, ``TWOAFC_FORMATS``: read from the registry (:mod:`.detect`)."""
    from . import detect

    value: tuple[str, ...] = getattr(detect, name)
    return value


__all__ = ["CaseResolver", "CorrelationSet", "TwoAFCFileSet", "FORMATS", "CORRELATION_FORMATS",
           "TWOAFC_FORMATS", "detect_format", "find_benchmarks", "is_bapps_source", "loader", "Benchmark",
           "CorrelationBenchmark", "TwoAFCBenchmark", "benchmarks", "get_benchmark", "load_benchmark_plugin",
           "register_benchmark"]
