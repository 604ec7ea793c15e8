"""No silent resize of judged stimuli: a study of 128 px images, exported with ``judge export``
(BAPPS folder or CSV manifests) and packed with ``bapps pack``, stays 128 px; the export records
the images' size and the on-screen size; a folder of mixed sizes is refused, naming both."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.cli.main import main
from bapps_toolkit.data import load_2afc, pack, verify
from bapps_toolkit.errors import DataError

from .helpers import build_unjudged


def _upscale(root) -> None:
    """Every PNG of ``root`` brought to 128×128 (the study's stimuli are 128 px)."""
    for f in root.rglob("*.png"):
        im = Image.open(f)
        im.resize((128, 128), Image.Resampling.NEAREST).save(f)


@pytest.fixture()
def judged_db(tmp_path):
    from bapps_toolkit.judge import create_from_set

    from .test_judge_sets_export import _answer, _client

    root = tmp_path / "set"
    build_unjudged(root, n_2afc=4, n_jnd=2)
    _upscale(root)
    db = create_from_set(root, tmp_path / "s.sqlite", judgments_per_item=1, sentinel_share=0.0, display_px=384)
    _answer(_client(db), "u1", choose=lambda t: "left" if t["kind"] == "2afc" else "same")
    return db


@pytest.mark.parametrize("fmt", ["bapps", "csv"])
def test_judged_128px_study_exports_and_packs_at_128(judged_db, tmp_path, fmt):
    out = tmp_path / f"x-{fmt}"
    assert main(["judge", "export", "--db", str(judged_db), "--out", str(out), "--format", fmt]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["image_sizes"] == ["128x128"]
    assert summary["display_px"] == 384 and summary["scaling"] == "nearest"
    sources = [str(out)] if fmt == "bapps" else [str(p) for p in sorted(out.glob("manifest_*.csv"))]
    h5 = tmp_path / f"x-{fmt}.h5"
    assert main(["pack", *sources, str(h5), "--no-progress"]) == 0
    assert set(verify(h5)["sizes"].values()) == {128}
    (s,) = load_2afc(h5)
    assert s.ref.shape[1:] == (128, 128, 3)
    stem = s.stems[0]
    folder = out / "2afc" / "val" / "cnn" / "ref" / f"{stem}.png" if fmt == "bapps" else None
    if folder is not None:  # byte-exact pixels: nothing was resampled on the way
        assert np.array_equal(np.asarray(Image.open(folder).convert("RGB")), s.ref[0])


def test_folder_of_mixed_sizes_is_refused_naming_both(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/denoise",), n=3)
    f = root / "2afc" / "val" / "denoise" / "p1" / "000002.png"
    Image.open(f).resize((96, 96)).save(f)
    with pytest.raises(DataError, match=r"mixed sizes: .*000002.png is 96x96 but .*is 64x64.*--size N"):
        pack(root, tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()
    assert verify(pack(root, tmp_path / "o.h5", size=64, progress=False))["sizes"] == {"2afc/val/denoise": 64}


def test_folder_of_non_square_images_is_refused(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/denoise",), n=2)
    f = root / "2afc" / "val" / "denoise" / "ref" / "000000.png"
    Image.open(f).resize((64, 48)).save(f)
    with pytest.raises(DataError, match=r"000000.png is 64x48, not square.*--size N"):
        pack(root, tmp_path / "o.h5", progress=False)


def test_export_with_a_damaged_display_setting_records_null(judged_db, tmp_path):
    con = sqlite3.connect(judged_db)
    con.execute("UPDATE config SET value='not json' WHERE name='display_px'")
    con.commit()
    con.close()
    from bapps_toolkit.judge.export import export

    summary = export(judged_db, tmp_path / "e")
    assert summary["display_px"] is None and summary["image_sizes"] == ["128x128"]
