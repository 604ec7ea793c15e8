"""Unit tests for the fixes of the bugs the reliability tests found.

* :func:`bapps_toolkit._io.remove_stale_temps` removes exactly the temporaries its pattern names;
* :func:`bapps_toolkit._download.download_file` drops a ``.part.json`` orphaned by a kill between
  the rename of the ``.part`` and the removal of its side file (no network request);
* ``check_schema`` refuses soft links, virtual datasets and external raw storage (external links:
  ``tests/test_untrusted.py``);
* a float32 LPIPS / PDL accepts float64 input: the distance comes back in float64, matches the
  float32-input distance, and gradients reach the float64 input;
* the checkpoint writer puts nothing in the run folder but its own ``.<name>.tmp-*`` temporary and
  the final file (safetensors ≥ 0.8 writes through a ``.tmpXXXXXX`` file of its own beside the
  target, which a ``kill -9`` left behind where no clean-up looks for it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import torch

from bapps_toolkit._download import download_file, info_path, part_path
from bapps_toolkit._io import TMP_MARK, atomic_path, remove_stale_temps, temp_name_for
from bapps_toolkit.data import pack, verify
from bapps_toolkit.errors import DataError


# ------------------------------------------------------------------------- remove_stale_temps
def test_remove_stale_temps_default_pattern(tmp_path):
    keep = [tmp_path / "model.safetensors", tmp_path / ".hidden", tmp_path / "x.tmp-1-ab",
            tmp_path / "run.lock"]
    for p in keep:
        p.write_text("keep")
    file_tmp = temp_name_for(tmp_path / "model.safetensors")
    file_tmp.write_text("half written")
    dir_tmp = tmp_path / f".tree{TMP_MARK}7-cd"
    (dir_tmp / "sub").mkdir(parents=True)
    (dir_tmp / "sub" / "a.png").write_bytes(b"x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted([file_tmp.name, dir_tmp.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)


def test_remove_stale_temps_narrow_pattern_and_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("do not touch")
    folder = tmp_path / "f"
    folder.mkdir()
    mine = folder / f".out[1].h5{TMP_MARK}1-aa"
    other = folder / f".other.h5{TMP_MARK}1-bb"
    mine.write_text("x")
    other.write_text("y")
    link = folder / f".out[1].h5{TMP_MARK}2-cc"
    link.symlink_to(outside, target_is_directory=True)
    import glob

    remove_stale_temps(folder, f".{glob.escape('out[1].h5')}{TMP_MARK}*")
    assert not mine.exists() and not link.is_symlink()
    assert other.exists() and (outside / "precious").read_text() == "do not touch"


@pytest.mark.parametrize("pattern", ["*", "*.tmp-*", ".*", ".", "*.*"])
def test_remove_stale_temps_refuses_broad_patterns(tmp_path, pattern):
    (tmp_path / "a").write_text("a")
    with pytest.raises(ValueError, match="hidden temporaries"):
        remove_stale_temps(tmp_path, pattern)
    assert (tmp_path / "a").exists()


def test_remove_stale_temps_missing_folder(tmp_path):
    assert remove_stale_temps(tmp_path / "nope") == []


def test_atomic_path_temporaries_match_default_pattern(tmp_path):
    """What remove_stale_temps removes by default is what atomic_path writes to."""
    with atomic_path(tmp_path / "card.json") as tmp:
        tmp.write_text("{}")
        found = sorted(tmp_path.glob(f".*{TMP_MARK}*"))
    assert found == [tmp]
    assert (tmp_path / "card.json").read_text() == "{}"


_WRITER = '''
import sys, torch
from bapps_toolkit.train import checkpoint as ck
big = {"w%d" % i: torch.full((4 << 20,), float(i)) for i in range(24)}  # 384 MiB
ck.write_safetensors(sys.argv[1], big, {"what": "test"})
'''


def test_checkpoint_writer_leaves_only_its_own_temporary(tmp_path):
    """Watch the folder while a child writes a 384 MiB checkpoint: every name that shows up is
    the final name or a temporary that ``remove_stale_temps`` would remove after a kill."""
    final = tmp_path / "latest.safetensors"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(final)], stderr=subprocess.PIPE)
    seen: set = set()
    deadline = time.monotonic() + 300
    while child.poll() is None and time.monotonic() < deadline:
        seen.update(os.listdir(tmp_path))
    assert child.wait(timeout=60) == 0, child.stderr.read().decode() if child.stderr else ""
    seen.update(os.listdir(tmp_path))
    ours = f".{final.name}{TMP_MARK}"
    assert any(n.startswith(ours) for n in seen), f"the write was never seen in progress: {seen}"
    assert {n for n in seen if not n.startswith(ours)} == {final.name}, seen


# ------------------------------------------------------------------------- download side file
def _published(tmp_path: Path, *, with_part: bool) -> Path:
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"0123456789")
    info_path(dest).write_text(json.dumps({"url": "http://x", "total": 10, "validator": None}))
    if with_part:
        part_path(dest).write_bytes(b"01234")
    return dest


def test_download_drops_orphaned_side_file(tmp_path):
    dest = _published(tmp_path, with_part=False)
    # Port 9 (discard) is never contacted: the file is already there and verifies.
    assert download_file("http://127.0.0.1:9/weights.pth", dest, expected_size=10) == dest
    assert dest.read_bytes() == b"0123456789"
    assert not info_path(dest).exists()


def test_download_keeps_side_file_of_a_part(tmp_path):
    dest = _published(tmp_path, with_part=True)
    download_file("http://127.0.0.1:9/weights.pth", dest, expected_size=10)
    assert info_path(dest).exists() and part_path(dest).exists()


# ------------------------------------------------------------------------- HDF5 without links
@pytest.fixture
def good_h5(tiny_tree, tmp_path) -> Path:
    return pack(tiny_tree(("2afc/val/cnn",), n=4), tmp_path / "good.h5", progress=False)


def _edited(src: Path, name: str, edit) -> Path:
    dst = src.with_name(name)
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def _soft_array(f):
    f["2afc/val/cnn/spare"] = f["2afc/val/cnn/p0"][...]
    del f["2afc/val/cnn/p0"]
    f["2afc/val/cnn/p0"] = h5py.SoftLink("/2afc/val/cnn/spare")


def _soft_group(f):
    f.move("2afc/val", "2afc/hidden")
    f["2afc/val"] = h5py.SoftLink("/2afc/hidden")


def _virtual(f):
    data = f["2afc/val/cnn/ref"][...]
    src = Path(f.filename).with_name("elsewhere.h5")
    with h5py.File(src, "w") as g:
        g.create_dataset("ref", data=data)
    layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
    layout[...] = h5py.VirtualSource(str(src), "ref", shape=data.shape)
    attrs = dict(f["2afc/val/cnn/ref"].attrs)
    del f["2afc/val/cnn/ref"]
    f["2afc/val/cnn"].create_virtual_dataset("ref", layout)
    f["2afc/val/cnn/ref"].attrs.update(attrs)


def _external_storage(f):
    data = f["2afc/val/cnn/judge"][...]
    raw = Path(f.filename).with_name("judge.raw")
    raw.write_bytes(data.astype("<f4").tobytes())
    attrs = dict(f["2afc/val/cnn/judge"].attrs)
    del f["2afc/val/cnn/judge"]
    f["2afc/val/cnn"].create_dataset("judge", shape=data.shape, dtype="<f4",
                                     external=[(str(raw), 0, h5py.h5f.UNLIMITED)])
    f["2afc/val/cnn/judge"].attrs.update(attrs)


@pytest.mark.parametrize("edit,match", [
    (_soft_array, r"linked\.h5: array /2afc/val/cnn/p0 is a soft link"),
    (_soft_group, r"linked\.h5: set group /2afc/val is a soft link"),
    (_virtual, r"linked\.h5: array /2afc/val/cnn/ref is a virtual dataset"),
    (_external_storage, r"linked\.h5: array /2afc/val/cnn/judge keeps its bytes in external files"),
], ids=["soft link array", "soft link group", "virtual dataset", "external storage"])
def test_h5_indirections_are_refused(good_h5, edit, match):
    bad = _edited(good_h5, "linked.h5", edit)
    with pytest.raises(DataError, match=match):
        verify(bad)


def test_h5_plain_file_still_verifies(good_h5):
    verify(good_h5)


# ------------------------------------------------------------------------- float64 into float32 nets
@pytest.mark.parametrize("name", ["lpips-alex", "lpips-squeeze", "pdl-vgg"])
def test_float64_input_on_float32_network(name):
    from bapps_toolkit.metrics import create_metric

    with pytest.warns(UserWarning, match="UNCALIBRATED"):
        m = create_metric(name, backbone_weights="random")
    assert next(m.parameters()).dtype == torch.float32
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    x1 = (x0 + 0.3 * torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64)).clamp(-1, 1)
    x0.requires_grad_(True)
    d64 = m(x0, x1)
    assert d64.dtype == torch.float64 and d64.shape == (2,)
    with torch.no_grad():
        d32 = m(x0.detach().float(), x1.float())
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d64.detach(), d32.double(), rtol=1e-5, atol=1e-6)
    d64.sum().backward()
    assert x0.grad is not None and x0.grad.dtype == torch.float64
    assert torch.isfinite(x0.grad).all() and x0.grad.abs().sum() > 0
    a, b = m.pair_distances(x0.detach(), x1, x0.detach())
    assert a.dtype == b.dtype == torch.float64
    assert float(b.detach().abs().max()) <= 1e-6
    # The model itself is unchanged: still float32.
    assert next(m.parameters()).dtype == torch.float32
