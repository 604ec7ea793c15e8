"""make-mini: layout, determinism, the documented simulated observer, labelling as synthetic."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage.color import rgb2lab

from bapps_toolkit.cli.main import main
from bapps_toolkit.data import JNDDataset, TwoAFCDataset, find_sets, load_2afc, load_jnd, make_mini
from bapps_toolkit.data.layout import ALL_KEYS
from bapps_toolkit.data.mini import build as mini_mod


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def test_photos_ship_in_the_wheel():
    folder = mini_mod._photo_dir()
    for name in mini_mod.PHOTOS:
        assert (folder / name).is_file(), name
    photos = mini_mod.load_photos()
    assert len(photos) == 14 and all(p.dtype == np.uint8 and p.shape[2] == 3 for p in photos)


def test_layout_counts_and_judgment_grids(mini_root):
    assert find_sets(mini_root) == list(ALL_KEYS)
    for s in load_2afc(mini_root):
        assert len(s) == mini_mod.MINI_COUNTS[s.key]
        raters = 5 if s.split == "val" else 2
        votes = s.judge * raters
        np.testing.assert_allclose(votes, np.round(votes), atol=1e-5)
        assert s.judge.min() == 0.0 and s.judge.max() == 1.0 and 0.2 < s.judge.mean() < 0.8
        assert s.synthetic is True
        assert not np.array_equal(s.p0, s.p1) and not np.array_equal(s.ref, s.p0)
    for j in load_jnd(mini_root):
        votes = j.same * 3
        np.testing.assert_allclose(votes, np.round(votes), atol=1e-5)
        assert 0.15 < j.same.mean() < 0.85 and j.synthetic is True
    assert 250 <= min(mini_mod.MINI_COUNTS.values()) and max(mini_mod.MINI_COUNTS.values()) <= 300


def test_marked_synthetic_everywhere(mini_root, mini_h5):
    text = (Path(mini_root) / "SYNTHETIC.txt").read_text()
    assert text.startswith("SYNTHETIC DATA - NOT BAPPS, NOT HUMAN JUDGMENTS")
    assert "seed: 0" in text and "astronaut.png" in text
    assert TwoAFCDataset(mini_h5, "val/cnn").synthetic is True
    assert JNDDataset(mini_root).synthetic is True
    assert all(s.synthetic for s in load_2afc(mini_h5, "val"))


def _reference_observer(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The documented formula, computed independently with scikit-image's rgb2lab."""
    lx = rgb2lab(x.astype(np.float64) / 255.0)
    ly = rgb2lab(y.astype(np.float64) / 255.0)
    bx = ndimage.gaussian_filter(lx, (0, 1.5, 1.5, 0), mode="reflect")
    by = ndimage.gaussian_filter(ly, (0, 1.5, 1.5, 0), mode="reflect")
    e = np.sqrt(((bx - by) ** 2).sum(-1)).mean(axis=(1, 2))
    gx = np.hypot(*np.gradient(lx[..., 0], axis=(1, 2)))
    gy = np.hypot(*np.gradient(ly[..., 0], axis=(1, 2)))
    s = 1 - ((2 * gx * gy + 25) / (gx ** 2 + gy ** 2 + 25)).mean(axis=(1, 2))
    return 0.04 * e + 1.5 * s


def test_observer_matches_documented_formula(mini_h5):
    (s,) = load_2afc(mini_h5, "val/traditional")
    ours = mini_mod.observer_distance(s.ref[:40], s.p0[:40])
    np.testing.assert_allclose(ours, _reference_observer(s.ref[:40], s.p0[:40]), rtol=2e-3, atol=2e-4)
    assert np.all(mini_mod.observer_distance(s.ref[:5], s.ref[:5]) == 0)
    # Uniform grey step 100 -> 110: no structure change (S = 0), E = ΔL* of the step.
    a = np.full((1, 64, 64, 3), 100, np.uint8)
    b = np.full((1, 64, 64, 3), 110, np.uint8)
    dl = rgb2lab(np.full((1, 1, 3), 110 / 255))[0, 0, 0] - rgb2lab(np.full((1, 1, 3), 100 / 255))[0, 0, 0]
    assert mini_mod.observer_distance(a, b)[0] == pytest.approx(0.04 * dl, rel=1e-4)


def test_judgments_follow_the_observer(mini_h5):
    # Triplets where the observer strongly prefers one side get that side's votes on average.
    for s in load_2afc(mini_h5, "val"):
        d0 = mini_mod.observer_distance(s.ref, s.p0)
        d1 = mini_mod.observer_distance(s.ref, s.p1)
        score = np.mean((d0 < d1) * (1 - s.judge) + (d1 < d0) * s.judge)
        assert score > 0.55, s.key
        strong = (d0 - d1) > 0.3
        if strong.sum() >= 10:
            assert s.judge[strong].mean() > 0.8, s.key


def test_single_set_is_seed_deterministic(mini_root, tmp_path):
    # The per-set generator depends only on (seed, set), not on the worker that runs it.
    mini_mod._PHOTOS_CACHE[:] = mini_mod.load_photos()
    try:
        for seed, sub in ((0, "a"), (1, "b")):
            mini_mod._build_set((str(tmp_path / sub), "jnd/val/cnn", seed, mini_mod.MINI_COUNTS["jnd/val/cnn"]))
    finally:
        mini_mod._PHOTOS_CACHE[:] = []
    same = tree_digest(tmp_path / "a" / "jnd/val/cnn")
    assert same == tree_digest(Path(mini_root) / "jnd/val/cnn")
    assert tree_digest(tmp_path / "b" / "jnd/val/cnn") != same


@pytest.mark.slow
def test_whole_tree_byte_identical_with_one_worker(mini_root, tmp_path):
    again = make_mini(tmp_path / "again", seed=0, workers=1, progress=False)
    assert tree_digest(again) == tree_digest(mini_root)


def test_rerun_is_a_no_op_and_other_content_is_refused(mini_root, tmp_path, capsys):
    stamp = os.stat(Path(mini_root) / "SYNTHETIC.txt").st_mtime_ns
    assert make_mini(mini_root, seed=0) == Path(mini_root)  # same seed: already built
    assert os.stat(Path(mini_root) / "SYNTHETIC.txt").st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="not empty; pass --force"):
        make_mini(mini_root, seed=3)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("user data")
    assert main(["make-mini", str(busy), "--seed", "1", "--no-progress"]) == 2
    assert "busy is not empty" in capsys.readouterr().err
    assert (busy / "mine.txt").read_text() == "user data"
    assert not [p for p in tmp_path.iterdir() if ".build-" in p.name]
    with pytest.raises(ValueError, match="seed"):
        make_mini(tmp_path / "x", seed=-1)


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    def boom(args):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(mini_mod, "_build_set", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        make_mini(tmp_path / "m", seed=0, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # issue 10: no lock file left behind
