"""Folder layout: discovery, stem pairing, dataset selection, loaders from folder and .h5."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import patch_value, write_npy, write_png

from bapps_toolkit.data import (
    JND_CATEGORIES,
    TWOAFC_CATEGORIES,
    JNDDataset,
    TwoAFCDataset,
    find_sets,
    iter_2afc_chunks,
    iter_jnd_chunks,
    load_2afc,
    load_jnd,
    to_model_input,
)
from bapps_toolkit.data.layout import ALL_KEYS, discover, expand_datasets, scan_set
from bapps_toolkit.errors import DataError

EXPECTED_KEYS = [
    "2afc/train/traditional", "2afc/train/cnn", "2afc/train/mix",
    "2afc/val/traditional", "2afc/val/cnn", "2afc/val/superres", "2afc/val/deblur",
    "2afc/val/color", "2afc/val/frameinterp", "jnd/val/traditional", "jnd/val/cnn",
]


def test_categories_contract():
    assert TWOAFC_CATEGORIES == {"train": ("traditional", "cnn", "mix"),
                                 "val": ("traditional", "cnn", "superres", "deblur", "color",
                                         "frameinterp")}
    assert JND_CATEGORIES == {"val": ("traditional", "cnn")}
    assert list(ALL_KEYS) == EXPECTED_KEYS


def test_find_sets_folder_and_h5(mini_root, mini_h5):
    assert find_sets(mini_root) == EXPECTED_KEYS
    assert find_sets(mini_h5) == EXPECTED_KEYS


def test_values_follow_stems(tiny_tree):
    root = tiny_tree(("2afc/val/cnn", "jnd/val/traditional"), n=5)
    (s,) = load_2afc(root)
    assert s.key == "2afc/val/cnn" and (s.split, s.category) == ("val", "cnn")
    assert s.stems == [f"{i:06d}" for i in range(5)] and len(s) == 5
    for i in range(5):
        np.testing.assert_array_equal(s.ref[i], patch_value(10 * i))
        np.testing.assert_array_equal(s.p0[i], patch_value(10 * i + 1))
        np.testing.assert_array_equal(s.p1[i], patch_value(10 * i + 2))
    np.testing.assert_allclose(s.judge, np.arange(5) / 10, rtol=0, atol=1e-7)
    assert s.ref.dtype == np.uint8 and s.ref.shape == (5, 64, 64, 3) and s.judge.dtype == np.float32
    assert s.synthetic is False
    (j,) = load_jnd(root)
    assert j.key == "jnd/val/traditional"
    np.testing.assert_array_equal(j.p1[3], patch_value(34))
    np.testing.assert_allclose(j.same, np.arange(5) / 10, atol=1e-7)


def test_pairing_is_by_stem_not_position(tmp_path):
    # ref/ sorts as ["a.c.png", "a.png"], p0/ (.bmp) as ["a.bmp", "a.c.bmp"]: pairing by sorted
    # position would match a.c with a.
    d = tmp_path / "r" / "2afc" / "val" / "color"
    for i, stem in enumerate(["a", "a.c"]):
        write_png(d / "ref" / f"{stem}.png", patch_value(100 + i))
        p0 = d / "p0" / f"{stem}.bmp"
        p0.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image
        Image.fromarray(patch_value(200 + i)).save(p0, format="BMP")
        write_png(d / "p1" / f"{stem}.png", patch_value(300 + i))
        write_npy(d / "judge" / f"{stem}.npy", np.float64(0.25 + 0.5 * i))
    (s,) = load_2afc(tmp_path / "r")
    assert s.stems == ["a", "a.c"]
    for i in range(2):
        np.testing.assert_array_equal(s.ref[i], patch_value(100 + i))
        np.testing.assert_array_equal(s.p0[i], patch_value(200 + i))
        np.testing.assert_array_equal(s.p1[i], patch_value(300 + i))
    np.testing.assert_allclose(s.judge, [0.25, 0.75])


def test_hidden_and_foreign_files_ignored(tiny_tree):
    root = tiny_tree(n=2)
    (root / "2afc/val/cnn/ref/.DS_Store").write_bytes(b"junk")
    (root / "2afc/val/cnn/judge/notes.txt").write_text("junk")
    assert len(scan_set(root, "2afc/val/cnn")) == 2


def test_dataset_subfolder_accepted_and_unknown_category_warns(tiny_tree):
    root = tiny_tree(("2afc/val/cnn",), n=2, name="outer/dataset")
    outer = root.parent
    (outer / "dataset" / "2afc" / "val" / "weird").mkdir()
    with pytest.warns(UserWarning, match="weird"):
        assert discover(outer) == ["2afc/val/cnn"]


def test_expand_datasets_forms():
    avail = EXPECTED_KEYS
    assert expand_datasets(None, avail, "2afc") == EXPECTED_KEYS[:9]
    assert expand_datasets("val/cnn", avail, "2afc") == ["2afc/val/cnn"]
    assert expand_datasets("2afc/val/cnn", avail, "2afc") == ["2afc/val/cnn"]
    assert expand_datasets("train", avail, "2afc") == EXPECTED_KEYS[:3]
    assert expand_datasets(["val/color", "train/mix"], avail, "2afc") == ["2afc/train/mix",
                                                                          "2afc/val/color"]
    assert expand_datasets("val", avail, "jnd") == EXPECTED_KEYS[9:]
    with pytest.raises(ValueError, match="unknown 2AFC dataset 'val/nope'"):
        expand_datasets("val/nope", avail, "2afc")
    with pytest.raises(DataError, match="not present"):
        expand_datasets("val/cnn", ["2afc/train/mix"], "2afc")


def test_folder_and_h5_load_identically(mini_root, mini_h5):
    a = load_2afc(mini_root, ["val/deblur", "train/mix"])
    b = load_2afc(mini_h5, ["val/deblur", "train/mix"])
    assert [s.key for s in a] == [s.key for s in b] == ["2afc/train/mix", "2afc/val/deblur"]
    for x, y in zip(a, b, strict=False):
        assert x.stems == y.stems
        for name in ("ref", "p0", "p1", "judge"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    ja, jb = load_jnd(mini_root, "val/cnn"), load_jnd(mini_h5, "val/cnn")
    np.testing.assert_array_equal(ja[0].p1, jb[0].p1)
    np.testing.assert_array_equal(ja[0].same, jb[0].same)


def test_load_onto_cpu_device(mini_h5):
    (s,) = load_2afc(mini_h5, "val/color", device="cpu")
    assert isinstance(s.ref, torch.Tensor) and s.ref.dtype == torch.uint8
    assert s.judge.dtype == torch.float32 and tuple(s.ref.shape) == (len(s), 64, 64, 3)


@pytest.mark.gpu
def test_load_onto_cuda(mini_h5):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    (s,) = load_2afc(mini_h5, "val/color", device="cuda")
    (c,) = load_2afc(mini_h5, "val/color")
    assert s.ref.is_cuda and s.judge.is_cuda
    np.testing.assert_array_equal(s.p1.cpu().numpy(), c.p1)
    np.testing.assert_array_equal(s.judge.cpu().numpy(), c.judge)


@pytest.mark.parametrize("source", ["mini_root", "mini_h5"])
def test_chunks_cover_the_set(source, request):
    src = request.getfixturevalue(source)
    (full,) = load_2afc(src, "val/frameinterp")
    parts = list(iter_2afc_chunks(src, "val/frameinterp", 64))
    assert [len(p) for p in parts] == [64, 64, 64, 58]
    assert all(p.key == "2afc/val/frameinterp" for p in parts)
    np.testing.assert_array_equal(np.concatenate([p.p0 for p in parts]), full.p0)
    np.testing.assert_array_equal(np.concatenate([p.judge for p in parts]), full.judge)
    assert sum((p.stems for p in parts), []) == full.stems
    jparts = list(iter_jnd_chunks(src, "jnd/val/cnn", 100))
    assert [len(p) for p in jparts] == [100, 100, 50]
    with pytest.raises(ValueError, match="names 6 sets"):
        next(iter_2afc_chunks(src, "val", 10))


def test_to_model_input_matches_official_normalisation():
    x = np.array([0, 1, 127, 128, 254, 255], np.uint8).reshape(1, 1, 2, 3)
    y = to_model_input(x)
    assert y.shape == (1, 3, 1, 2) and y.dtype == torch.float32
    # (v / 255 - 0.5) / 0.5, NHWC -> NCHW: channel c of pixel w holds x[0, 0, w, c].
    def f(v):
        return v / 127.5 - 1.0
    expected = torch.tensor([[[[f(0), f(128)]], [[f(1), f(254)]], [[f(127), f(255)]]]])
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)
    assert to_model_input(torch.from_numpy(x), dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="NHWC"):
        to_model_input(np.zeros((1, 3, 4, 4), np.uint8))


@pytest.mark.parametrize("source", ["mini_root", "mini_h5"])
def test_torch_datasets_items(source, request):
    src = request.getfixturevalue(source)
    (s,) = load_2afc(src, "val/superres")
    ds = TwoAFCDataset(src, "val/superres")
    assert len(ds) == len(s) and ds.synthetic is True
    item = ds[5]
    assert item["ref"].dtype == torch.uint8 and tuple(item["ref"].shape) == (64, 64, 3)
    np.testing.assert_array_equal(item["p1"].numpy(), s.p1[5])
    assert item["judge"].dtype == torch.float32 and float(item["judge"]) == pytest.approx(float(s.judge[5]))
    assert (item["split"], item["category"], item["key"], item["stem"], item["index"]) == \
        ("val", "superres", "2afc/val/superres", s.stems[5], 5)
    fl = TwoAFCDataset(src, "val/superres", output="float", in_memory=False)
    f_item = fl[-1]
    assert tuple(f_item["p0"].shape) == (3, 64, 64) and f_item["p0"].dtype == torch.float32
    torch.testing.assert_close(f_item["p0"], to_model_input(s.p0[-1:])[0], rtol=0, atol=0)
    assert float(f_item["p0"].min()) >= -1 and float(f_item["p0"].max()) <= 1
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ValueError, match="output"):
        TwoAFCDataset(src, "val/superres", output="float16")


def test_dataset_spans_sets_and_batches(mini_h5):
    ds = TwoAFCDataset(mini_h5, "train")
    assert len(ds) == 900 and ds.keys == ["2afc/train/traditional", "2afc/train/cnn", "2afc/train/mix"]
    assert ds[299]["category"] == "traditional" and ds[300]["category"] == "cnn"
    assert ds[300]["index"] == 0
    loader = torch.utils.data.DataLoader(ds, batch_size=50, shuffle=False)
    batch = next(iter(loader))
    assert tuple(batch["ref"].shape) == (50, 64, 64, 3) and batch["split"][0] == "train"
    assert tuple(to_model_input(batch["ref"]).shape) == (50, 3, 64, 64)
    jd = JNDDataset(mini_h5, output="float")
    assert len(jd) == 500 and jd[260]["category"] == "cnn"
    assert 0.0 <= float(jd[0]["same"]) <= 1.0


def test_lazy_h5_dataset_in_worker_processes(mini_h5):
    ds = TwoAFCDataset(mini_h5, "val/color", in_memory=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=2,
                                         multiprocessing_context="fork")
    judges = torch.cat([b["judge"] for b in loader])
    (s,) = load_2afc(mini_h5, "val/color")
    np.testing.assert_array_equal(judges.numpy(), s.judge)


def test_user_categories_discovered_after_bapps_ones(tiny_tree):
    root = tiny_tree(("2afc/val/denoise", "2afc/val/cnn", "2afc/val/Blur_2", "2afc/train/own",
                      "jnd/val/zeta", "jnd/val/cnn"), n=2)
    (root / "2afc/val/empty").mkdir()                      # no set sub-folders: ignored
    (root / "2afc/val/bad name" / "ref").mkdir(parents=True)  # unsafe name: ignored
    with pytest.warns(UserWarning) as rec:
        keys = discover(root)
    assert keys == ["2afc/train/own", "2afc/val/cnn", "2afc/val/Blur_2", "2afc/val/denoise",
                    "jnd/val/cnn", "jnd/val/zeta"]
    text = " ".join(str(w.message) for w in rec)
    assert "empty" in text and "'bad name' is not a valid category name" in text
    assert expand_datasets("val/denoise", keys, "2afc") == ["2afc/val/denoise"]
    assert expand_datasets("val", keys, "2afc") == ["2afc/val/cnn", "2afc/val/Blur_2", "2afc/val/denoise"]
    with pytest.raises(ValueError, match="unknown 2AFC dataset 'val/nope'.*2afc/val/denoise"):
        expand_datasets("val/nope", keys, "2afc")
    (s,) = load_2afc(root, "val/denoise")
    assert (s.split, s.category, s.key) == ("val", "denoise", "2afc/val/denoise")


@pytest.mark.parametrize("key", ["2afc/val/a b", "2afc/val/..", "2afc/val/-x", "2afc/test/cnn",
                                 "jnd/train/cnn", "2afc/val/" + "x" * 65, "2afc/val"])
def test_invalid_set_keys(key):
    from bapps_toolkit.data.layout import is_set_key, split_key
    assert not is_set_key(key)
    with pytest.raises(ValueError, match="not a set key"):
        split_key(key)
