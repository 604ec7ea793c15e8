"""The BAPPS data layer: folder layout, packed HDF5 files, loaders, mini set and own-judgment manifests.

BAPPS is the data set of Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018. Besides its folder layout and packed HDF5 files the package has
loaders, the synthetic mini set, and CSV manifests of the researcher's own judgments
(:mod:`.manifest`; any patch size).

>>> from bapps_toolkit.data import load_2afc, to_model_input
>>> sets = load_2afc("bapps.h5", "val")             # doctest: +SKIP
>>> x = to_model_input(sets[0].ref)                  # NCHW float in [-1, 1]   # doctest: +SKIP

The names are imported on first use (PEP 562), so the torch-free parts (:mod:`.iqa.detect`, which
``bapps evaluate --help`` reads) do not import torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import keep_functions, lazy_names

if TYPE_CHECKING:
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

#: Public name -> the module it comes from.
_LAZY = {
    **dict.fromkeys(["JNDSet", "TwoAFCSet", "find_sets", "iter_2afc_chunks", "iter_jnd_chunks", "load_2afc",
                     "load_jnd", "to_model_input"], ".datasets"),
    "JND_CATEGORIES": ".layout", "TWOAFC_CATEGORIES": ".layout", "read_manifests": ".manifest",
    "make_mini": ".mini", "pack": ".pack", "verify": ".pack",
    "JNDDataset": ".torch_datasets", "TwoAFCDataset": ".torch_datasets",
}

__all__ = [
    "TWOAFC_CATEGORIES", "JND_CATEGORIES", "TwoAFCSet", "JNDSet", "find_sets", "load_2afc",
    "load_jnd", "iter_2afc_chunks", "iter_jnd_chunks", "to_model_input", "TwoAFCDataset",
    "JNDDataset", "make_mini", "pack", "verify", "read_manifests",
]


keep_functions(__name__, ["pack"])  # `data.pack` stays the function when the submodule loads


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
