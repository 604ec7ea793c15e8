"""Loaders for the human-judgment benchmarks next to BAPPS: NIGHTS (2AFC), PieAPP, TID2013,
KADID-10k, PIPAL, LIVE and CSIQ (correlation sets). One module per set, one design
(:mod:`.base`); :mod:`.detect` tells which set a folder holds; :mod:`.pack_iqa` packs them into
HDF5.
"""
from .base import CaseResolver, CorrelationSet, TwoAFCFileSet
from .detect import (
    CORRELATION_FORMATS,
    FORMATS,
    TWOAFC_FORMATS,
    detect_format,
    find_benchmarks,
    is_bapps_source,
    loader,
)

__all__ = ["CaseResolver", "CorrelationSet", "TwoAFCFileSet", "FORMATS", "CORRELATION_FORMATS",
           "TWOAFC_FORMATS", "detect_format", "find_benchmarks", "is_bapps_source", "loader"]
