"""bapps pack / verify: schema, contents against the source files, checksums, atomicity, locking."""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from bapps_toolkit._io import FileLock
from bapps_toolkit._version import __version__
from bapps_toolkit.cli.main import main
from bapps_toolkit.data import TwoAFCDataset, find_sets, load_2afc, load_jnd, pack, verify
from bapps_toolkit.errors import DataError, LockedError

# The package exports the function ``pack``, which shadows the sub-module's attribute name.
pack_mod = importlib.import_module("bapps_toolkit.data.pack")
decode_mod = importlib.import_module("bapps_toolkit.data.decode")


def test_schema_and_attributes(mini_root, mini_h5):
    with h5py.File(mini_h5, "r") as f:
        assert f.attrs["bapps_toolkit_format"] == "bapps-h5/1"
        assert f.attrs["toolkit_version"] == __version__
        assert bool(f.attrs["synthetic"]) is True
        assert f.attrs["source"] == str(Path(mini_root).resolve())
        counts = json.loads(f.attrs["counts"])
        assert counts["2afc/val/superres"] == 280 and counts["jnd/val/cnn"] == 250
        g = f["2afc/val/cnn"]
        assert dict(g.attrs) == {"kind": "2afc", "split": "val", "category": "cnn", "count": 300,
                                 "size": 64}
        ref = g["ref"]
        assert ref.dtype == np.uint8 and ref.shape == (300, 64, 64, 3)
        assert ref.chunks is not None and ref.chunks[1:] == (64, 64, 3) and ref.compression is None
        assert g["judge"].dtype == np.float32 and g["judge"].shape == (300,)
        assert g["stems"][0].decode() == "000000"
        assert "same" in f["jnd/val/traditional"] and "ref" not in f["jnd/val/traditional"]
        # The stored checksum is the SHA-256 of the array's C-order bytes.
        assert ref.attrs["sha256"] == hashlib.sha256(ref[...].tobytes()).hexdigest()
        stems = [s.decode() for s in g["stems"][...]]
        assert g["stems"].attrs["sha256"] == hashlib.sha256("\n".join(stems).encode()).hexdigest()


def test_contents_match_source_files(mini_root, mini_h5):
    (s,) = load_2afc(mini_h5, "val/deblur")
    for i in (0, 137, len(s) - 1):
        stem = s.stems[i]
        for name in ("ref", "p0", "p1"):
            with Image.open(Path(mini_root) / "2afc/val/deblur" / name / f"{stem}.png") as im:
                np.testing.assert_array_equal(getattr(s, name)[i], np.asarray(im.convert("RGB")))
        assert s.judge[i] == np.float32(np.load(Path(mini_root) / "2afc/val/deblur/judge" / f"{stem}.npy").item())
    (j,) = load_jnd(mini_h5, "val/traditional")
    stem = j.stems[42]
    assert j.same[42] == np.float32(np.load(Path(mini_root) / "jnd/val/traditional/same" / f"{stem}.npy").item())


def test_verify_summary_and_cli(mini_h5, capsys):
    info = verify(mini_h5)
    assert info["ok"] is True and info["synthetic"] is True and info["format"] == "bapps-h5/1"
    assert info["sets"]["2afc/train/mix"] == 300 and len(info["sets"]) == 11
    assert info["images"] == 3 * 2570 + 2 * 500 and info["arrays_checked"] == 9 * 5 + 2 * 4
    assert main(["verify", str(mini_h5), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "2afc/val/frameinterp" in out and "SYNTHETIC" in out


def _corrupt_copy(src: Path, dst: Path, edit) -> Path:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def test_verify_catches_damaged_arrays(mini_h5, tmp_path, capsys):
    def flip_pixel(f):
        ds = f["2afc/val/color/p1"]
        ds[7, 3, 3, 1] = (int(ds[7, 3, 3, 1]) + 1) % 256

    bad = _corrupt_copy(mini_h5, tmp_path / "pix.h5", flip_pixel)
    with pytest.raises(DataError, match=r"pix\.h5: array /2afc/val/color/p1 fails its SHA-256"):
        verify(bad)
    assert main(["verify", str(bad)]) == 2
    assert "/2afc/val/color/p1" in capsys.readouterr().err

    def bump_judge(f):
        f["jnd/val/cnn/same"][0] = 0.5 if f["jnd/val/cnn/same"][0] != 0.5 else 0.0

    with pytest.raises(DataError, match=r"/jnd/val/cnn/same fails its SHA-256"):
        verify(_corrupt_copy(mini_h5, tmp_path / "j.h5", bump_judge))

    def drop_array(f):
        del f["2afc/train/cnn/p0"]

    dropped = _corrupt_copy(mini_h5, tmp_path / "drop.h5", drop_array)
    for call in (verify, find_sets, load_2afc):
        with pytest.raises(DataError, match=r"drop\.h5: array /2afc/train/cnn/p0 is missing"):
            call(dropped)

    def bad_count(f):
        f["2afc/val/cnn"].attrs["count"] = 5

    with pytest.raises(DataError, match=r"count\.h5: /2afc/val/cnn count 5"):
        verify(_corrupt_copy(mini_h5, tmp_path / "count.h5", bad_count))


def test_not_ours_is_refused_everywhere(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("2afc/val/cnn/ref", data=np.zeros((1, 64, 64, 3), np.uint8))
    text = tmp_path / "text.h5"
    text.write_text("hello")
    for path in (foreign, text):
        for call in (verify, find_sets, load_2afc, load_jnd, TwoAFCDataset):
            with pytest.raises(DataError, match="not a bapps-toolkit file"):
                call(path)
    other = tmp_path / "future.h5"
    with h5py.File(other, "w") as f:
        f.attrs["bapps_toolkit_format"] = "bapps-h5/99"
    with pytest.raises(DataError, match="bapps-h5/99"):
        verify(other)


def test_refuses_overwrite_then_force(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/cnn",), n=3)
    out = pack(root, tmp_path / "o.h5", progress=False)
    before = out.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match=r"o\.h5 already exists; pass --force"):
        pack(root, out, progress=False)
    assert main(["pack", str(root), str(out), "--no-progress"]) == 2
    assert out.stat().st_mtime_ns == before
    time.sleep(0.01)
    pack(root, out, force=True, progress=False)
    assert verify(out)["sets"] == {"2afc/val/cnn": 3}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_concurrent_pack_is_locked(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/cnn",), n=3)
    out = tmp_path / "locked.h5"
    with FileLock(out, "packed file"):
        with pytest.raises(LockedError, match=r"already writing packed file .*locked\.h5"):
            pack(root, out, progress=False)
    assert not out.exists()


def test_parallel_decode_matches_serial(tiny_tree, tmp_path, monkeypatch):
    root = tiny_tree(("2afc/val/cnn", "jnd/val/cnn"), n=40)
    serial = pack(root, tmp_path / "serial.h5", workers=1, progress=False)
    monkeypatch.setattr(decode_mod, "POOL_MIN_IMAGES", 0)
    monkeypatch.setattr(decode_mod, "TASK_ITEMS", 7)
    par = pack(root, tmp_path / "par.h5", workers=2, progress=False)
    with h5py.File(serial, "r") as a, h5py.File(par, "r") as b:
        for key in ("2afc/val/cnn", "jnd/val/cnn"):
            for name in a[key]:
                np.testing.assert_array_equal(a[key][name][...], b[key][name][...])
                assert a[key][name].attrs["sha256"] == b[key][name].attrs["sha256"]


_KILL_SCRIPT = """
import importlib, sys, time
pm = importlib.import_module('bapps_toolkit.data.pack')
dm = importlib.import_module('bapps_toolkit.data.decode')
real = dm._decode_task
def slow(*a, **k):
    time.sleep(0.2)
    return real(*a, **k)
dm._decode_task = slow
dm.TASK_ITEMS = 8
pm.pack(sys.argv[1], sys.argv[2], workers=1, progress=False)
"""


def test_concurrent_then_killed_pack_leaves_nothing_complete_and_rerun_works(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/cnn",), n=80)
    out = tmp_path / "k" / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(root), str(out)])
    deadline = time.time() + 60
    temps = []
    while time.time() < deadline and not temps:
        temps = list(out.parent.glob(".killed.h5.tmp-*")) if out.parent.exists() else []
        time.sleep(0.05)
    assert temps, "the pack never started writing"
    # A second pack to the same output while the first runs stops at once, naming the holder.
    with pytest.raises(LockedError, match=rf"pid {proc.pid}\) is already writing packed file .*killed\.h5"):
        pack(root, out, progress=False)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    leftovers = list(out.parent.glob(".killed.h5.tmp-*"))
    assert leftovers
    for t in leftovers:  # a cut-short file never looks like ours
        with pytest.raises(DataError, match="not a bapps-toolkit file"):
            verify(t)
    pack(root, out, progress=False)
    assert verify(out)["sets"] == {"2afc/val/cnn": 80}
    assert not list(out.parent.glob(".killed.h5.tmp-*"))
