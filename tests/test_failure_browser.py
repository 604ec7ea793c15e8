"""The failure browser (``bapps evaluate … --browse DIR``): which items it picks (a hand-computed
case), what it writes on the synthetic mini set (images read back from the data, distances,
q, spatial maps of LPIPS and SSIM, the SYNTHETIC / UNCALIBRATED labels, no reference outside
the folder), the folder's safety (refused targets, nothing half-written), and hostile item ids
and labels (escaped in the page, never a file name)."""
from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bapps_toolkit.errors import BappsError
from bapps_toolkit.evaluate.distances import SetDistances
from bapps_toolkit.report.browser import MARKER, check_browser_dir, select_disagreements, write_browser
from bapps_toolkit.report.browser import write as write_mod
from bapps_toolkit.report.browser.images import Triplet

FILE_NAME = re.compile(r"^img/(i\d{5}-(ref|p0|p1)|m\d{5}-[01])\.png$")


# --------------------------------------------------------------------------------------------
# the selection, by hand

def _hand_set(key: str = "2afc/val/x") -> SetDistances:
    # item: 0 chose p1, metric p0 (gap .4) | 1 chose p0, metric p1 (gap .1) | 2 agree (gap .4)
    #       3 no confident majority (gap .9) | 4 tie (gap 0) | 5 chose p0, metric p1 (gap .2)
    return SetDistances(metric="m", label="m label", key=key, stems=["a", "b", "c", "d", "e", "f"],
                        d0=np.array([0.1, 0.3, 0.5, 0.0, 0.2, 0.6]), d1=np.array([0.5, 0.2, 0.1, 0.9, 0.2, 0.4]),
                        judge=np.array([0.9, 0.1, 0.9, 0.5, 1.0, 0.0]))


def test_selection_matches_a_hand_computed_case():
    jnd = SetDistances(metric="m", label="m label", key="jnd/val/x", stems=["j"], d=np.array([1.0]),
                       same=np.array([0.5]))
    sel = select_disagreements([_hand_set(), jnd], per_group=2)
    # nonzero gaps .4 .1 .4 .9 .2: median s = .4; margins: item 0 -> 1.0, item 5 -> .5, item 1 -> .25
    assert [(it.index, it.stem) for it in sel.items] == [(0, "a"), (5, "f")]
    assert [it.margin for it in sel.items] == pytest.approx([1.0, 0.5])
    assert [it.human_choice for it in sel.items] == [1, 0]
    assert sel.items[0].h == 0.9 and sel.items[0].d0 == 0.1 and sel.items[0].d1 == 0.5
    assert all(it.q is None and it.link is None for it in sel.items)
    (g,) = sel.groups  # the JND set is not a group
    assert (g.key, g.n_items, g.n_confident, g.n_disagree, g.shown) == ("2afc/val/x", 6, 5, 3, 2)
    # a stricter majority: h >= .95 or <= .05 leaves items 4 (tie) and 5
    strict = select_disagreements([_hand_set()], confidence=0.95)
    assert [it.index for it in strict.items] == [5]
    assert strict.groups[0].n_confident == 2
    # the scale is pooled over the metric's sets: a second set with one gap of 4.0 -> s = .4 still
    # (gaps .4 .1 .4 .9 .2 4.0, median .4); ranks never cross sets
    other = SetDistances(metric="m", label="m label", key="2afc/val/y", stems=["z"], d0=np.array([4.0]),
                         d1=np.array([0.0]), judge=np.array([0.0]))
    both = select_disagreements([_hand_set(), other])
    assert [(it.key, it.index) for it in both.items] == [("2afc/val/x", 0), ("2afc/val/x", 5),
                                                           ("2afc/val/x", 1), ("2afc/val/y", 0)]
    assert both.items[-1].margin == pytest.approx(4.0 / 0.4)


@pytest.mark.parametrize("kw", [{"confidence": 0.5}, {"confidence": 1.2}, {"per_group": 0}])
def test_selection_settings_are_checked(kw):
    with pytest.raises(ValueError):
        select_disagreements([_hand_set()], **kw)


# --------------------------------------------------------------------------------------------
# the page as a browser parses it

class _Page(HTMLParser):
    """Rows of the items table (data-* attributes, cell texts, img sources) and every URL."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.urls: list[str] = []
        self.scripts: list[dict] = []
        self._in_items = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href", "action") and v is not None]
        if tag == "script":
            self.scripts.append(a)
        if tag == "table" and a.get("id") == "items":
            self._in_items = True
        elif self._in_items and tag == "tr" and "data-metric" in a:
            self.rows.append({"attrs": a, "cells": [], "imgs": []})
        elif self._in_items and self.rows and tag == "td":
            self._cell = []
            self.rows[-1]["cells"].append(self._cell)
            self.rows[-1].setdefault("values", []).append(a.get("data-v"))
        elif self._in_items and self.rows and tag == "img":
            self.rows[-1]["imgs"].append(a["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_items = False
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _text(cell: list[str]) -> str:
    return "".join(cell).strip()


# --------------------------------------------------------------------------------------------
# on the mini set

SETS = ["2afc/val/color", "2afc/val/cnn", "jnd/val/cnn"]


@pytest.fixture(scope="module")
def evaluated(mini_h5):
    from bapps_toolkit.evaluate import run_evaluation

    return run_evaluation(mini_h5, ["l2", "ssim", "lpips-alex"], datasets=SETS, n_boot=20, progress=False,
                          backbone_weights=["alex=random"])


@pytest.fixture(scope="module")
def browser_dir(evaluated, mini_h5, tmp_path_factory):
    out = tmp_path_factory.mktemp("browse") / "failures"
    assert write_browser(evaluated, mini_h5, out, per_group=4) == out
    return out


def test_folder_layout_and_no_reference_outside(browser_dir):
    names = sorted(str(p.relative_to(browser_dir)) for p in browser_dir.rglob("*") if p.is_file())
    top = [n for n in names if not n.startswith("img/")]
    assert top == sorted([MARKER, "browser.css", "browser.js", "calibration.png", "index.html"])
    assert all(FILE_NAME.match(n) for n in names if n.startswith("img/"))
    page = parse(browser_dir / "index.html")
    # every URL in the page is a file of the folder; nothing is fetched from elsewhere
    assert page.urls and all(u in names for u in page.urls), set(page.urls) - set(names)
    assert page.scripts == [{"src": "browser.js"}]
    for name in ("index.html", "browser.js", "browser.css"):
        text = (browser_dir / name).read_text(encoding="utf-8")
        assert "http:" not in text and "https:" not in text and "//" + "cdn" not in text
    assert "Content-Security-Policy" in (browser_dir / "index.html").read_text()
    assert not [p for p in browser_dir.parent.iterdir() if p.name != "failures"]  # no temp left


def test_rows_show_the_selected_items_with_their_images_and_numbers(evaluated, browser_dir, mini_h5):
    from bapps_toolkit.data import TwoAFCDataset

    sel = select_disagreements(evaluated.distances, evaluated.calibration, per_group=4)
    page = parse(browser_dir / "index.html")
    assert len(page.rows) == len(sel.items) > 0
    assert {it.metric for it in sel.items} == {"l2", "ssim", "lpips-alex"}
    labels = {sd.metric: sd.label for sd in evaluated.distances}
    datasets = {k: TwoAFCDataset(mini_h5, [k], in_memory=False, output="uint8") for k in SETS[:2]}
    try:
        for it, row in zip(sel.items, page.rows, strict=True):
            cells = [_text(c) for c in row["cells"]]
            assert cells[1] == labels[it.metric] and cells[2] == it.key and cells[3] == it.stem
            assert float(row["values"][4]) == it.h and float(row["values"][5]) == it.d0
            assert float(row["values"][6]) == it.d1
            q = evaluated.calibration.probabilities(it.metric, it.key).q[it.index]
            assert float(row["values"][8]) == pytest.approx(q) and "(logistic)" in cells[8]
            item = datasets[it.key][it.index]
            assert item["stem"] == it.stem
            for src, part in zip(row["imgs"][:3], ("ref", "p0", "p1"), strict=True):
                got = np.asarray(Image.open(browser_dir / src).convert("RGB"))
                np.testing.assert_array_equal(got, item[part].numpy())
            # LPIPS and L2 draw their two spatial maps at the image size, SSIM over the valid 11x11 windows
            assert len(row["imgs"]) == 5, it.metric
            size = tuple(s - 10 for s in got.shape[1::-1]) if it.metric == "ssim" else got.shape[1::-1]
            for src in row["imgs"][3:]:
                assert Image.open(browser_dir / src).size == size, it.metric
    finally:
        for ds in datasets.values():
            ds.close()


def test_maps_are_the_metrics_spatial_distances(evaluated, browser_dir, mini_h5):
    from bapps_toolkit.report.browser.images import load_triplets, spatial_maps

    sel = select_disagreements(evaluated.distances, evaluated.calibration, per_group=4)
    # SSIM: the mean of its (1 - SSIM)/2 map is the distance; LPIPS: the mean of the per-layer maps
    # is, and bilinear upsampling to the image size moves that mean a little
    for mid, rel in (("lpips-alex", 5e-3), ("ssim", 1e-5)):
        it = next(i for i in sel.items if i.metric == mid)
        t = load_triplets(mini_h5, [(it.key, it.index, it.stem)])[(it.key, it.index)]
        ((m0, m1),) = spatial_maps(evaluated.metrics[mid], [t])
        assert m0.mean() == pytest.approx(it.d0, rel=rel)
        assert m1.mean() == pytest.approx(it.d1, rel=rel)
        assert not evaluated.metrics[mid].spatial  # the evaluated metric itself is left as it was


def test_page_labels_synthetic_and_uncalibrated(browser_dir):
    html = (browser_dir / "index.html").read_text()
    assert 'id="synthetic-banner"' in html and "(SYNTHETIC DATA)" in html
    assert 'id="uncalibrated-banner"' in html and "lpips-alex [UNCALIBRATED: random backbone]" in html
    assert 'id="calibration-table"' in html and "5-fold cross-fitting" in html


def test_rewrite_replaces_only_an_earlier_browser(evaluated, mini_h5, browser_dir, tmp_path):
    out = tmp_path / "b"
    write_browser(evaluated, mini_h5, out, per_group=1)
    first = len(parse(out / "index.html").rows)
    write_browser(evaluated, mini_h5, out, per_group=2)  # an earlier browser is replaced
    assert len(parse(out / "index.html").rows) > first
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    (tmp_path / "empty").mkdir()
    assert check_browser_dir(tmp_path / "empty") == tmp_path / "empty"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BappsError, match="holds other files"):
        write_browser(evaluated, mini_h5, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(BappsError, match="not a folder"):
        check_browser_dir(tmp_path / "file")
    (tmp_path / "link").symlink_to(browser_dir, target_is_directory=True)
    with pytest.raises(BappsError, match="not a folder"):
        check_browser_dir(tmp_path / "link")


def test_a_failure_leaves_nothing_half_written(evaluated, mini_h5, tmp_path, monkeypatch):
    def boom(data):
        raise RuntimeError("disk full")

    monkeypatch.setattr(write_mod, "render_page", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_browser(evaluated, mini_h5, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_browser(evaluated, mini_h5, tmp_path / "old", per_group=1)
    before = (tmp_path / "old" / "index.html").read_bytes()
    monkeypatch.setattr(write_mod, "render_page", boom)
    with pytest.raises(RuntimeError):
        write_browser(evaluated, mini_h5, tmp_path / "old", per_group=3)
    assert (tmp_path / "old" / "index.html").read_bytes() == before  # the earlier browser is kept
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


def test_cli_browse(mini_h5, tmp_path, capsys):
    from bapps_toolkit.cli.main import main

    out = tmp_path / "cli"
    assert main(["evaluate", str(mini_h5), "--metrics", "l2", "--datasets", "2afc/val/color",
                 "--n-boot", "20", "--no-progress", "--quiet", "--browse", str(out)]) == 0
    page = parse(out / "index.html")
    assert page.rows and {r["attrs"]["data-set"] for r in page.rows} == {"s0"}
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    capsys.readouterr()
    assert main(["evaluate", str(mini_h5), "--metrics", "l2", "--datasets", "2afc/val/color", "--n-boot", "20",
                 "--no-progress", "--quiet", "--browse", str(tmp_path / "taken")]) != 0
    assert "holds other files" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["x"]


# --------------------------------------------------------------------------------------------
# hostile ids and labels

HOSTILE_STEM = '../../x"><script>window.pwned=1</script><img src=y onerror="window.pwned=2">'
HOSTILE_LABEL = "<b>l2</b>' onmouseover='window.pwned=3"
HOSTILE_KEY = '2afc/val/"><script>window.pwned=4</script>'


def hostile_result():
    """A fake evaluation whose ids, labels and set key are hostile, with its images."""
    from bapps_toolkit.evaluate import EvaluationResult

    rng = np.random.default_rng(0)
    sd = SetDistances(metric="l2", label=HOSTILE_LABEL, key=HOSTILE_KEY,
                      stems=[HOSTILE_STEM, "/etc/passwd", "..", "ok"],
                      d0=np.array([0.1, 0.2, 0.9, 0.1]), d1=np.array([0.5, 0.6, 0.1, 0.05]),
                      judge=np.array([1.0, 0.9, 0.0, 1.0]))
    table = pd.DataFrame([{"metric": "l2", "label": HOSTILE_LABEL, "calibrated": False, "mode": "2afc",
                           "split": "val", "category": '"><script>window.pwned=4</script>', "synthetic": True}])
    triplets = {(HOSTILE_KEY, i): Triplet(*(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)))
                for i in range(4)}
    res = EvaluationResult(table=table, distances=[sd], n_boot=0, seed=0)
    return res, triplets


def write_hostile(out: Path, monkeypatch) -> Path:
    res, triplets = hostile_result()
    monkeypatch.setattr(write_mod, "load_triplets", lambda source, wanted: triplets)
    return write_browser(res, "unused.h5", out)


def test_hostile_ids_are_escaped_and_never_file_names(tmp_path, monkeypatch):
    out = write_hostile(tmp_path / "b", monkeypatch)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<script>window" not in html and "<b>l2</b>" not in html and 'onerror="' not in html
    assert html.count("<script") == 1 and "onmouseover='" not in html
    page = parse(out / "index.html")
    assert [_text(r["cells"][3]) for r in page.rows] == ["..", HOSTILE_STEM, "/etc/passwd"]  # as text
    assert {_text(r["cells"][1]) for r in page.rows} == {HOSTILE_LABEL}
    # the filter values are indices, not data
    assert {r["attrs"]["data-metric"] for r in page.rows} == {"m0"} and {
        r["attrs"]["data-set"] for r in page.rows} == {"s0"}
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert all(FILE_NAME.match(f) for f in files if "/" in f)
    assert {p.name for p in tmp_path.iterdir()} == {"b"}  # nothing written beside or above the folder
    assert not (tmp_path / "x").exists() and not Path("/x").exists()


def test_hostile_page_keeps_its_images_in_the_folder(tmp_path, monkeypatch):
    out = write_hostile(tmp_path / "b", monkeypatch)
    page = parse(out / "index.html")
    for r in page.rows:
        for src in r["imgs"]:
            assert FILE_NAME.match(src)
            assert Image.open(io.BytesIO((out / src).read_bytes())).size == (8, 8)
