"""BAPPS sets as ``torch.utils.data.Dataset`` objects, read whole or item by item.

The loaders of :mod:`.datasets` bring whole sets into memory; these classes wrap them (``in_memory``)
or read one item at a time from a packed ``.h5`` file (one handle per worker process) or from the
PNGs of a folder root, for sets larger than RAM.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import PathLike
from .datasets import Datasets, is_h5, load_sets, to_model_input
from .h5format import open_h5, read_stems
from .h5safe import read_rows
from .images import decode_image, load_judgment
from .layout import discover, expand_datasets, folders_of, is_synthetic_root, resolve_root, scan_set, split_key

_OUTPUTS = ("uint8", "float")


class _BappsDataset(torch.utils.data.Dataset[Any]):
    kind = ""

    def __init__(self, source: PathLike, datasets: Datasets = None, *, output: str = "uint8",
                 in_memory: bool = True, workers: int | None = None):
        if output not in _OUTPUTS:
            raise ValueError(f"output must be 'uint8' or 'float', got {output!r}")
        self.source = Path(source)
        self.output = output
        self.in_memory = bool(in_memory)
        self._is_h5 = is_h5(source)
        self._h5 = None
        self._h5_pid = -1
        if self.in_memory:
            self.sets = load_sets(source, datasets, self.kind, None, workers, False)
            self.keys = [s.key for s in self.sets]
            lengths = [len(s) for s in self.sets]
            self.synthetic = bool(self.sets[0].synthetic) if self.sets else False
        else:
            self.sets = []
            if self._is_h5:
                f, info = open_h5(source)
                try:
                    self.keys = expand_datasets(datasets, info["keys"], self.kind, where=str(source))
                    lengths = [info["counts"][k] for k in self.keys]
                    self._stems = [read_stems(f[k]["stems"]) for k in self.keys]
                finally:
                    f.close()
                self.synthetic = bool(info["synthetic"])
            else:
                self.keys = expand_datasets(datasets, discover(source), self.kind, where=str(source))
                base = resolve_root(source)
                self._files = [scan_set(base, k) for k in self.keys]
                lengths = [len(sf) for sf in self._files]
                self._stems = [sf.stems for sf in self._files]
                self.synthetic = is_synthetic_root(base)
        self._offsets = np.cumsum([0] + lengths)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, index: int) -> tuple[int, int]:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} items")
        s = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return s, i - int(self._offsets[s])

    def _h5file(self) -> Any:
        if self._h5 is None or self._h5_pid != os.getpid():
            f, _ = open_h5(self.source)
            self._h5, self._h5_pid = f, os.getpid()
        return self._h5

    def _image(self, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if self.output == "uint8":
            return t
        return to_model_input(t[None])[0]

    def _fetch(self, s: int, j: int) -> tuple[dict[str, np.ndarray], float, str]:
        key = self.keys[s]
        folders = folders_of(key)
        if self.in_memory:
            st = self.sets[s]
            return ({f: getattr(st, f)[j] for f in folders[:-1]}, float(getattr(st, folders[-1])[j]),
                    st.stems[j])
        if self._is_h5:
            g = self._h5file()[key]
            images = {f: read_rows(g[f], self.source, j, j + 1)[0] for f in folders[:-1]}
            return images, float(read_rows(g[folders[-1]], self.source, j, j + 1)[0]), self._stems[s][j]
        sf = self._files[s]
        return ({f: decode_image(sf.files[f][j]) for f in folders[:-1]},
                load_judgment(sf.files[folders[-1]][j]), sf.stems[j])

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, j = self._locate(index)
        images, value, stem = self._fetch(s, j)
        _, split, cat = split_key(self.keys[s])
        folders = folders_of(self.keys[s])
        item: dict[str, Any] = {f: self._image(images[f]) for f in folders[:-1]}
        item[folders[-1]] = torch.tensor(value, dtype=torch.float32)
        item.update({"split": split, "category": cat, "key": self.keys[s], "stem": stem,
                     "index": j})
        return item

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_h5_pid"] = -1
        return state

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class TwoAFCDataset(_BappsDataset):
    """2AFC triplets as a ``torch.utils.data.Dataset``, from a folder root or a packed ``.h5``.

    Each item is a dict: ``ref``, ``p0``, ``p1`` — with ``output="uint8"`` uint8 tensors
    ``[S, S, 3]`` (HWC, ``S`` the set's patch side, 64 for BAPPS; batch them and call
    :func:`to_model_input`); with ``output="float"`` float32 tensors ``[3, S, S]`` (CHW) in
    [-1, 1], the official normalisation; ``judge`` (float32 scalar in [0, 1], fraction preferring
    p1); ``split``, ``category``, ``key``, ``stem`` and ``index`` (position within its set) so
    scores can be broken down. Sets of different patch sizes cannot share a batch.

    ``in_memory=True`` loads the selected sets once (fast, ~37 KB per triplet);
    ``in_memory=False`` reads each item on demand (one HDF5 handle per worker process, or one
    PNG decode per image), for sets larger than RAM.
    """

    kind = "2afc"


class JNDDataset(_BappsDataset):
    """JND pairs as a ``torch.utils.data.Dataset``.

    Items carry ``p0``, ``p1`` (as in :class:`TwoAFCDataset`, per ``output``), ``same`` (float32 in
    [0, 1], fraction of raters who said "same"), ``split``, ``category``, ``key``, ``stem``,
    ``index``.
    """

    kind = "jnd"
