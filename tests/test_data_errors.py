"""Bad input: each a DataError naming the path, and no output (or temporary) left behind."""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.data import TwoAFCDataset, find_sets, load_2afc, load_jnd, pack
from bapps_toolkit.errors import DataError

pack_mod = importlib.import_module("bapps_toolkit.data.pack")
decode_mod = importlib.import_module("bapps_toolkit.data.decode")


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def _fails_everywhere(root: Path, out: Path, match: str, loader=load_2afc) -> None:
    with pytest.raises(DataError, match=match):
        pack(root, out, progress=False)
    _assert_nothing_written(out)
    with pytest.raises(DataError, match=match):
        loader(root)


def test_missing_subfolder(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/cnn",), n=3)
    shutil.rmtree(root / "2afc/val/cnn/p1")
    _fails_everywhere(root, tmp_path / "o.h5", r"missing subfolder .*2afc/val/cnn/p1")
    with pytest.raises(DataError, match=r"missing subfolder .*2afc/val/cnn/p1"):
        TwoAFCDataset(root, in_memory=False)


def test_missing_jnd_same_folder(tiny_tree, tmp_path):
    root = tiny_tree(("jnd/val/cnn",), n=3)
    shutil.rmtree(root / "jnd/val/cnn/same")
    _fails_everywhere(root, tmp_path / "o.h5", r"missing subfolder .*jnd/val/cnn/same", load_jnd)


def test_count_mismatch(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/train/mix",), n=3)
    shutil.copyfile(root / "2afc/train/mix/ref/000000.png", root / "2afc/train/mix/ref/000099.png")
    _fails_everywhere(root, tmp_path / "o.h5",
                      r"do not pair up by stem in .*2afc/train/mix: 3 files in .*p0 vs 4 in .*ref; "
                      r"missing stems '000099'")


def test_judge_missing_one(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/color",), n=3)
    (root / "2afc/val/color/judge/000001.npy").unlink()
    _fails_everywhere(root, tmp_path / "o.h5", r"2 files in .*color/judge vs 3 .*missing stems '000001'")


def test_same_count_different_stems(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/cnn",), n=3)
    d = root / "2afc/val/cnn/p0"
    (d / "000002.png").rename(d / "000002b.png")
    _fails_everywhere(root, tmp_path / "o.h5",
                      r"3 files in .*p0 vs 3 in .*ref; missing stems '000002'; stems not in ref/: '000002b'")


def test_duplicate_stem(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/cnn",), n=2)
    shutil.copyfile(root / "2afc/val/cnn/p1/000000.png", root / "2afc/val/cnn/p1/000000.jpg")
    _fails_everywhere(root, tmp_path / "o.h5", r"two files with stem '000000' in .*p1")


@pytest.mark.parametrize("value,match", [
    (np.array([0.5, 0.5]), r"judge/000001\.npy has shape \(2,\)"),
    (np.array([1.2]), r"judge/000001\.npy holds 1\.2.*outside \[0, 1\]"),
    (np.array([np.nan]), r"judge/000001\.npy holds nan"),
])
def test_bad_judge(tiny_tree, tmp_path, value, match):
    root = tiny_tree(("2afc/val/cnn",), n=3)
    np.save(root / "2afc/val/cnn/judge/000001.npy", value)
    _fails_everywhere(root, tmp_path / "o.h5", match)


def test_bad_same(tiny_tree, tmp_path):
    root = tiny_tree(("jnd/val/traditional",), n=3)
    np.save(root / "jnd/val/traditional/same/000002.npy", np.array([[0.1, 0.2]]))
    _fails_everywhere(root, tmp_path / "o.h5", r"same/000002\.npy has shape \(1, 2\)", load_jnd)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_png(tiny_tree, tmp_path, damage):
    root = tiny_tree(("2afc/val/deblur",), n=3)
    p = root / "2afc/val/deblur/p0/000001.png"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    _fails_everywhere(root, tmp_path / "o.h5", r"p0/000001\.png.*(corrupt or truncated|not an image file)")


def test_corrupt_png_in_worker_process(tiny_tree, tmp_path, monkeypatch):
    root = tiny_tree(("2afc/val/cnn",), n=30)
    (root / "2afc/val/cnn/p1/000017.png").write_bytes(b"not a png")
    monkeypatch.setattr(decode_mod, "POOL_MIN_IMAGES", 0)
    monkeypatch.setattr(decode_mod, "TASK_ITEMS", 4)
    out = tmp_path / "o.h5"
    with pytest.raises(DataError, match=r"p1/000017\.png.*corrupt"):
        pack(root, out, workers=2, progress=False)
    _assert_nothing_written(out)


def test_error_keeps_existing_output_when_forced(tiny_tree, tmp_path):
    good = tiny_tree(("2afc/val/cnn",), n=3)
    out = pack(good, tmp_path / "keep.h5", progress=False)
    before = out.read_bytes()
    bad = tiny_tree(("2afc/val/cnn",), n=3)
    (bad / "2afc/val/cnn/ref/000000.png").write_bytes(b"junk")
    with pytest.raises(DataError):
        pack(bad, out, force=True, progress=False)
    assert out.read_bytes() == before


def test_root_without_bapps_data(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    for call in (find_sets, load_2afc, load_jnd):
        with pytest.raises(DataError, match=r"no BAPPS data in .*empty"):
            call(empty)
    out = tmp_path / "o.h5"
    with pytest.raises(DataError, match=r"no BAPPS data in .*empty"):
        pack(empty, out, progress=False)
    _assert_nothing_written(out)
    (empty / "2afc" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no BAPPS data in .*empty.*no known split/category"):
        pack(empty, out, progress=False)
    with pytest.raises(DataError, match=r"BAPPS source .*nowhere does not exist"):
        load_2afc(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"BAPPS root .*nowhere does not exist"):
        pack(tmp_path / "nowhere", out, progress=False)


def test_empty_set_folder(tmp_path):
    root = tmp_path / "r"
    for sub in ("ref", "p0", "p1", "judge"):
        (root / "2afc/val/cnn" / sub).mkdir(parents=True)
    with pytest.raises(DataError, match=r"no files in .*2afc/val/cnn/ref \(empty set"):
        load_2afc(root)


def test_only_jnd_present_asks_for_2afc(tiny_tree):
    root = tiny_tree(("jnd/val/cnn",), n=2)
    with pytest.raises(DataError, match=r"no 2AFC sets in .*found: jnd/val/cnn"):
        load_2afc(root)


def test_cli_errors_exit_2_naming_path(tiny_tree, tmp_path, capsys):
    root = tiny_tree(("2afc/val/cnn",), n=2)
    shutil.rmtree(root / "2afc/val/cnn/judge")
    assert main(["pack", str(root), str(tmp_path / "o.h5"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bapps pack: error: missing subfolder") and "2afc/val/cnn/judge" in err
    assert main(["verify", str(tmp_path / "absent.h5")]) == 2
    assert "absent.h5 does not exist" in capsys.readouterr().err
