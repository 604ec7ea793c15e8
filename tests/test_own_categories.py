"""A folder set in the BAPPS layout with a category of the user's own (``2afc/val/denoise``,
``jnd/val/denoise``): packed, verified, evaluated, and shown as its own column in the report."""
from __future__ import annotations

from bapps_toolkit.data import find_sets, load_2afc, pack, verify
from bapps_toolkit.evaluate import evaluate
from bapps_toolkit.report.tables import to_markdown


def test_user_category_packs_verifies_evaluates_and_reports(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/cnn", "2afc/val/denoise", "jnd/val/denoise"), n=6)
    out = pack(root, tmp_path / "own.h5", progress=False)
    assert find_sets(out) == ["2afc/val/cnn", "2afc/val/denoise", "jnd/val/denoise"]
    assert verify(out)["sets"] == {"2afc/val/cnn": 6, "2afc/val/denoise": 6, "jnd/val/denoise": 6}
    (a,) = load_2afc(root, "val/denoise")
    (b,) = load_2afc(out, "val/denoise")
    assert a.stems == b.stems and (a.ref == b.ref).all()
    table = evaluate(out, ["l2", "ssim"], n_boot=20, device="cpu", progress=False)
    assert set(table.category) >= {"cnn", "denoise"}
    md = to_markdown(table)
    head = next(line for line in md.splitlines() if line.startswith("| metric"))
    cols = [c.strip() for c in head.strip("|").split("|")]
    assert cols[1:] == ["2AFC cnn", "2AFC denoise", "JND denoise"]
    rows = {line.split("|")[1].strip(): line for line in md.splitlines()[5:] if line.startswith("| ")}
    assert "l2" in rows and "ssim" in rows


def test_report_orders_user_categories_after_bapps(tiny_tree):
    root = tiny_tree(tuple(f"2afc/val/{c}" for c in ("denoise", "cnn", "traditional", "alpha")), n=4)
    table = evaluate(root, ["l2"], n_boot=10, device="cpu", progress=False)
    md = to_markdown(table, with_ci=False)
    head = next(line for line in md.splitlines() if line.startswith("| metric"))
    cols = [c.strip() for c in head.strip("|").split("|")][1:]
    # BAPPS's val categories in the paper's order, the user's sorted, then the mean column
    assert cols == ["2AFC trad", "2AFC cnn", "2AFC alpha", "2AFC denoise", "2AFC mean"]
