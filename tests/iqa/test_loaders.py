"""Loaders on replicas in each set's exact layout, detection, and layout errors named."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from bapps_toolkit.data.iqa import detect_format, find_benchmarks, loader
from bapps_toolkit.data.iqa import live as live_mod
from bapps_toolkit.data.iqa import nights as nights_mod
from bapps_toolkit.data.iqa import pieapp as pieapp_mod
from bapps_toolkit.errors import DataError

from . import replicas


def test_tid2013_case_quirks(replica_root):
    s = loader("tid2013")(replica_root / "tid2013")
    assert len(s) == 45 and s.higher_is_better and s.synthetic
    refs = {p.name for p in s.ref}
    assert refs == {"I01.BMP", "I02.BMP", "i25.bmp"}
    assert any(p.name.startswith("I02_") for p in s.dist)  # capital I on disk, 'i' in the label file
    assert set(s.dist_type) == {"01", "08", "10"} and set(s.level.tolist()) == {1, 2, 3, 4, 5}
    assert all(p.exists() for p in s.dist)


def test_kadid_pipal_csiq(replica_root):
    k = loader("kadid10k")(replica_root / "kadid10k")
    assert len(k) == 60 and k.higher_is_better and k.ref_id[0] == "I01"
    p = loader("pipal")(replica_root / "pipal")
    assert len(p) == 48 and set(p.ref_id) == {"A0001", "A0003", "A0005"}
    c = loader("csiq")(replica_root / "csiq")
    assert len(c) == 3 * (5 + 5 + 5 + 4) and not c.higher_is_better
    assert "jpeg2000" in c.dist_type and "1600" in c.ref_id
    assert all(p.exists() for p in c.dist)


def test_live_drops_reference_copies_and_names_the_score(replica_root):
    realigned = live_mod.load(replica_root / "live")
    n_copies = sum(n // 7 for _, n in live_mod.FOLDERS)
    assert len(realigned) == live_mod.TOTAL - n_copies
    assert realigned.name == "live" and "dmos_new" in realigned.score_name
    plain = live_mod.load(replica_root / "live", scores="dmos")
    assert plain.name == "live-dmos"
    np.testing.assert_allclose(realigned.score, plain.score * 0.9 + 2)
    assert not realigned.higher_is_better
    with pytest.raises(DataError, match="choose 'realigned'"):
        live_mod.load(replica_root / "live", scores="new")


def test_pieapp_test_scores_and_pairs(replica_root):
    t = pieapp_mod.load(replica_root / "pieapp")
    assert len(t) == 16  # 8 per reference, the duplicated row kept once
    assert not t.higher_is_better and set(t.dist_type) == set(replicas.KINDS)
    pairs = pieapp_mod.load_pairs(replica_root / "pieapp", "train")
    assert len(pairs) == 2 * 28 and np.all((pairs.judge >= 0) & (pairs.judge <= 1))
    test_pairs = pieapp_mod.load_pairs(replica_root / "pieapp", "test")
    assert any(p.name == "ref_3.png" for p in test_pairs.p0)  # A may be the reference
    assert len(test_pairs) < 2 * 36  # blank (unasked) raw values skipped


def test_nights_splits_and_votes(replica_root):
    root = replica_root / "nights"
    counts = {sp: len(nights_mod.load(root, sp)) for sp in nights_mod.SPLITS}
    # 12 rows split by id % 3; ids 5 and 11 (test) have 5 votes and are dropped; imagenet: id % 4 == 2
    assert counts == {"train": 4, "val": 4, "test": 2, "test_imagenet": 1, "test_no_imagenet": 1}
    s = nights_mod.load(root, "train")
    assert s.p0[0].name.endswith("_0.png") and s.p1[0].name.endswith("_1.png")
    assert set(np.unique(s.judge)) <= {0.0, 1.0}


def test_detection(replica_root):
    found = dict((f, p.name) for f, p in find_benchmarks(replica_root))
    assert found == {n: n for n in replicas.BUILDERS}
    assert detect_format(replica_root / "live") == "live"
    assert detect_format(replica_root / "live", "csiq") == "csiq"
    with pytest.raises(DataError, match="unknown benchmark format"):
        detect_format(replica_root, "foo")


@pytest.mark.parametrize("fmt, victim, named", [
    ("tid2013", "mos_with_names.txt", "mos_with_names.txt"),
    ("tid2013", "reference_images/i25.bmp", "I25.BMP"),
    ("tid2013", "distorted_images/I02_08_3.bmp", "i02_08_3.bmp"),
    ("kadid10k", "kadid10k/images/I02_03_04.png", "I02_03_04.png"),
    ("pipal", "Train_Ref", "Train_Ref"),
    ("live", "databaserelease2/gblur/img3.bmp", "img3.bmp"),
    ("live", "databaserelease2/refnames_all.mat", "refnames_all.mat"),
    ("csiq", "dst_imgs/jpeg2000/boston.jpeg2000.2.png", "boston.jpeg2000.2.png"),
    ("pieapp", "PieAPP_dataset_CVPR_2018/labels/test", "test"),
    ("nights", "nights/distort/000/003_1.png", "003_1.png"),
])
def test_layout_errors_name_what_is_missing(replica_root, tmp_path, fmt, victim, named):
    root = tmp_path / fmt
    shutil.copytree(replica_root / fmt, root)
    target = root / victim
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DataError, match=named.replace(".", r"\.")):
        if fmt == "nights":
            nights_mod.load(root, "train")
        else:
            loader(fmt)(root)


def test_bad_rows_named(replica_root, tmp_path):
    root = tmp_path / "tid"
    shutil.copytree(replica_root / "tid2013", root)
    lines = (root / "mos_with_names.txt").read_text().splitlines()
    lines[3] = "x.y i01_01_4.bmp"
    (root / "mos_with_names.txt").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"mos_with_names.txt line 4.*'x.y'"):
        loader("tid2013")(root)
    nroot = tmp_path / "n"
    shutil.copytree(replica_root / "nights", nroot)
    csv_text = (nroot / "nights" / "data.csv").read_text().replace("ref/000/000.png", "../../etc/passwd")
    (nroot / "nights" / "data.csv").write_text(csv_text)
    with pytest.raises(DataError, match="refusing path part"):
        nights_mod.load(nroot, "train")
