"""Untrusted inputs not already covered elsewhere (issue 6).

Already covered, not repeated here: archives with path traversal, absolute paths, symlinks/hard
links out of the root, device files (tests/test_extract.py); HTTP servers that cut, lie about
lengths or ignore Range (tests/test_download.py); pickled network weights (tests/test_hub.py);
a raw pickle as ``latest.safetensors`` and a code-running ``torch.save`` ``.pth`` for
``load_metric_from_checkpoint`` (tests/test_train.py); HDF5 files that are not HDF5, lack the
marker, miss an array, have a wrong count or a flipped pixel (tests/test_pack.py); PNG headers
claiming absurd sizes, corrupt PNGs and pickled judgment files (tests/test_images.py).

Here:

* HDF5 files carrying our format marker but a wrong schema — image arrays of the wrong dtype or
  shape, judgments as float64, a header naming an unknown or path-like set, a header that is not
  JSON, a count claiming more items than stored, an external link to another file, judgments
  outside [0, 1] with a recomputed checksum — go through every reader (``verify``,
  ``find_sets``, ``load_2afc``/``load_jnd``, ``iter_*_chunks``, the torch datasets,
  ``evaluate``): each stops with a ``DataError``/``ValueError`` that names the file, never
  another exception and never a silent result; an array replaced by an external link (live or
  dangling) into another file is refused.
* A checkpoint planted as a code-running pickle (raw pickle and ``torch.save`` zip) in every
  place ``bapps train --resume`` and ``load_metric_from_checkpoint`` read — the epoch weights,
  the Adam state, the frozen random backbone, the card — and as a metric given to
  ``evaluate``: refused with a clear message, and the payload never runs.
* A real decompression bomb (a valid 10 000 × 10 000 PNG of ~100 KB) and a header claiming
  100 000 × 100 000 pixels, fed to the data loaders, ``bapps pack`` and ``bapps score``.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from bapps_toolkit.cli.main import main
from bapps_toolkit.data import (
    JNDDataset,
    TwoAFCDataset,
    find_sets,
    iter_2afc_chunks,
    iter_jnd_chunks,
    load_2afc,
    load_jnd,
    pack,
    verify,
)
from bapps_toolkit.errors import CheckpointError, DataError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# ----------------------------------------------------------------------------------------- HDF5
@pytest.fixture
def small_h5(tiny_tree, tmp_path) -> Path:
    root = tiny_tree(("2afc/val/cnn", "jnd/val/cnn"), n=6)
    return pack(root, tmp_path / "good.h5", progress=False)


def _variant(src: Path, dst: Path, edit) -> Path:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def _replace(f, name, data):
    attrs = dict(f[name].attrs)
    del f[name]
    f.create_dataset(name, data=data)
    f[name].attrs.update(attrs)


def _float_images(f):
    _replace(f, "2afc/val/cnn/p0", f["2afc/val/cnn/p0"][...].astype(np.float32))


def _small_patches(f):
    _replace(f, "2afc/val/cnn/ref", f["2afc/val/cnn/ref"][:, :63, :63, :])


def _rgba(f):
    a = f["jnd/val/cnn/p1"][...]
    _replace(f, "jnd/val/cnn/p1", np.concatenate([a, a[..., :1]], axis=-1))


def _judge_float64(f):
    _replace(f, "2afc/val/cnn/judge", f["2afc/val/cnn/judge"][...].astype(np.float64))


def _unknown_key(f):
    f.attrs["keys"] = json.dumps(["2afc/val/cnn", "../../etc/passwd"])


def _bad_json(f):
    f.attrs["counts"] = "{not json"


def _overclaimed_count(f):
    counts = json.loads(f.attrs["counts"])
    counts["2afc/val/cnn"] = 10 ** 12
    f.attrs["counts"] = json.dumps(counts)
    f["2afc/val/cnn"].attrs["count"] = 10 ** 12


def _stems_numeric(f):
    _replace(f, "jnd/val/cnn/stems", np.arange(6, dtype=np.int64))


def _external_link(f):
    other = Path(f.filename).with_name("elsewhere.h5")
    with h5py.File(other, "w") as g:
        g.create_dataset("ref", data=f["2afc/val/cnn/ref"][...])
    del f["2afc/val/cnn/ref"]
    f["2afc/val/cnn/ref"] = h5py.ExternalLink(str(other), "/ref")


SCHEMA_CASES = {
    "float images": (_float_images, r"/2afc/val/cnn/p0 is float32"),
    "63x63 patches": (_small_patches, r"/2afc/val/cnn/ref is uint8 \(6, 63, 63, 3\)"),
    "4 channels": (_rgba, r"/jnd/val/cnn/p1 is uint8 \(6, 64, 64, 4\)"),
    "float64 judge": (_judge_float64, r"/2afc/val/cnn/judge is float64"),
    "path-like set key": (_unknown_key, r"damaged bapps-toolkit header"),
    "header not JSON": (_bad_json, r"damaged bapps-toolkit header"),
    "overclaimed count": (_overclaimed_count, r"/2afc/val/cnn/(ref|p0|p1) is uint8 \(6, 64, 64, 3\)"),
    "numeric stems": (_stems_numeric, r"/jnd/val/cnn/stems is int64"),
}


def _readers(path: Path):
    yield "verify", lambda: verify(path)
    yield "find_sets", lambda: find_sets(path)
    yield "load_2afc", lambda: load_2afc(path)
    yield "load_jnd", lambda: load_jnd(path)
    yield "iter_2afc_chunks", lambda: list(iter_2afc_chunks(path, "val/cnn", 4))
    yield "iter_jnd_chunks", lambda: list(iter_jnd_chunks(path, "val/cnn", 4))
    yield "TwoAFCDataset", lambda: TwoAFCDataset(path, in_memory=False)
    yield "JNDDataset", lambda: JNDDataset(path)


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_h5_with_our_marker_but_wrong_schema(small_h5, tmp_path, case):
    edit, match = SCHEMA_CASES[case]
    bad = _variant(small_h5, tmp_path / "bad.h5", edit)
    for name, call in _readers(bad):
        with pytest.raises(DataError, match=match) as ei:
            call()
        assert "bad.h5" in str(ei.value), (name, str(ei.value))
    assert main(["verify", str(bad)]) == 2


@pytest.mark.parametrize("dangling", [False, True], ids=["live link", "dangling link"])
def test_h5_external_links_are_refused(small_h5, tmp_path, dangling):
    """An untrusted file must not make the toolkit read other files on disk as its data."""
    bad = _variant(small_h5, tmp_path / "linked.h5", _external_link)
    if dangling:
        (tmp_path / "elsewhere.h5").unlink()
    for _name, call in _readers(bad):
        with pytest.raises(DataError, match=r"linked\.h5"):
            call()


def test_judgments_out_of_range_with_recomputed_checksum(small_h5, tmp_path):
    import hashlib

    def edit(f):
        j = f["2afc/val/cnn/judge"][...]
        j[2] = 1.75
        f["2afc/val/cnn/judge"][...] = j
        f["2afc/val/cnn/judge"].attrs["sha256"] = hashlib.sha256(j.astype("<f4").tobytes()).hexdigest()

    bad = _variant(small_h5, tmp_path / "judge.h5", edit)
    with pytest.raises(DataError, match=r"judge\.h5: array /2afc/val/cnn/judge holds values outside \[0, 1\]"):
        verify(bad)
    from bapps_toolkit.evaluate import evaluate

    with pytest.raises(ValueError, match=r"judge.*\[0, 1\]"):
        evaluate(bad, ["l2"], n_boot=10, progress=False, datasets=["2afc/val/cnn"])


# ------------------------------------------------------------------------------------ checkpoints
class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['BAPPS_UNTRUSTED_MARK']}",))


def _plant(path: Path, fmt: str) -> None:
    if fmt == "pickle":
        path.write_bytes(pickle.dumps({"w": _Payload()}))
    else:
        torch.save({"w": _Payload()}, path)


@pytest.fixture
def run_dir(tiny_tree, tmp_path):
    """A real 2-epoch lin run on 10 hand-made triplets (random backbone: UNCALIBRATED), its card
    rolled back to epoch 1 so that ``--resume`` reads epoch 1's files."""
    root = tiny_tree(("2afc/train/traditional",), n=10)
    out = tmp_path / "run"
    args = ["train", str(root), "--out", str(out), "--backbone-weights", "alex=random", "--epochs", "2",
            "--decay-epochs", "0", "--batch-size", "5", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    card = json.loads((out / "card.json").read_text())
    card["finished"] = False           # as if killed after epoch 1 of 2
    card["epochs_done"] = 1
    (out / "card.json").write_text(json.dumps(card))
    return out, args


@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
@pytest.mark.parametrize("victim", ["epoch_001.safetensors", "epoch_001.optim.safetensors",
                                    "backbone.safetensors"])
def test_resume_refuses_planted_pickles(run_dir, tmp_path, monkeypatch, capsys, victim, fmt):
    out, args = run_dir
    mark = tmp_path / "pwned"
    monkeypatch.setenv("BAPPS_UNTRUSTED_MARK", str(mark))
    _plant(out / victim, fmt)
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "bapps train: error:" in err and victim in err, err
    assert "refusing to load" in err or "not a valid safetensors" in err, err
    assert not mark.exists(), "the planted payload ran"


def test_resume_refuses_a_pickled_card(run_dir, tmp_path, monkeypatch, capsys):
    out, args = run_dir
    mark = tmp_path / "pwned"
    monkeypatch.setenv("BAPPS_UNTRUSTED_MARK", str(mark))
    _plant(out / "card.json", "pickle")
    assert main(args + ["--resume"]) == 2
    assert "card.json" in capsys.readouterr().err
    assert not mark.exists()


@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
@pytest.mark.parametrize("victim", ["latest.safetensors", "backbone.safetensors", "latest.lin.pth"])
def test_loading_a_run_with_planted_pickles(run_dir, tmp_path, monkeypatch, victim, fmt):
    from bapps_toolkit.train import load_metric_from_checkpoint

    out, _ = run_dir
    mark = tmp_path / "pwned"
    monkeypatch.setenv("BAPPS_UNTRUSTED_MARK", str(mark))
    _plant(out / victim, fmt)
    target = out / victim if victim.endswith(".pth") else out
    with pytest.raises(CheckpointError, match=rf"{victim}.*(refus|not a valid safetensors)"):
        load_metric_from_checkpoint(target)
    assert not mark.exists()


def test_evaluate_refuses_a_planted_checkpoint(small_h5, tmp_path, monkeypatch, capsys):
    mark = tmp_path / "pwned"
    monkeypatch.setenv("BAPPS_UNTRUSTED_MARK", str(mark))
    evil = tmp_path / "evil.pth"
    _plant(evil, "torch.save")
    from bapps_toolkit.evaluate import evaluate

    with pytest.raises(CheckpointError, match=r"evil\.pth.*weights_only"):
        evaluate(small_h5, [str(evil)], n_boot=10, progress=False)
    assert main(["evaluate", str(small_h5), "--metrics", str(evil), "--out", str(tmp_path / "r.csv")]) == 2
    assert "evil.pth" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
    assert not mark.exists()


def test_safetensors_with_absurd_header_length(tmp_path):
    from bapps_toolkit.train import load_metric_from_checkpoint

    bomb = tmp_path / "bomb.safetensors"
    bomb.write_bytes(struct.pack("<Q", 2 ** 60) + b"{}")
    with pytest.raises(CheckpointError, match=r"bomb\.safetensors: not a valid safetensors"):
        load_metric_from_checkpoint(bomb)


# ----------------------------------------------------------------------------------------- images
def _png(path: Path, width: int, height: int, *, real: bool) -> Path:
    """A grayscale PNG; ``real=True`` writes a complete, valid zero image (zlib-bomb: ~100 KB on
    disk for 100 Mpixel), else a header with a token IDAT."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    if real:
        comp = zlib.compressobj(9)
        row = b"\x00" * (width + 1)
        parts, rows_per_block = [], max(1, (1 << 20) // len(row))
        for start in range(0, height, rows_per_block):
            parts.append(comp.compress(row * min(rows_per_block, height - start)))
        parts.append(comp.flush())
        idat = b"".join(parts)
    else:
        idat = zlib.compress(b"\x00" * 16)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb_bytes(tmp_path_factory) -> bytes:
    p = _png(tmp_path_factory.mktemp("bomb") / "bomb.png", 10_000, 10_000, real=True)
    assert p.stat().st_size < 1_000_000
    return p.read_bytes()


@pytest.mark.parametrize("kind", ["real bomb", "absurd header"])
def test_bombs_in_a_bapps_tree(tiny_tree, tmp_path, bomb_bytes, kind):
    root = tiny_tree(("2afc/val/cnn",), n=4)
    victim = root / "2afc/val/cnn/p1/000002.png"
    if kind == "real bomb":
        victim.write_bytes(bomb_bytes)
    else:
        _png(victim, 100_000, 100_000, real=False)
    for call in (lambda: load_2afc(root), lambda: list(iter_2afc_chunks(root, "val/cnn", 2)),
                 lambda: TwoAFCDataset(root, in_memory=False)[2]):
        with pytest.raises(DataError, match=r"p1/000002\.png.*(absurd dimensions|decompression)"):
            call()
    out = tmp_path / "out.h5"
    assert main(["pack", str(root), str(out), "--no-progress"]) == 2
    assert not out.exists() and not list(tmp_path.glob(".out.h5.tmp-*"))


@pytest.mark.parametrize("kind", ["real bomb", "absurd header"])
def test_bombs_given_to_bapps_score(tmp_path, bomb_bytes, capsys, kind):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    if kind == "real bomb":
        bad.write_bytes(bomb_bytes)
    else:
        _png(bad, 100_000, 100_000, real=False)
    assert main(["score", str(good), str(bad), "--metric", "l2"]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and "bapps score: error:" in err, err
    d = tmp_path / "dir"
    d.mkdir()
    shutil.copyfile(good, d / "a.png")
    shutil.copyfile(bad, d / "b.png")
    assert main(["score", "--dir", str(d), "--all-pairs", "--metric", "l2", "--out", str(tmp_path / "o.csv")]) == 2
    assert "b.png" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
