"""Hostile packed HDF5 files: declared shapes, storage and attributes are never believed.

* Declared sizes: a 7 KB file declaring ``(10^9, 64, 64, 3)`` (12 TB of unwritten chunks, read
  back as zeros by HDF5), ``(1, 100000, 100000, 3)``, a contiguous array never written, a
  chunked array with most chunks missing, a gzip bomb, filters (shuffle, checksum), chunks
  that split rows, external raw storage, virtual datasets and soft links — refused by every
  reader (``verify`` CLI and API, ``find_sets``, the loaders, the chunk iterators, the torch
  datasets, ``evaluate``, ``bapps train``) with a ``DataError`` naming the file and the array,
  before anything is allocated. ``bapps verify`` of the 10^9-row file ends with exit 2 and the
  message in a subprocess bounded at 120 s (it hashed zeros for minutes before).
* Attributes of the wrong type or value (``size = "64x"``, ``count = 2.5``, ``synthetic =
  [1, 2]``, a ``keys`` header nested 50 000 deep, a ``sha256`` that is a number...): a
  ``DataError`` naming the file and the attribute.
* The IQA format ``bapps-iqa-h5/1``: the same for its arrays and attributes.
* Hypothesis: random attribute values and types, random array shapes, dtypes and storage in a
  small file — every reader either succeeds or raises a ``DataError`` naming the file and the
  attribute or array it changed, never another exception.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.cli.main import main
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
from bapps_toolkit.data.iqa.base import CorrelationSet
from bapps_toolkit.data.iqa.pack_iqa import PackedCorrelationSet, pack_correlation_set, verify_iqa
from bapps_toolkit.data.pack import write_packed
from bapps_toolkit.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

S = 8
KEYS = {"2afc/val/cnn": 5, "jnd/val/cnn": 4}


def _write_good(path: Path) -> Path:
    rng = np.random.default_rng(0)
    sets = {}
    for key, n in KEYS.items():
        folders = ("ref", "p0", "p1", "judge") if key.startswith("2afc") else ("p0", "p1", "same")
        arrays = {f: rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8) for f in folders[:-1]}
        arrays[folders[-1]] = rng.random(n).astype(np.float32)
        sets[key] = (arrays, [f"item{i}" for i in range(n)])
    return write_packed(path, sets, source="hostile-tests", synthetic=True)


@pytest.fixture(scope="module")
def good_h5(tmp_path_factory) -> Path:
    return _write_good(tmp_path_factory.mktemp("h5good") / "good.h5")


def _copy(src: Path, dst: Path, edit: Callable[[h5py.File], None]) -> Path:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def _swap(f: h5py.File, name: str, **create: Any) -> None:
    """Replace dataset ``name`` by ``f.create_dataset(name, **create)``, keeping its attributes."""
    attrs = dict(f[name].attrs) if name in f else {}
    if name in f:
        del f[name]
    ds = f.create_dataset(name, **create)
    ds.attrs.update(attrs)


def _declare(n: int, side: int, **storage: Any) -> Callable[[h5py.File], None]:
    """Every image array of ``2afc/val/cnn`` declared ``(n, side, side, 3)``, counts to match."""
    def edit(f: h5py.File) -> None:
        key = "2afc/val/cnn"
        for arr in ("ref", "p0", "p1"):
            _swap(f, f"{key}/{arr}", shape=(n, side, side, 3), dtype=np.uint8, **storage)
        for arr, dt in (("judge", np.float32), ("stems", h5py.string_dtype())):
            _swap(f, f"{key}/{arr}", shape=(n,), dtype=dt, chunks=(min(n, 1024),))
        f[key].attrs.update(count=n, size=side)
        counts = json.loads(f.attrs["counts"])
        counts[key] = n
        f.attrs["counts"] = json.dumps(counts)
    return edit


def _partial_chunks(f: h5py.File) -> None:
    """1000 rows declared in chunks of 10, one chunk written; padding makes the file large
    enough that only the allocated storage tells the truth."""
    _declare(1000, S, chunks=(10, S, S, 3))(f)
    f["2afc/val/cnn/ref"][:10] = 7
    f.create_dataset("padding", data=np.ones(400_000, np.uint8))


def _gzip_bomb(f: h5py.File) -> None:
    """5 000 rows of zeros (61 MB an array) in about 60 KB each."""
    n, rows = 5_000, 1_000
    _declare(n, 64, chunks=(rows, 64, 64, 3), compression="gzip", compression_opts=9)(f)
    zeros = np.zeros((rows, 64, 64, 3), np.uint8)
    for arr in ("ref", "p0", "p1"):
        for start in range(0, n, rows):
            f[f"2afc/val/cnn/{arr}"][start:start + rows] = zeros


def _filtered(**flt: Any) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        data = f["2afc/val/cnn/p0"][...]
        _swap(f, "2afc/val/cnn/p0", data=data, chunks=(5, S, S, 3), **flt)
    return edit


def _split_rows(f: h5py.File) -> None:
    _swap(f, "2afc/val/cnn/p1", data=f["2afc/val/cnn/p1"][...], chunks=(1, S, S, 1))


def _external_storage(f: h5py.File) -> None:
    raw = Path(f.filename).with_name("raw.bin")
    data = f["2afc/val/cnn/ref"][...]
    raw.write_bytes(data.tobytes())
    _swap(f, "2afc/val/cnn/ref", shape=data.shape, dtype=np.uint8, external=[(str(raw), 0, data.nbytes)])


def _virtual(f: h5py.File) -> None:
    other = Path(f.filename).with_name("source.h5")
    with h5py.File(other, "w") as g:
        g.create_dataset("x", data=f["2afc/val/cnn/ref"][...])
    layout = h5py.VirtualLayout(shape=(5, S, S, 3), dtype=np.uint8)
    layout[...] = h5py.VirtualSource(str(other), "x", shape=(5, S, S, 3))
    attrs = dict(f["2afc/val/cnn/ref"].attrs)
    del f["2afc/val/cnn/ref"]
    f["2afc/val/cnn"].create_virtual_dataset("ref", layout)
    f["2afc/val/cnn/ref"].attrs.update(attrs)


def _soft_link(f: h5py.File) -> None:
    f.create_dataset("elsewhere", data=f["jnd/val/cnn/p0"][...])
    del f["jnd/val/cnn/p0"]
    f["jnd/val/cnn/p0"] = h5py.SoftLink("/elsewhere")


STORAGE_CASES: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "10^9 rows, chunks never written": (
        _declare(10**9, 64, chunks=(1, 64, 64, 3)),
        r"/2afc/val/cnn/ref declares shape \(1000000000, 64, 64, 3\) of uint8 \(12288000000000 bytes\) "
        r"but the file has only \d+ bytes"),
    "(1, 100000, 100000, 3)": (
        _declare(1, 100_000),
        r"/2afc/val/cnn/ref declares shape \(1, 100000, 100000, 3\) of uint8 \(30000000000 bytes\)"),
    "contiguous, never written": (
        _declare(50_000, 64), r"/2afc/val/cnn/ref declares shape \(50000, 64, 64, 3\)"),
    "chunked, 1 of 100 chunks written": (
        _partial_chunks, r"/2afc/val/cnn/ref declares 192000 bytes but 1920 bytes of it are stored"),
    "gzip bomb": (_gzip_bomb, r"/2afc/val/cnn/ref is stored through filter\(s\) deflate"),
    "shuffle filter": (_filtered(shuffle=True), r"/2afc/val/cnn/p0 is stored through filter\(s\) shuffle"),
    "fletcher32 checksum": (_filtered(fletcher32=True), r"/2afc/val/cnn/p0 is stored through filter\(s\) fletcher32"),
    "chunks splitting rows": (_split_rows, r"/2afc/val/cnn/p1 is chunked \(1, 8, 8, 1\), expected whole rows"),
    "external raw storage": (_external_storage, r"/2afc/val/cnn/ref keeps its bytes in external files"),
    "virtual dataset": (_virtual, r"/2afc/val/cnn/ref is a virtual dataset"),
    "soft link": (_soft_link, r"/jnd/val/cnn/p0 is a soft link"),
}


def _readers(path: Path, tmp: Path) -> Iterator[tuple[str, Callable[[], Any]]]:
    from bapps_toolkit.evaluate import evaluate

    yield "verify", lambda: verify(path)
    yield "find_sets", lambda: find_sets(path)
    yield "load_2afc", lambda: load_2afc(path)
    yield "load_jnd", lambda: load_jnd(path)
    yield "iter_2afc_chunks", lambda: list(iter_2afc_chunks(path, "val/cnn", 4))
    yield "iter_jnd_chunks", lambda: list(iter_jnd_chunks(path, "val/cnn", 4))
    yield "TwoAFCDataset", lambda: TwoAFCDataset(path, in_memory=False)[0]
    yield "JNDDataset", lambda: JNDDataset(path)[0]
    yield "evaluate", lambda: evaluate(path, ["l2"], n_boot=5, progress=False)
    yield "evaluate stream", lambda: evaluate(path, ["l2"], n_boot=5, progress=False, stream=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", sorted(STORAGE_CASES))
def test_declared_storage_is_checked_before_any_read(good_h5, tmp_path, case, capsys):
    edit, match = STORAGE_CASES[case]
    bad = _copy(good_h5, tmp_path / "bad.h5", edit)
    for name, call in _readers(bad, tmp_path):
        with pytest.raises(DataError, match=match) as ei:
            call()
        assert str(bad) in str(ei.value), (name, str(ei.value))
    assert main(["verify", str(bad), "--no-progress"]) == 2
    assert main(["train", str(bad), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--backbone-weights", "alex=random", "--no-fast"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_verify_of_a_billion_rows_ends_with_a_clear_error(good_h5, tmp_path):
    """The CLI in a subprocess: exit 2 with the message, not minutes of hashing zeros (the
    subprocess timeout is the bound; on a loaded machine the refusal takes about a second)."""
    bad = _copy(good_h5, tmp_path / "billion.h5", _declare(10**9, 64, chunks=(1, 64, 64, 3)))
    assert bad.stat().st_size < 64_000
    res = subprocess.run([sys.executable, "-m", "bapps_toolkit", "verify", str(bad), "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert f"{bad}: array /2afc/val/cnn/ref declares shape (1000000000, 64, 64, 3)" in res.stderr
    assert "Traceback" not in res.stderr


# ------------------------------------------------------------------------------ attributes
def _set_attr(where: str, attr: str, value: Any) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        f[where].attrs[attr] = value
    return edit


ATTR_CASES: dict[str, tuple[str, str, Any, str]] = {
    "size not an integer": ("2afc/val/cnn", "size", "64x",
                            r"attribute 'size' of /2afc/val/cnn is '64x' \(str\), expected an integer >= 1"),
    "size a float": ("2afc/val/cnn", "size", 8.0, r"attribute 'size' of /2afc/val/cnn is .*float64"),
    "size negative": ("jnd/val/cnn", "size", -8, r"attribute 'size' of /jnd/val/cnn is -8"),
    "size an array": ("2afc/val/cnn", "size", np.array([8, 8]), r"attribute 'size' of /2afc/val/cnn is array"),
    "size a bool": ("2afc/val/cnn", "size", True, r"attribute 'size' of /2afc/val/cnn is True"),
    "count text": ("2afc/val/cnn", "count", "abc", r"attribute 'count' of /2afc/val/cnn is 'abc'"),
    "count fraction": ("jnd/val/cnn", "count", 2.5, r"attribute 'count' of /jnd/val/cnn is 2\.5"),
    "synthetic an array": ("/", "synthetic", np.array([1, 2]), r"attribute 'synthetic' of / is array"),
    "source a number": ("/", "source", 17, r"attribute 'source' of / is 17"),
    "version not UTF-8": ("/", "toolkit_version", np.bytes_(b"\xff\xfe"), r"attribute 'toolkit_version' of /"),
    "marker a number": ("/", "bapps_toolkit_format", 1, r"attribute 'bapps_toolkit_format' of / is 1"),
    "keys nested 50 000 deep": ("/", "keys", "[" * 50_000, r"attribute 'keys' of / is not valid JSON"),
    "keys an object": ("/", "keys", json.dumps({"2afc/val/cnn": 5}), r"attribute 'keys' of / is"),
    "keys repeated": ("/", "keys", json.dumps(["2afc/val/cnn", "2afc/val/cnn"]), r"attribute 'keys' of /"),
    "counts a list": ("/", "counts", json.dumps([5, 4]), r"attribute 'counts' of / is"),
    "counts a bool": ("/", "counts", json.dumps({"2afc/val/cnn": True, "jnd/val/cnn": 4}),
                      r"attribute 'counts' of / gives 'True' items for 2afc/val/cnn"),
    "counts 10^30": ("/", "counts", json.dumps({"2afc/val/cnn": 10**30, "jnd/val/cnn": 4}),
                     r"(count 5 \(attribute 'count'\) does not match the header's attribute 'counts')"),
    "sha256 a number": ("2afc/val/cnn/p1", "sha256", 12, r"attribute 'sha256' of /2afc/val/cnn/p1 is 12"),
}


@pytest.mark.parametrize("case", sorted(ATTR_CASES))
def test_attribute_errors_name_the_file_and_the_attribute(good_h5, tmp_path, case):
    where, attr, value, match = ATTR_CASES[case]
    bad = _copy(good_h5, tmp_path / "attr.h5", _set_attr(where, attr, value))
    with pytest.raises(DataError, match=match) as ei:
        verify(bad)
    assert str(ei.value).startswith(str(bad)), str(ei.value)
    if attr != "sha256":
        for call in (lambda: find_sets(bad), lambda: TwoAFCDataset(bad, in_memory=False)):
            with pytest.raises(DataError, match=match):
                call()


def test_stems_that_are_not_utf8_are_named(good_h5, tmp_path):
    def edit(f: h5py.File) -> None:
        _swap(f, "jnd/val/cnn/stems", data=np.array([b"a", b"\xff", b"c", b"d"], dtype="S1"))

    bad = _copy(good_h5, tmp_path / "stems.h5", edit)
    for call in (lambda: verify(bad), lambda: load_jnd(bad), lambda: JNDDataset(bad, in_memory=False)):
        with pytest.raises(DataError, match=r"stems\.h5: array /jnd/val/cnn/stems item 1 is not UTF-8"):
            call()


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_a_truncated_file_is_named(good_h5, good_iqa, tmp_path, keep):
    for src, readers in ((good_h5, (verify, find_sets, load_2afc)), (good_iqa, (verify_iqa, PackedCorrelationSet))):
        cut = tmp_path / f"cut_{src.name}"
        data = src.read_bytes()
        cut.write_bytes(data[: int(len(data) * keep)])
        for read in readers:
            with pytest.raises(DataError, match=rf"cut_{src.stem}\.h5"):
                read(cut)


def test_a_good_file_still_reads(good_h5):
    info = verify(good_h5)
    assert info["sets"] == KEYS and info["sizes"] == {k: S for k in KEYS}
    assert len(TwoAFCDataset(good_h5, in_memory=False)) == 5
    assert [len(s) for s in load_jnd(good_h5)] == [4]


# ---------------------------------------------------------------------------------- IQA format
@pytest.fixture(scope="module")
def good_iqa(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("iqa")
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate([(12, 16), (12, 16), (9, 7), (9, 7)]):
        p = root / f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    cset = CorrelationSet("tid2013", root, dist=[paths[1], paths[3]], ref=[paths[0], paths[2]],
                          ref_id=["a", "b"], score=np.array([1.0, 2.0]), dist_type=["x", "y"],
                          level=np.array([1, 2]), higher_is_better=True, score_name="mos", synthetic=True)
    return pack_correlation_set(cset, root / "iqa.h5")


def _iqa_swap(name: str, **create: Any) -> Callable[[h5py.File], None]:
    return lambda f: _swap(f, name, **create)


IQA_CASES: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "pixels 10^12, never written": (_iqa_swap("pixels", shape=(10**12,), dtype=np.uint8, chunks=(1 << 20,)),
                                    r"array /pixels declares shape \(1000000000000,\) of uint8"),
    "gzip pixels": (lambda f: _swap(f, "pixels", data=f["pixels"][...], compression="gzip"),
                    r"array /pixels is stored through filter\(s\) deflate"),
    "n_images text": (_set_attr("/", "n_images", "four"), r"attribute 'n_images' of / is 'four'"),
    "n_items a float": (_set_attr("/", "n_items", 2.0), r"attribute 'n_items' of / is"),
    "higher_is_better text": (_set_attr("/", "higher_is_better", "yes"), r"attribute 'higher_is_better' of /"),
    "offsets of another length": (_iqa_swap("offsets", data=np.zeros(9, np.int64)),
                                  r"array /offsets is int64 \(9,\), expected integers \(M\+1,\)"),
    "float offsets": (lambda f: _swap(f, "offsets", data=f["offsets"][...].astype(np.float64)),
                      r"array /offsets is float64"),
    "shapes with 4 columns": (_iqa_swap("shapes", data=np.ones((4, 4), np.int32)), r"array /shapes is int32 \(4, 4\)"),
    "digest a number": (_set_attr("/", "sha256:level", 3), r"attribute 'sha256:level' of / is 3"),
    "pixels a soft link": (lambda f: (f.move("pixels", "px"), f.__setitem__("pixels", h5py.SoftLink("/px"))),
                           r"array /pixels is a soft link"),
}


@pytest.mark.parametrize("case", sorted(IQA_CASES))
def test_iqa_file_is_checked_before_any_read(good_iqa, tmp_path, case, capsys):
    edit, match = IQA_CASES[case]
    bad = _copy(good_iqa, tmp_path / "bad_iqa.h5", edit)
    for call in (lambda: verify_iqa(bad), lambda: PackedCorrelationSet(bad)):
        with pytest.raises(DataError, match=match) as ei:
            call()
        assert str(ei.value).startswith(str(bad)), str(ei.value)
    assert main(["verify", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_iqa_shapes_disagreeing_with_offsets_after_recomputed_digests(good_iqa, tmp_path):
    from bapps_toolkit.data.iqa.pack_iqa import _digest

    def edit(f: h5py.File) -> None:
        shapes = f["shapes"][...]
        shapes[0] = (-12, -16, 3)
        f["shapes"][...] = shapes
        f.attrs["sha256:shapes"] = _digest(shapes)

    bad = _copy(good_iqa, tmp_path / "neg.h5", edit)
    with pytest.raises(DataError, match=r"neg\.h5: shapes disagree with offsets"):
        PackedCorrelationSet(bad)


def test_packed_iqa_reads_one_image_at_a_time(good_iqa):
    cset = PackedCorrelationSet(good_iqa)
    try:
        assert "pixels" not in cset.data
        ref, dist = cset.pair(1)
        assert ref.shape == dist.shape == (9, 7, 3)
    finally:
        cset.close()
