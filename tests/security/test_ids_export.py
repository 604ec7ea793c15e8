"""Hostile item ids and stems, and every writer that names files or CSV cells from data.

An item id reaches the file system in ``bapps judge export`` (``<stem>.png`` / ``<stem>.npy``)
and CSV cells in every table the toolkit writes. The attacks: ids such as ``/abs/path`` or
``../../x`` from a manifest's ``id`` column, a packed file's ``stems`` or a study database's
``items.stem`` (export wrote there, with either format); a symbolic link planted in an output
folder; a rater id beginning with ``-`` in the export's ``raters.csv`` (spreadsheet formula
injection; the other CSV writers are in :mod:`.test_csv_cells`). Each must end in a
:class:`DataError` naming where the id was read, with nothing written outside the output folder,
or in a neutralised cell that reads back raw.
"""
from __future__ import annotations

import csv
import os
import sqlite3
import string
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bapps_toolkit._io import csv_cell, csv_raw, path_inside
from bapps_toolkit.data import load_2afc, pack, verify
from bapps_toolkit.data.h5format import stems_digest
from bapps_toolkit.data.ids import MAX_ID_LENGTH, check_id, check_ids
from bapps_toolkit.data.layout import scan_set
from bapps_toolkit.errors import DataError
from bapps_toolkit.judge import create_from_set, export, read_items, status_text
from bapps_toolkit.judge.answers import parse_answer
from bapps_toolkit.judge.store import check_rater, load_config, next_trial, open_study, record_answer

HOSTILE_IDS = {
    "absolute": "/abs/path",
    "parent": "../../escape",
    "dotdot": "..",
    "hidden": ".bashrc",
    "slash": "a/b",
    "backslash": "a\\b",
    "empty-ish": " ",
    "too-long": "a" * (MAX_ID_LENGTH + 1),
    "space": "my photo",
    "non-ascii": "caf\u00e9",
    "look-alike slash": "a\u2215b",
    "formula": "=HYPERLINK(\"http://x\")",
    "option": "-rf",
    "nul": "a\x00b",
    "newline": "a\nb",
    "escape": "\x1b[31mred",
}


# --------------------------------------------------------------------------- the validator


@pytest.mark.parametrize("name", sorted(HOSTILE_IDS))
def test_hostile_id_refused_naming_where(name):
    with pytest.raises(DataError, match=r"^manifest m\.csv: data row 3 \(line 4\), field 'id': .* is not a valid "
                                        r"item id: it .*\(an id is 1-128 characters"):
        check_id(HOSTILE_IDS[name], "manifest m.csv: data row 3 (line 4), field 'id'")


@pytest.mark.parametrize("good", ["000001", "img_1.v2", "A-b", "_x", "9", "a" * MAX_ID_LENGTH, "sentinel0003"])
def test_valid_ids_pass(good):
    assert check_id(good, "here") == good


def test_ids_unique_ignoring_case():
    assert check_ids(["a", "b"], "w") == ["a", "b"]
    with pytest.raises(DataError, match=r"w, entry 2: id 'IMG' repeats entry 0 \('img'\); ids must be unique"):
        check_ids(["img", "b", "IMG"], "w")


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200),
                 st.text(alphabet=string.ascii_letters + string.digits + "._-/\\ \n\x00", max_size=140)))
def test_fuzz_id_validator(text):
    """Any text is either refused with a DataError or is one safe file-name component."""
    try:
        got = check_id(text, "fuzz")
    except DataError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    assert got == text and 1 <= len(text) <= MAX_ID_LENGTH
    assert text[0] not in ".-" and "/" not in text and "\\" not in text and text.isascii()
    assert Path("/out", text + ".png").parent == Path("/out")
    assert csv_cell(text) == text  # a valid id never needs neutralising


# --------------------------------------------------------------------------- path_inside


def test_path_inside_refuses_escapes(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert path_inside(out, "2afc", "a.png") == (out / "2afc" / "a.png").resolve()
    for parts in (("/etc/passwd",), ("..", "x"), ("a", "..", "..", "x"), ("",), (".",)):
        with pytest.raises(DataError, match=r"refusing to write .* from db\.sqlite"):
            path_inside(out, *parts, source="db.sqlite")
    (out / "link").symlink_to(tmp_path)  # a link planted in the output folder
    with pytest.raises(DataError, match=r"leads outside the output folder"):
        path_inside(out, "link", "x.png")
    with pytest.raises(DataError, match=r"not a usable path"):
        path_inside(out, "a\x00b")


# --------------------------------------------------------------------------- a small study


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((16, 16, 3), value % 256, np.uint8)
    a[0, 0] = (value * 7) % 256
    Image.fromarray(a).save(path)


def _manifest(folder: Path, ids: list[str]) -> Path:
    for i in range(len(ids)):
        for role in ("ref", "p0", "p1"):
            _png(folder / f"{role}{i}.png", 3 * i + ("ref", "p0", "p1").index(role))
    path = folder / "m.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ref", "p0", "p1", "judge", "id"])
        w.writerows([f"ref{i}.png", f"p0{i}.png", f"p1{i}.png", "0.5", s] for i, s in enumerate(ids))
    return path


def _answer_all(db: Path, rater: str) -> None:
    con = open_study(db)
    try:
        cfg = load_config(con)
        check_rater(con, rater, None, False)
        while not (t := next_trial(con, rater, cfg))["done"]:
            record_answer(con, rater, cfg, parse_answer({"item": t["item"], "side": "left", "rt_ms": 500.0}))
    finally:
        con.close()


def _judged_study(tmp_path: Path, rater: str = "r1") -> Path:
    db = create_from_set(_manifest(tmp_path / "set", ["a1", "a2", "a3"]), tmp_path / "s.sqlite",
                         judgments_per_item=1, sentinel_share=0.0)
    _answer_all(db, rater)
    return db


@pytest.mark.parametrize("hostile", ["/abs/path", "../../escape"])
def test_manifest_id_refused_before_a_study_is_made(tmp_path, hostile):
    """Old code: the ids went into the study and ``export`` wrote ``ID.png`` there."""
    if hostile.startswith("/"):
        hostile = str(tmp_path / "abs" / "x")
    m = _manifest(tmp_path / "set", ["ok1", hostile, "ok3"])
    with pytest.raises(DataError, match=r"m\.csv: data row 2 \(line 3\), field 'id': .* is not a valid item id"):
        read_items(m)
    with pytest.raises(DataError, match=r"data row 2 \(line 3\), field 'id'"):
        pack(m, tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "abs").exists() and not (tmp_path / "o.h5").exists()


def _poison_stems(db: Path, stems: dict[int, str]) -> None:
    con = sqlite3.connect(db)
    con.executemany("UPDATE items SET stem=? WHERE id=?", [(s, i) for i, s in stems.items()])
    con.commit()
    con.close()


@pytest.mark.parametrize("fmt", ["bapps", "csv"])
@pytest.mark.parametrize("kind", ["absolute", "parent"])
def test_export_refuses_hostile_database_stems(tmp_path, fmt, kind):
    """A study database edited (or sent) with stems that are paths: export writes nothing anywhere."""
    db = _judged_study(tmp_path)
    victim = tmp_path / "victim"
    stem = str(victim / "pwned") if kind == "absolute" else "../../../victim/pwned"
    _poison_stems(db, {2: stem})
    out = tmp_path / "deep" / "er" / "export"
    with pytest.raises(DataError, match=r"study database .*s\.sqlite: items row id=2, field 'stem': "
                                        r".* is not a valid item id"):
        export(db, out, fmt=fmt)
    assert not victim.exists() and not out.exists()
    assert not list((tmp_path / "deep" / "er").glob(".export*"))  # no temporary folder left
    with pytest.raises(DataError, match=r"items row id=2, field 'stem'"):
        status_text(db)


@pytest.mark.parametrize("column,value,match", [
    ("set_key", "../../x/y/z", r"items row id=1, field 'set_key': '\.\./\.\./x/y/z' is not a set key"),
    ("set_key", "2afc/val/..", r"items row id=1, field 'set_key'"),
    ("kind", "jnd", r"items row id=1, field 'kind': 'jnd' does not match its set key '2afc/val/own'"),
    ("stem", "A2", r"items row id=2, field 'stem': 'a2' repeats item 1 of set 2afc/val/own .*ignoring case"),
])
def test_export_refuses_other_hostile_item_fields(tmp_path, column, value, match):
    db = _judged_study(tmp_path)
    con = sqlite3.connect(db)
    con.execute(f"UPDATE items SET {column}=? WHERE id=1", (value,))  # SQLite's UNIQUE is case-sensitive
    con.commit()
    con.close()
    for fmt in ("bapps", "csv"):
        with pytest.raises(DataError, match=match):
            export(db, tmp_path / "out", fmt=fmt)
    assert not (tmp_path / "out").exists()


def test_export_refuses_hostile_rater_and_answer_rows(tmp_path):
    db = _judged_study(tmp_path)
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys=OFF")
    con.execute("UPDATE answers SET answer=7 WHERE id=1")
    con.commit()
    with pytest.raises(DataError, match=r"answers row id=1, fields 'answer','rt_ms': 7, 500\.0"):
        export(db, tmp_path / "out")
    con.execute("UPDATE answers SET answer=1, rater='ghost' WHERE id=1")
    con.commit()
    with pytest.raises(DataError, match=r"answers row id=1, fields 'rater','item': 'ghost', 1 are not both"):
        export(db, tmp_path / "out")
    con.execute("UPDATE answers SET rater='r1' WHERE id=1")
    con.execute("INSERT INTO raters (id, created) VALUES ('=cmd|calc', 0)")
    con.commit()
    con.close()
    with pytest.raises(DataError, match=r"raters row, field 'id': '=cmd\|calc' is not a rater id"):
        export(db, tmp_path / "out")


def test_export_neutralises_rater_cells(tmp_path):
    """``-A1`` is a valid rater id and a spreadsheet formula: raters.csv holds ``'-A1``."""
    db = _judged_study(tmp_path, rater="-A1")
    summary = export(db, tmp_path / "out", fmt="csv")
    assert summary["items_exported"] == 3
    with open(tmp_path / "out" / "raters.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["rater"] for r in rows] == ["'-A1"] and csv_raw(rows[0]["rater"]) == "-A1"
    with open(tmp_path / "out" / "manifest_2afc.csv", newline="", encoding="utf-8") as fh:
        assert [r["stem"] for r in csv.DictReader(fh)] == ["a1", "a2", "a3"]


# --------------------------------------------------------------------------- packed files


def _rewrite_stems(h5: Path, key: str, stems: list[str]) -> None:
    with h5py.File(h5, "r+") as f:
        del f[key]["stems"]
        ds = f[key].create_dataset("stems", data=np.array(stems, dtype=object), dtype=h5py.string_dtype("utf-8"))
        ds.attrs["sha256"] = stems_digest(stems)  # a forger recomputes the digest


@pytest.mark.parametrize("stems,entry,problem", [
    (["a1", "/abs/path", "a3"], 1, "holds a path separator '/'"),
    (["a1", "a2", "../../escape"], 2, "starts with '.'"),
    (["a1", "\u00ff\u00fe", "a3"], 1, "holds the character"),
    (["ok", "a2", "OK"], 2, None),
])
def test_packed_stems_refused(tmp_path, stems, entry, problem):
    m = _manifest(tmp_path / "set", ["a1", "a2", "a3"])
    h5 = pack(m, tmp_path / "o.h5", progress=False)
    _rewrite_stems(h5, "2afc/val/own", stems)
    bad = rf"packed file .*o\.h5: array /2afc/val/own/stems, entry {entry}: " + (
        f".* is not a valid item id: it {problem}" if problem else "id 'OK' repeats entry 0")
    for call in (lambda: read_items(h5), lambda: load_2afc(h5), lambda: verify(h5)):
        with pytest.raises(DataError, match=bad):
            call()


def test_write_refuses_hostile_stems(tmp_path):
    from bapps_toolkit.data.pack import write_packed

    arrays = {"ref": np.zeros((1, 8, 8, 3), np.uint8), "p0": np.zeros((1, 8, 8, 3), np.uint8),
              "p1": np.zeros((1, 8, 8, 3), np.uint8), "judge": np.zeros((1,), np.float32)}
    with pytest.raises(DataError, match=r"set 2afc/val/own to pack: stems, entry 0: '\.\./x'"):
        write_packed(tmp_path / "o.h5", {"2afc/val/own": (arrays, ["../x"])}, source="t", synthetic=True)
    assert not (tmp_path / "o.h5").exists()


# --------------------------------------------------------------------------- folders


@pytest.mark.parametrize("name,match", [
    ("my photo.png", r"file 'my photo\.png' \(rename it; its stem is its item id\): 'my photo' is not a valid item id"),
    ("-rf.png", r"'-rf' is not a valid item id: it starts with '-'"),
    ("A.png", r"two files with stem 'a' in .* \(stems are compared ignoring case\): A\.png and a\.png"),
])
def test_folder_stems_checked(tmp_path, name, match):
    root = tmp_path / "root"
    for role in ("ref", "p0", "p1"):
        for stem in ("000000", "a"):
            _png(root / "2afc/val/own" / role / f"{stem}.png", 1)
        _png(root / "2afc/val/own" / role / name, 2)
    with pytest.raises(DataError, match=match):
        scan_set(root, "2afc/val/own")
    with pytest.raises(DataError, match=match):
        read_items(root)


def test_nothing_written_outside_with_symlinked_export_parent(tmp_path):
    """The output folder may sit behind a link the user made: that is the user's choice, allowed."""
    db = _judged_study(tmp_path)
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "via")
    export(db, tmp_path / "via" / "out")
    assert sorted(p.name for p in (real / "out" / "2afc/val/own/judge").iterdir()) == ["a1.npy", "a2.npy", "a3.npy"]


_TEMPLATE: dict[str, bytes] = {}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stem=st.text(min_size=1, max_size=40))
def test_fuzz_export_never_writes_outside(tmp_path_factory, stem):
    """Whatever stem a database holds, export either refuses it (writing nothing) or writes
    below its output folder only."""
    if "db" not in _TEMPLATE:
        _TEMPLATE["db"] = _judged_study(tmp_path_factory.mktemp("tpl")).read_bytes()
    base = tmp_path_factory.mktemp("fz")
    db = base / "s.sqlite"
    db.write_bytes(_TEMPLATE["db"])
    _poison_stems(db, {1: stem})

    def files() -> set[Path]:
        return {p for p in tmp_path_factory.getbasetemp().rglob("*") if not p.name.startswith("s.sqlite")}

    before = files()
    out = base / "a" / "out"
    try:
        export(db, out)
    except DataError:
        assert files() - before <= {base / "a"}
        return
    assert all(p == base / "a" or p.is_relative_to(out) for p in files() - before)
