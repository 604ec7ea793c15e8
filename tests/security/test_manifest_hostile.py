"""Hostile CSV manifests: every bad cell ends in a DataError naming the CSV, the data row and
the field, never in another exception.

The cases that used to end in tracebacks or in errors without the row: a vote count too large
for int64 (``OverflowError``), an image name too long for the file system (``OSError``
ENAMETOOLONG), one image named twice through different texts (``a.png`` / ``./a.png`` / a
symbolic link, compared as text), a PNG cut short after its header (reported without row and
field, in-process or from a decode worker). Then property-based fuzzing of the reader.
"""
from __future__ import annotations

import csv
import io
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import bapps_toolkit.data.decode as decode_mod
from bapps_toolkit.data import pack
from bapps_toolkit.data.manifest import Manifest, read_manifests
from bapps_toolkit.errors import DataError
from bapps_toolkit.judge import read_items


def _png(path: Path, value: int, side: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(value).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _images(folder: Path, n: int) -> None:
    for i in range(n):
        for role in ("ref", "p0", "p1"):
            _png(folder / f"{role}{i}.png", 10 * i + ("ref", "p0", "p1").index(role))


def _rows(n: int) -> list[list[str]]:
    return [[f"ref{i}.png", f"p0{i}.png", f"p1{i}.png", "1", "2"] for i in range(n)]


HEAD = ["ref", "p0", "p1", "votes_p0", "votes_p1"]


@pytest.mark.parametrize("value,match", [
    ("99999999999999999999",
     r"field 'votes_p0': 99999999999999999999 is too large \(a vote count is at most 1000000000\)"),
    ("9" * 5000, r"field 'votes_p0': '9{60}'… \(5000 characters\) is too large"),
    ("1000000001", r"field 'votes_p0': 1000000001 is too large"),
    ("-99999999999999999999", r"field 'votes_p0': -99999999999999999999 is negative"),
    ("1e30", r"field 'votes_p0': 1e30 is not an integer vote count"),
    ("\u0661\u0662", r"field 'votes_p0': \u0661\u0662 is not an integer vote count"),  # ASCII digits only
    ("0x10", r"field 'votes_p0': '0x10' is not a number"),
])
def test_vote_overflow_named(tmp_path, value, match):
    _images(tmp_path, 2)
    rows = _rows(2)
    rows[1][3] = value
    m = _write(tmp_path / "m.csv", HEAD, rows)
    with pytest.raises(DataError, match=r"manifest .*m\.csv: data row 2 \(line 3\), " + match):
        read_manifests([m])


def test_votes_at_the_limit_are_packed(tmp_path):
    _images(tmp_path, 1)
    rows = _rows(1)
    rows[0][3:5] = ["1000000000", "1000000000"]
    man = read_manifests([_write(tmp_path / "m.csv", HEAD, rows)])
    assert man.sets[0].n_votes.tolist() == [2_000_000_000] and man.sets[0].judgments.tolist() == [0.5]


@pytest.mark.parametrize("name", ["a" * 300 + ".png", "d/" * 2100 + "x.png", "x\x00.png"])
def test_unusable_image_path_named(tmp_path, name):
    _images(tmp_path, 2)
    rows = _rows(2)
    rows[1][1] = name
    m = _write(tmp_path / "m.csv", HEAD, rows)
    with pytest.raises(DataError, match=r"m\.csv: data row 2 \(line 3\), field 'p0': "):
        read_manifests([m])
    with pytest.raises(DataError, match=r"data row 2 \(line 3\), field 'p0': "):
        read_items(_write(tmp_path / "u.csv", ["ref", "p0", "p1"], [r[:3] for r in rows]))


def test_over_long_name_message(tmp_path):
    _images(tmp_path, 1)
    rows = _rows(1)
    rows[0][2] = "b" * 300 + ".png"
    with pytest.raises(DataError, match=r"field 'p1': cannot use image path 'b{200}'… \(304 characters\) "
                                        r"\(File name too long; 304 bytes\)"):
        read_manifests([_write(tmp_path / "m.csv", HEAD, rows)])


@pytest.mark.parametrize("second", ["./ref0.png", "sub/../ref0.png", "link.png", "LINK"])
def test_duplicates_compared_as_resolved_paths(tmp_path, second):
    _images(tmp_path, 1)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(tmp_path / "ref0.png")
    (tmp_path / "LINK").symlink_to("link.png")  # a link to a link
    rows = _rows(1) + [[second, "p00.png", "p10.png", "3", "4"]]
    m = _write(tmp_path / "m.csv", HEAD, rows)
    with pytest.raises(DataError, match=r"data row 2 \(line 3\): duplicate row: the same images as data row 1 "
                                        r"\(set 2afc/val/own; image paths compared after resolving links\)"):
        read_manifests([m])


def test_duplicate_ids_ignore_case(tmp_path):
    _images(tmp_path, 2)
    rows = [r + [i] for r, i in zip(_rows(2), ["Item", "item"], strict=True)]
    with pytest.raises(DataError, match=r"data row 2 \(line 3\): duplicate row: the same id 'item' as data row 1 "
                                        r"\(set 2afc/val/own; ids compared ignoring case\)"):
        read_manifests([_write(tmp_path / "m.csv", HEAD + ["id"], rows)])


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header survives: only decoding fails


def test_truncated_png_named_when_packing(tmp_path):
    _images(tmp_path, 3)
    _truncate(tmp_path / "p12.png")
    m = _write(tmp_path / "m.csv", HEAD, _rows(3))
    read_manifests([m])  # headers read fine
    with pytest.raises(DataError, match=r"manifest .*m\.csv: data row 3 \(line 4\), field 'p1': cannot decode "
                                        r"image .*p12\.png: corrupt or truncated"):
        pack(m, tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()


def test_truncated_png_named_from_a_worker_process(tmp_path, monkeypatch):
    _images(tmp_path, 12)
    _truncate(tmp_path / "ref9.png")
    monkeypatch.setattr(decode_mod, "POOL_MIN_IMAGES", 0)
    monkeypatch.setattr(decode_mod, "TASK_ITEMS", 2)
    m = _write(tmp_path / "m.csv", HEAD, _rows(12))
    with pytest.raises(DataError, match=r"data row 10 \(line 11\), field 'ref': cannot decode image .*ref9\.png"):
        pack(m, tmp_path / "o.h5", workers=2, progress=False)
    assert not (tmp_path / "o.h5").exists()


def test_truncated_png_named_in_a_study(tmp_path):
    _images(tmp_path, 2)
    _truncate(tmp_path / "p01.png")
    m = _write(tmp_path / "m.csv", ["ref", "p0", "p1"], [r[:3] for r in _rows(2)])
    with pytest.raises(DataError, match=r"m\.csv: data row 2 \(line 3\), field 'p0': cannot decode image"):
        read_items(m)


def test_blame_leaves_other_errors_alone(tmp_path):
    man = Manifest([], 16, False, "x")
    err = DataError("something else")
    assert man.blame(err) is err


# --------------------------------------------------------------------------- fuzzing

@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    """Images the fuzzed manifests may name: good ones, one of another size, a truncated one,
    a link loop, a folder."""
    d = tmp_path_factory.mktemp("manifest-fuzz")
    _images(d, 5)
    _png(d / "big.png", 99, side=24)
    _truncate(_png(d / "cut.png", 98))
    (d / "loop.png").symlink_to("loop.png")
    (d / "folder.png").mkdir()
    return d


COLUMNS = ["ref", "p0", "p1", "judge", "votes_p0", "votes_p1", "same", "votes_same", "votes_different",
           "split", "category", "id", "set_key", "stem", "n_p0", "n_p1", "extra", ""]
_IMAGE_CELLS = ["ref0.png", "p00.png", "p10.png", "ref1.png", "p01.png", "./p11.png", "big.png", "cut.png", "a" * 300,
                "loop.png", "folder.png", "missing.png", "/etc/passwd", "../../../etc/passwd", "a" * 300, ""]
_CELL = st.one_of(
    st.sampled_from(_IMAGE_CELLS),
    st.sampled_from(["0", "1", "0.5", "-1", "1e400", "nan", "inf", "99999999999999999999", "2", "1.5", "val",
                     "train", "own", "2afc/val/own", "jnd/val/own", "../x", "/abs", "=cmd", " ", "0x10"]),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.floats(allow_nan=True).map(repr),
    st.text(max_size=30),
)


_HEADERS = [["ref", "p0", "p1", "judge"], ["ref", "p0", "p1", "votes_p0", "votes_p1"], ["p0", "p1", "same"],
            ["p0", "p1", "votes_same", "votes_different"], ["ref", "p0", "p1"], ["p0", "p1"],
            ["ref", "p0", "p1", "judge", "n_p0", "n_p1", "set_key", "stem"]]
_GOOD = {"judge": ["0", "0.25", "1"], "same": ["0", "1", "0.5"], "votes_p0": ["0", "3", "1000000000"],
         "votes_p1": ["1", "2"], "votes_same": ["1", "0"], "votes_different": ["2", "1"], "n_p0": ["1"],
         "n_p1": ["2"], "split": ["val", "train"], "category": ["own", "blur"], "set_key": ["2afc/val/own"]}


def _good(draw: st.DrawFn, column: str, row: int) -> str:
    """A cell that passes the reader's checks for ``column`` in data row ``row`` (0-based)."""
    if column in ("ref", "p0", "p1"):
        return draw(st.sampled_from([f"{column}{row}.png", f"./{column}{row}.png"]))
    if column in ("id", "stem"):
        return f"item{row}"
    return draw(st.sampled_from(_GOOD.get(column, ["x"])))


@st.composite
def _manifest_text(draw: st.DrawFn) -> str:
    """CSV text: mostly a well-formed manifest with at most one hostile cell per row (so rows get
    past the first checks), else random columns and cells, else random characters."""
    mode = draw(st.sampled_from(["structured"] * 3 + ["columns", "text"]))
    if mode == "text":
        return draw(st.text(alphabet=st.sampled_from(list(string.printable) + ["\x00", "\ufeff", "\u00e9", '"']),
                            max_size=300))
    if mode == "structured":
        header = draw(st.sampled_from(_HEADERS)) + draw(st.lists(st.sampled_from(["category", "id", "extra"]),
                                                                 max_size=2, unique=True))
    else:
        header = draw(st.lists(st.sampled_from(COLUMNS), min_size=0, max_size=8))
    rows = []
    for i in range(draw(st.integers(1, 5)) if draw(st.integers(0, 9)) else 0):
        row = [_good(draw, c, i) for c in header]
        if header and (mode == "columns" or draw(st.booleans())):
            row[draw(st.integers(0, len(header) - 1))] = draw(_CELL)
        rows.append(row + ([draw(_CELL)] if draw(st.integers(0, 20)) == 0 else []))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


_COUNTER = iter(range(10 ** 9))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_manifest_text(), judged=st.booleans(), size=st.sampled_from([None, 8]))
def test_fuzz_manifest_reader(fuzz_dir, text, judged, size):
    """Random CSV text: a Manifest whose sets are consistent, or a DataError naming the CSV."""
    path = fuzz_dir / f"fz{next(_COUNTER)}.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        man = read_manifests([path], judged=judged, size=size)
    except DataError as exc:
        assert str(path) in str(exc) or path.name in str(exc)
        return
    finally:
        path.unlink()
    for sf in man.sets:
        assert len(sf.stems) == len(sf.judgments) >= 1
        assert all(len(files) == len(sf.stems) for files in sf.files.values())
        if judged:
            assert np.all((sf.judgments >= 0) & (sf.judgments <= 1))
        assert len({s.casefold() for s in sf.stems}) == len(sf.stems)
