"""Property-based fuzzing of the packed-file readers (hypothesis).

A small sound ``bapps-h5/1`` file gets one random change — an attribute set to a random value
of a random type, or an array replaced by one of random shape, dtype and storage (chunked or
not, compressed or not, written or not) — and then goes through every reader: ``verify``,
``find_sets``, the loaders, the chunk iterators and the item-by-item torch datasets. Each either
succeeds or raises a :class:`~bapps_toolkit.errors.DataError` whose message names the file and
the attribute or array that was changed; any other exception fails the test. An array that is
compressed, or declared but never written (HDF5 would read it back as zeros), must be refused by
every reader.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bapps_toolkit.data import (
    JNDDataset,
    TwoAFCDataset,
    find_sets,
    iter_2afc_chunks,
    iter_jnd_chunks,
    load_2afc,
    load_jnd,
    verify,
)
from bapps_toolkit.errors import DataError

from .test_hdf5_hostile import KEYS, S, _write_good

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ROOT_ATTRS = ["bapps_toolkit_format", "keys", "counts", "synthetic", "source", "toolkit_version"]
GROUP_ATTRS = ["count", "size", "kind"]
ARRAYS = ["ref", "p0", "p1", "judge", "stems", "n_votes"]
JND_ARRAYS = ["p0", "p1", "same", "stems"]

_json_texts = st.sampled_from([
    "[", "{", "null", "[]", "{}", '["2afc/val/cnn"]', '["2afc/val/cnn", "jnd/val/cnn"]',
    '["jnd/val/cnn", "2afc/val/cnn"]', '["2afc/val/cnn", "../../etc"]', '{"2afc/val/cnn": 5, "jnd/val/cnn": 4}',
    '{"2afc/val/cnn": 5.0, "jnd/val/cnn": 4}', '{"2afc/val/cnn": -5, "jnd/val/cnn": 4}',
    '{"2afc/val/cnn": 6, "jnd/val/cnn": 4}', '{"2afc/val/cnn": "5", "jnd/val/cnn": 4}', "[" * 3000,
    "bapps-h5/1", "bapps-h5/2", "bapps-iqa-h5/1"])
_small_arrays = st.builds(
    lambda dt, shape: np.zeros(shape, dtype=dt),
    st.sampled_from(["u1", "i8", "f4", "f8", "S3", "?"]),
    st.lists(st.integers(0, 3), min_size=0, max_size=2).map(tuple))
ATTR_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True), st.booleans(),
    st.text(max_size=40), st.binary(max_size=20).map(np.bytes_), _json_texts, _small_arrays,
    st.just(h5py.Empty("f4")))

DTYPES = ["u1", "i1", "i8", ">i8", "u8", "f4", ">f4", "f8", "?", "S4", "vstr", "vbytes", "compound"]


def _dtype(name: str) -> Any:
    if name == "vstr":
        return h5py.string_dtype("utf-8")
    if name == "vbytes":
        return h5py.vlen_dtype(np.uint8)
    if name == "compound":
        return np.dtype([("a", "<i4"), ("b", "<f4")])
    return np.dtype(name)


@st.composite
def array_specs(draw: Any) -> dict[str, Any]:
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=4)))
    spec: dict[str, Any] = {"shape": shape, "dtype": draw(st.sampled_from(DTYPES))}
    spec["storage"] = draw(st.sampled_from(["contiguous", "chunked", "gzip", "unwritten"]))
    if spec["storage"] != "contiguous" and shape and all(shape):
        spec["chunks"] = tuple(draw(st.integers(1, d)) for d in shape)
    return spec


def _fill(shape: tuple[int, ...], dtype: Any) -> Any:
    if h5py.check_string_dtype(dtype) is not None:
        return np.array(["s"] * int(np.prod(shape)), dtype=object).reshape(shape)
    if h5py.check_vlen_dtype(dtype) is not None:
        out = np.empty(shape, dtype=object)
        for idx in np.ndindex(*shape):
            out[idx] = np.arange(2, dtype=np.uint8)
        return out
    return np.ones(shape, dtype=dtype)


def _make_array(f: h5py.File, name: str, spec: dict[str, Any]) -> None:
    attrs = dict(f[name].attrs) if name in f else {}
    if name in f:
        del f[name]
    dt = _dtype(spec["dtype"])
    kw: dict[str, Any] = {"shape": spec["shape"], "dtype": dt}
    if "chunks" in spec:
        kw["chunks"] = spec["chunks"]
    if spec["storage"] == "gzip" and "chunks" in spec:
        kw["compression"] = "gzip"
    ds = f.create_dataset(name, **kw)
    if spec["storage"] != "unwritten" and ds.size:
        ds[...] = _fill(spec["shape"], dt)
    ds.attrs.update(attrs)


@pytest.fixture(scope="module")
def base_h5(tmp_path_factory) -> Path:
    return _write_good(tmp_path_factory.mktemp("fuzz") / "base.h5")


def _readers(path: Path) -> list[tuple[str, Callable[[], Any]]]:
    def datasets() -> None:
        for cls in (TwoAFCDataset, JNDDataset):
            try:
                ds = cls(path, in_memory=False)
            except DataError as exc:
                if "no " in str(exc) and "sets" in str(exc):
                    continue
                raise
            if len(ds):
                ds[0]
                ds[len(ds) - 1]

    def loaders() -> None:
        keys = find_sets(path)
        if any(k.startswith("2afc/") for k in keys):
            load_2afc(path)
            list(iter_2afc_chunks(path, next(k for k in keys if k.startswith("2afc/")), 3))
        if any(k.startswith("jnd/") for k in keys):
            load_jnd(path)
            list(iter_jnd_chunks(path, next(k for k in keys if k.startswith("jnd/")), 3))

    return [("verify", lambda: verify(path)), ("loaders", loaders), ("datasets", datasets)]


def _check(path: Path, field: str, must_refuse: bool = False) -> None:
    """Every reader succeeds or names ``path`` and ``field``; with ``must_refuse`` every one
    must refuse (the changed array is compressed, or declared but never written)."""
    for name, call in _readers(path):
        try:
            call()
        except DataError as exc:
            msg = str(exc)
            assert str(path) in msg, (name, msg)
            assert field in msg, (name, field, msg)
        else:
            assert not must_refuse, f"{name} read {field}, which is compressed or never written"


_SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_SETTINGS
@given(where=st.sampled_from(["/", "2afc/val/cnn", "jnd/val/cnn", "2afc/val/cnn/ref", "jnd/val/cnn/same"]),
       attr_pick=st.integers(0, 10), value=ATTR_VALUES)
def test_random_attributes(base_h5, tmp_path, where, attr_pick, value):
    names = ROOT_ATTRS if where == "/" else GROUP_ATTRS if where.count("/") == 2 else ["sha256"]
    attr = names[attr_pick % len(names)]
    path = tmp_path / "fuzz_attr.h5"
    shutil.copyfile(base_h5, path)
    try:
        with h5py.File(path, "r+") as f:
            f[where].attrs[attr] = value
    except (TypeError, ValueError, OSError):
        assume(False)
    _check(path, attr)


def _schema_shape(key: str, name: str) -> tuple[tuple[int, ...], str]:
    """The shape and dtype the schema asks of array ``name`` of set ``key``."""
    n = KEYS[key]
    if name in ("ref", "p0", "p1"):
        return (n, S, S, 3), "u1"
    return (n,), {"judge": "f4", "same": "f4", "stems": "vstr", "n_votes": "i8"}[name]


@_SETTINGS
@given(key=st.sampled_from(["2afc/val/cnn", "jnd/val/cnn"]), pick=st.integers(0, 5), spec=array_specs(),
       schema_shape=st.booleans())
def test_random_arrays(base_h5, tmp_path, key, pick, spec, schema_shape):
    names = ARRAYS if key.startswith("2afc") else JND_ARRAYS
    name = names[pick % len(names)]
    if schema_shape:
        spec["shape"], spec["dtype"] = _schema_shape(key, name)
        spec.pop("chunks", None)
        if spec["storage"] != "contiguous":
            spec["chunks"] = (1, *spec["shape"][1:])
    path = tmp_path / "fuzz_array.h5"
    shutil.copyfile(base_h5, path)
    try:
        with h5py.File(path, "r+") as f:
            _make_array(f, f"{key}/{name}", spec)
    except (TypeError, ValueError, OSError):
        assume(False)
    filtered = spec["storage"] == "gzip" and "chunks" in spec
    unwritten = spec["storage"] == "unwritten" and int(np.prod(spec["shape"])) > 0
    _check(path, f"/{key}/{name}", must_refuse=filtered or unwritten)
