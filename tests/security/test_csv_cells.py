"""CSV cells written from data are neutralised against spreadsheet formula injection (OWASP):
a cell beginning with ``= + - @``, a tab or a carriage return (and ``'``, so the rule can be
undone) gets a leading ``'``; plain numbers stay as they are; dropping one leading ``'`` gives the
raw value back. Checked on the rule itself (fuzzed round trip) and on the CSVs of ``bapps score``
(which also reads its own CSV back when it resumes), per-item distances and score tables. The
export's ``raters.csv`` is checked in :mod:`.test_ids_export`.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bapps_toolkit._io import CSV_TRIGGERS, csv_cell, csv_raw


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((16, 16, 3), value % 256, np.uint8)
    a[0, 0] = (value * 7) % 256
    Image.fromarray(a).save(path)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=50))
def test_fuzz_csv_cell_round_trip(text):
    cell = csv_cell(text)
    assert csv_raw(cell) == text
    assert isinstance(cell, str)
    first = cell[:1]
    assert first not in CSV_TRIGGERS - {"'", "-", "+"}
    if first and first in "-+":
        float(cell)  # only a plain number may start with a sign


@pytest.mark.parametrize("text,written", [
    ("=1+1", "'=1+1"), ("+A1", "'+A1"), ("-A1", "'-A1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("'quoted", "''quoted"), ("-0.25", "-0.25"), ("+1e-3", "+1e-3"), ("nan", "nan"),
    ("a=b", "a=b")])
def test_csv_cell_rules(text, written):
    assert csv_cell(text) == written and csv_raw(written) == text



def test_score_csv_neutralised_and_resumes(tmp_path):
    """File names are data: ``=1+1.png`` is written ``'=1+1.png``; a rerun reads it back raw."""
    from bapps_toolkit.scoring import score_folders

    d0, d1 = tmp_path / "d0", tmp_path / "d1"
    names = ["=1+1.png", "-A1.png", "@x.png", "plain.png"]
    for i, n in enumerate(names):
        _png(d0 / n, i)
        _png(d1 / n, i + 9)
    out = tmp_path / "s.csv"
    first = score_folders(d0, d1, metric="l2", out=out)
    with open(out, newline="", encoding="utf-8") as fh:
        cells = [r["file"] for r in csv.DictReader(fh)]
    assert sorted(cells) == sorted(["'=1+1.png", "'-A1.png", "'@x.png", "plain.png"])
    text = out.read_text(encoding="utf-8")
    marked = "\n".join(",".join([*line.split(",")[:1], "123", *line.split(",")[2:]])
                       if line.startswith("'=1+1.png,") else line for line in text.split("\n"))
    out.write_text(marked, encoding="utf-8")
    again = score_folders(d0, d1, metric="l2", out=out)  # resumes: every pair found, names read raw
    i = [p.name for p in again.files0].index("=1+1.png")
    assert again.distances[i] == 123.0  # taken from the file, so '=1+1.png was read as =1+1.png
    keep = [k for k in range(len(names)) if k != i]
    np.testing.assert_allclose(np.asarray(again.distances)[keep], np.asarray(first.distances)[keep], rtol=1e-7)
    assert out.read_text(encoding="utf-8").count("\n") == len(names) + 1


def test_distances_and_report_csv_neutralised(tmp_path):
    import pandas as pd

    from bapps_toolkit.evaluate.distances import SetDistances, write_distances
    from bapps_toolkit.report.tables import write_csv

    sd = SetDistances("=evil", "-A1 label", "2afc/val/own", ["a", "b"], d0=np.array([-0.5, 0.1]),
                      d1=np.array([0.2, 0.3]), judge=np.array([0.5, 0.5]))
    write_distances([sd], tmp_path / "d.csv")
    frame = pd.read_csv(tmp_path / "d.csv")
    assert set(frame["metric"]) == {"'=evil"} and set(frame["label"]) == {"'-A1 label"}
    assert list(frame["d0"]) == [-0.5, 0.1]
    table = pd.DataFrame({"metric": ["=evil", "ok"], "score": [-0.25, 0.5]})
    write_csv(table, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv")
    assert list(back["metric"]) == ["'=evil", "ok"] and list(back["score"]) == [-0.25, 0.5]
    assert [csv_raw(x) for x in back["metric"]] == ["=evil", "ok"]
