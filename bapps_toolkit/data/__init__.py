"""The BAPPS data layer (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018): folder layout, packed HDF5 files, loaders, the synthetic
mini set, and CSV manifests of the researcher's own judgments (:mod:`.manifest`; any patch size).

>>> from bapps_toolkit.data import load_2afc, to_model_input
>>> sets = load_2afc("bapps.h5", "val")             # doctest: +SKIP
>>> x = to_model_input(sets[0].ref)                  # NCHW float in [-1, 1]   # doctest: +SKIP
"""
from .datasets import (
                       JNDSet,
                       TwoAFCSet,
                       find_sets,
                       iter_2afc_chunks,
                       iter_jnd_chunks,
                       load_2afc,
                       load_jnd,
                       to_model_input,
)
from .layout import JND_CATEGORIES, TWOAFC_CATEGORIES
from .manifest import read_manifests
from .mini import make_mini
from .pack import pack, verify
from .torch_datasets import JNDDataset, TwoAFCDataset

__all__ = [
    "TWOAFC_CATEGORIES", "JND_CATEGORIES", "TwoAFCSet", "JNDSet", "find_sets", "load_2afc",
    "load_jnd", "iter_2afc_chunks", "iter_jnd_chunks", "to_model_input", "TwoAFCDataset",
    "JNDDataset", "make_mini", "pack", "verify", "read_manifests",
]
