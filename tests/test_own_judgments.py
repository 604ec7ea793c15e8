"""The researcher's own judgments: a CSV-defined 2AFC + JND set of 128×128 images, packed,
verified, evaluated and used to train ``lin``, against the same set written in the BAPPS folder
layout; every bad manifest input named.

The images are crops of scikit-image's photos (as the mini set's); the judgments are SYNTHETIC
(made from the distortion strengths, not measured on people), and both forms carry the
``SYNTHETIC.txt`` marker so every result says so. LPIPS runs on a RANDOM backbone (labelled
UNCALIBRATED): the test checks the pipeline, not the metric.
"""
from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from bapps_toolkit.data import load_2afc, load_jnd, pack, verify
from bapps_toolkit.data.images import centre_crop, decode_image
from bapps_toolkit.data.manifest import read_manifests
from bapps_toolkit.errors import DataError

SIDE = 128
N = {"2afc/train/own": 24, "2afc/val/own": 16, "jnd/val/own": 16}
RATERS = 5
SYNTHETIC = "SYNTHETIC judgments for a toolkit test: simulated from distortion strengths.\n"


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from bapps_toolkit.data.mini import load_photos

    return tuple(load_photos())


def _crop(i: int) -> np.ndarray:
    photos = _photos()
    img = photos[i % len(photos)]
    h, w = img.shape[:2]
    y = (37 * i) % (h - SIDE)
    x = (53 * i) % (w - SIDE)
    return np.ascontiguousarray(img[y:y + SIDE, x:x + SIDE])


def _distort(img: np.ndarray, strength: float, kind: int, rng) -> np.ndarray:
    if kind % 2:
        out = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.5 + 3 * strength)), np.float64)
    else:
        out = img + rng.normal(0, 50 * strength, img.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _save(arr: np.ndarray, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG", compress_level=1)
    return path.name


def build_own_set(tmp: Path) -> tuple[list[Path], Path]:
    """The same items twice: CSV manifests (+ images/) and a BAPPS-layout folder with .npy files.

    Default ids = the CSV's data row numbers, so the folder's stems are those numbers too."""
    rng = np.random.default_rng(7)
    man, root = tmp / "csv", tmp / "folder"
    (man / "images").mkdir(parents=True)
    root.mkdir()
    for d in (man, root):
        (d / "SYNTHETIC.txt").write_text(SYNTHETIC)
    rows_2afc, rows_jnd, item = [], [], 0
    for key, n in N.items():
        kind, split, cat = key.split("/")
        for _ in range(n):
            item += 1
            ref = _crop(item)
            s0, s1 = (float(v) for v in rng.uniform(0.05, 1.0, 2))
            a, b = _distort(ref, s0, item, rng), _distort(ref, s1, item + 1, rng)
            rows = rows_2afc if kind == "2afc" else rows_jnd
            stem = f"{len(rows) + 1:06d}"
            d = root / key
            if kind == "2afc":
                p1_votes = int(np.clip(np.rint(RATERS / (1 + np.exp(8 * (s1 - s0)))), 0, RATERS))
                names = [_save(x, man / "images" / f"{key.replace('/', '_')}_{stem}_{r}.png")
                         for x, r in ((ref, "ref"), (a, "p0"), (b, "p1"))]
                for x, r in ((ref, "ref"), (a, "p0"), (b, "p1")):
                    _save(x, d / r / f"{stem}.png")
                (d / "judge").mkdir(parents=True, exist_ok=True)
                np.save(d / "judge" / f"{stem}.npy", np.array([p1_votes / RATERS], np.float32))
                rows.append([f"images/{n_}" for n_ in names] + [RATERS - p1_votes, p1_votes, split, cat])
            else:
                same = float(np.float32(round(max(0.0, 1 - abs(s0 - s1) * 2.5 - 0.2 * s0), 2)))
                names = [_save(x, man / "images" / f"jnd_{stem}_{r}.png") for x, r in ((a, "p0"), (b, "p1"))]
                for x, r in ((a, "p0"), (b, "p1")):
                    _save(x, d / r / f"{stem}.png")
                (d / "same").mkdir(parents=True, exist_ok=True)
                np.save(d / "same" / f"{stem}.npy", np.array([same], np.float32))
                rows.append([f"images/{n_}" for n_ in names] + [same])
    write_csv(man / "triplets.csv", ["ref", "p0", "p1", "votes_p0", "votes_p1", "split", "category"], rows_2afc)
    write_csv(man / "pairs.csv", ["p0", "p1", "same"], rows_jnd)
    return [man / "triplets.csv", man / "pairs.csv"], root


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own")
    csvs, root = build_own_set(tmp)
    a = pack(csvs, tmp / "from_csv.h5", progress=False)
    b = pack(root, tmp / "from_folder.h5", size=SIDE, progress=False)
    return {"csvs": csvs, "root": root, "csv_h5": a, "folder_h5": b, "tmp": tmp}


def test_csv_and_folder_pack_to_the_same_arrays(own):
    va, vb = verify(own["csv_h5"]), verify(own["folder_h5"])
    assert va["sets"] == vb["sets"] == N
    assert va["sizes"] == vb["sizes"] == dict.fromkeys(N, SIDE)
    assert va["synthetic"] and vb["synthetic"]
    for loader in (load_2afc, load_jnd):
        for x, y in zip(loader(own["csv_h5"]), loader(own["folder_h5"]), strict=True):
            assert x.key == y.key and x.stems == y.stems and x.size == SIDE
            for name in ("ref", "p0", "p1", "judge", "same"):
                if hasattr(x, name):
                    np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    (tr, _) = load_2afc(own["csv_h5"], ["train", "val"])
    assert tr.n_votes is not None and (np.asarray(tr.n_votes) == RATERS).all()
    assert set(np.rint(np.asarray(tr.judge) * RATERS).astype(int)) <= set(range(RATERS + 1))
    assert load_2afc(own["folder_h5"], "train")[0].n_votes is None


def test_same_scores_from_csv_and_folder(own):
    from bapps_toolkit.evaluate import evaluate
    from bapps_toolkit.report.tables import to_markdown

    kw = dict(n_boot=50, device="cpu", progress=False, backbone_weights={"alex": "random"},
              datasets=["2afc/val/own", "jnd/val/own"])
    with pytest.warns(UserWarning):
        a = evaluate(own["csv_h5"], ["l2", "ssim", "lpips-alex"], **kw)
    with pytest.warns(UserWarning):
        b = evaluate(own["folder_h5"], ["l2", "ssim", "lpips-alex"], **kw)
    cols = ["metric", "mode", "split", "category", "score", "ci_low", "ci_high"]
    assert a[cols].equals(b[cols])
    assert set(a.category) >= {"own"} and a[a.metric == "lpips-alex"].label.str.contains("UNCALIBRATED").all()
    md = to_markdown(a)
    assert "2AFC own" in md and "JND own" in md and "SYNTHETIC" in md


def test_train_lin_on_csv_and_folder_gives_the_same_run(own):
    from safetensors.torch import load_file

    from bapps_toolkit.train import TrainConfig, train

    runs = {}
    for name in ("csv_h5", "folder_h5"):
        cfg = TrainConfig(data=str(own[name]), out=str(own["tmp"] / f"run_{name}"), net="alex",
                          variant="lin", backbone_weights="random", epochs=1, decay_epochs=0,
                          batch_size=8, progress=False, seed=3, val_every_epoch=True)
        with pytest.warns(UserWarning, match="UNCALIBRATED"):
            runs[name] = train(cfg)
    a, b = (runs[k] for k in ("csv_h5", "folder_h5"))
    assert not a.calibrated and "random backbone" in str(a.card)
    wa, wb = load_file(str(a.checkpoint_path)), load_file(str(b.checkpoint_path))
    assert sorted(wa) == sorted(wb)
    for k in wa:
        assert (wa[k] == wb[k]).all(), k
    keep = ("epoch", "loss", "val_2afc")
    ha = [{k: h.get(k) for k in keep} for h in a.card["history"]]
    assert ha == [{k: h.get(k) for k in keep} for h in b.card["history"]]
    assert ha[0]["loss"] is not None and ha[0]["val_2afc"] is not None


def test_full_path_scratch_streaming_and_item_reads_at_128(own):
    """The other routes through the data at 128×128: the full training path with the backbone
    trained (``scratch``: random start, labelled), ``evaluate(stream=True)`` and item-by-item reads."""
    from safetensors.torch import load_file

    from bapps_toolkit.data import TwoAFCDataset, iter_2afc_chunks
    from bapps_toolkit.evaluate import evaluate
    from bapps_toolkit.train import TrainConfig, train

    weights = []
    for name in ("csv_h5", "folder_h5"):
        cfg = TrainConfig(data=str(own[name]), out=str(own["tmp"] / f"scratch_{name}"), net="alex",
                          variant="scratch", epochs=1, decay_epochs=0,
                          batch_size=12, progress=False, seed=5, deterministic=True, device="cpu")
        with pytest.warns(UserWarning, match="UNCALIBRATED"):
            res = train(cfg)
        assert res.card["fast_path"] is False
        weights.append(load_file(str(res.checkpoint_path)))
    assert sorted(weights[0]) == sorted(weights[1])
    for k in weights[0]:
        assert (weights[0][k] == weights[1][k]).all(), k
    kw = dict(n_boot=20, device="cpu", progress=False, datasets=["2afc/val/own", "jnd/val/own"])
    whole = evaluate(own["csv_h5"], ["l2", "ssim"], **kw)
    streamed = evaluate(own["csv_h5"], ["l2", "ssim"], stream=True, chunk_size=5, **kw)
    assert whole[["metric", "category", "score"]].equals(streamed[["metric", "category", "score"]])
    parts = list(iter_2afc_chunks(own["csv_h5"], "val/own", 5))
    assert [len(p) for p in parts] == [5, 5, 5, 1] and parts[0].ref.shape == (5, SIDE, SIDE, 3)
    ds = TwoAFCDataset(own["csv_h5"], "val/own", in_memory=False, output="float")
    try:
        assert tuple(ds[3]["ref"].shape) == (3, SIDE, SIDE) and ds[3]["category"] == "own"
    finally:
        ds.close()


# ------------------------------------------------------------------------------------------
# the --size rule

def test_size_rule_square_resize_and_centre_crop(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)
    sq = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
    _save(wide, tmp_path / "wide.png")
    _save(sq, tmp_path / "sq.png")
    crop = centre_crop(wide)
    np.testing.assert_array_equal(crop, wide[:, 20:80])
    np.testing.assert_array_equal(centre_crop(wide.transpose(1, 0, 2)), wide.transpose(1, 0, 2)[20:80])
    np.testing.assert_array_equal(decode_image(tmp_path / "wide.png", 60, crop=True), wide[:, 20:80])
    want = np.asarray(Image.fromarray(wide[:, 20:80]).resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(decode_image(tmp_path / "wide.png", 32, crop=True), want)
    want = np.asarray(Image.fromarray(sq).resize((48, 48), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(decode_image(tmp_path / "sq.png", 48, crop=True), want)
    np.testing.assert_array_equal(decode_image(tmp_path / "sq.png", 80), sq)
    with pytest.raises(DataError, match="not square"):
        decode_image(tmp_path / "wide.png", 64)


def _small_csv(tmp: Path, sizes=((40, 40), (40, 40), (40, 40)), header=("ref", "p0", "p1", "judge"),
               rows=None) -> Path:
    rng = np.random.default_rng(1)
    for i, (w, h) in enumerate(sizes):
        _save(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), tmp / f"im{i}.png")
    rows = rows if rows is not None else [["im0.png", "im1.png", "im2.png", "0.5"],
                                          ["im0.png", "im2.png", "im1.png", "0.25"]]
    return write_csv(tmp / "m.csv", header, rows)


def test_size_option_packs_mixed_and_non_square_images(tmp_path):
    m = _small_csv(tmp_path, sizes=((40, 40), (64, 48), (30, 30)))
    with pytest.raises(DataError, match=r"data row 1 \(line 2\), field 'p0'.*im1.png is 64x48, not square"):
        pack(m, tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()
    out = pack(m, tmp_path / "o.h5", size=32, progress=False)
    assert verify(out)["sizes"] == {"2afc/val/own": 32}
    (s,) = load_2afc(out)
    np.testing.assert_array_equal(s.p0[0], decode_image(tmp_path / "im1.png", 32, crop=True))
    assert s.stems == ["000001", "000002"] and s.n_votes is None


def test_mixed_sizes_without_size_name_two_files(tmp_path):
    m = _small_csv(tmp_path, sizes=((40, 40), (40, 40), (32, 32)))
    with pytest.raises(DataError, match=r"data row 1 \(line 2\), field 'p1'.*mixed sizes.*im2.png is "
                                        r"32x32 but .*im0.png is 40x40.*--size"):
        pack(m, tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()


def test_folder_pack_keeps_64_by_default(tiny_tree, tmp_path):
    root = tiny_tree(("2afc/val/denoise",), n=3)
    assert verify(pack(root, tmp_path / "a.h5", progress=False))["sizes"] == {"2afc/val/denoise": 64}
    assert verify(pack(root, tmp_path / "b.h5", size=32, progress=False))["sizes"] == {"2afc/val/denoise": 32}


# ------------------------------------------------------------------------------------------
# every bad input, named

BAD = [
    (("ref", "p0", "p1", "judge"), [["im0.png", "nope.png", "im2.png", "0.5"]],
     r"data row 1 \(line 2\), field 'p0': image .*nope.png does not exist"),
    (("ref", "p0", "p1", "judge"), [["im0.png", "im1.png", "im2.png", "0.5"], ["im0.png", "im1.png", "im2.png", "1.5"]],
     r"data row 2 \(line 3\), field 'judge': 1.5 is outside \[0, 1\]"),
    (("ref", "p0", "p1", "judge"), [["im0.png", "im1.png", "im2.png", "high"]],
     r"data row 1 \(line 2\), field 'judge': 'high' is not a number"),
    (("ref", "p0", "p1", "judge"), [["im0.png", "im1.png", "im2.png", "nan"]],
     r"data row 1 \(line 2\), field 'judge': 'nan' is not a finite number"),
    (("ref", "p0", "p1", "votes_p0", "votes_p1"), [["im0.png", "im1.png", "im2.png", "-1", "3"]],
     r"data row 1 \(line 2\), field 'votes_p0': -1 is negative"),
    (("ref", "p0", "p1", "votes_p0", "votes_p1"), [["im0.png", "im1.png", "im2.png", "1", "2.5"]],
     r"data row 1 \(line 2\), field 'votes_p1': 2.5 is not an integer vote count"),
    (("ref", "p0", "p1", "votes_p0", "votes_p1"), [["im0.png", "im1.png", "im2.png", "0", "0"]],
     r"data row 1 \(line 2\), fields 'votes_p0','votes_p1': no votes"),
    (("ref", "p0", "p1", "judge", "votes_p0", "votes_p1"), [["im0.png", "im1.png", "im2.png", "0.9", "3", "1"]],
     r"data row 1 \(line 2\): field 'judge' = 0.9 disagrees with the vote counts \(votes_p1 1 of 4"),
    (("ref", "p0", "p1", "judge"), [["im0.png", "im1.png", "im2.png", "0.5"], ["im0.png", "im1.png", "im2.png", "0.7"]],
     r"data row 2 \(line 3\): duplicate row: the same images as data row 1"),
    (("ref", "p0", "p1", "judge", "id"), [["im0.png", "im1.png", "im2.png", "0.5", "a"],
                                          ["im0.png", "im2.png", "im1.png", "0.7", "a"]],
     r"data row 2 \(line 3\): duplicate row: the same id 'a' as data row 1"),
    (("ref", "p0", "judge"), [["im0.png", "im1.png", "0.5"]],
     r"\(2AFC\): missing column\(s\) p1; present columns: ref, p0, judge"),
    (("ref", "p0", "p1"), [["im0.png", "im1.png", "im2.png"]],
     r"missing column\(s\) judge \(or votes_p0,votes_p1\); present columns: ref, p0, p1"),
    (("ref", "p0", "p1", "votes_p1"), [["im0.png", "im1.png", "im2.png", "2"]],
     r"missing column\(s\) votes_p0; present"),
    (("a", "b", "c"), [["im0.png", "im1.png", "im2.png"]],
     r"cannot tell its kind.*present columns: a, b, c"),
    (("p0", "p1", "votes_same"), [["im0.png", "im1.png", "2"]],
     r"\(JND\): missing column\(s\) votes_different"),
    (("p0", "p1", "same", "split"), [["im0.png", "im1.png", "0.5", "train"]],
     r"data row 1 \(line 2\), field 'split': 'train' is not a JND split \(val\)"),
    (("ref", "p0", "p1", "judge", "category"), [["im0.png", "im1.png", "im2.png", "0.5", "../x"]],
     r"data row 1 \(line 2\), field 'category': '../x' is not a valid category name"),
    (("ref", "p0", "p1", "judge"), [["im0.png", "", "im2.png", "0.5"]],
     r"data row 1 \(line 2\), field 'p0': empty"),
    (("ref", "p0", "p1", "judge"), [],
     r"has a header but no data rows"),
]


@pytest.mark.parametrize(("header", "rows", "match"), BAD, ids=[b[2][:40] for b in BAD])
def test_bad_manifest_inputs_are_named(tmp_path, header, rows, match):
    m = _small_csv(tmp_path, header=header, rows=rows)
    out = tmp_path / "o.h5"
    with pytest.raises(DataError, match=match):
        pack(m, out, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".o.h5*"))


def test_bad_image_named_with_its_row(tmp_path):
    m = _small_csv(tmp_path)
    (tmp_path / "im1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"data row 1 \(line 2\), field 'p0': cannot read image .*im1.png"):
        read_manifests([m])


def test_jnd_votes_and_two_manifests(tmp_path):
    m = _small_csv(tmp_path)
    j = write_csv(tmp_path / "j.csv", ["p0", "p1", "votes_same", "votes_different", "category"],
                  [["im0.png", "im1.png", "3", "1", "pairs"], ["im1.png", "im2.png", "0", "2", "pairs"]])
    out = pack([m, j], tmp_path / "o.h5", progress=False)
    assert verify(out)["sets"] == {"2afc/val/own": 2, "jnd/val/pairs": 2}
    (s,) = load_jnd(out)
    np.testing.assert_array_equal(s.same, np.float32([0.75, 0.0]))
    np.testing.assert_array_equal(s.n_votes, [4, 2])
    with pytest.raises(DataError, match=r"set 2afc/val/own is defined by two manifests"):
        pack([m, m], tmp_path / "p.h5", progress=False)


def test_cli_pack_csv_with_size(tmp_path, capsys):
    from bapps_toolkit.cli.main import main

    m = _small_csv(tmp_path, sizes=((40, 40), (50, 40), (30, 30)))
    assert main(["pack", str(m), str(tmp_path / "o.h5"), "--size", "24", "--no-progress"]) == 0
    assert "24x24" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "o.h5"), "--no-progress"]) == 0
    assert "2afc/val/own" in capsys.readouterr().out
    assert main(["pack", str(m), str(tmp_path / "p.h5"), "--no-progress"]) == 2
    assert "not square" in capsys.readouterr().err
    j = write_csv(tmp_path / "j.csv", ["p0", "p1", "same"], [["im0.png", "im2.png", "1"]])
    assert main(["pack", str(m), str(j), str(tmp_path / "q.h5"), "--size", "16", "--no-progress"]) == 0
    assert verify(tmp_path / "q.h5")["sets"] == {"2afc/val/own": 2, "jnd/val/own": 1}


def test_judge_export_csv_columns_are_read(tmp_path):
    """The header ``bapps judge export --format csv`` writes (ref,p0,p1,judge,n_p0,n_p1,set_key,stem)."""
    m = _small_csv(tmp_path, header=("ref", "p0", "p1", "judge", "n_p0", "n_p1", "set_key", "stem"),
                   rows=[["im0.png", "im1.png", "im2.png", "0.6667", "1", "2", "2afc/train/traditional", "s1"],
                         ["im0.png", "im2.png", "im1.png", "0", "3", "0", "2afc/train/traditional", "s2"]])
    (s,) = load_2afc(pack(m, tmp_path / "o.h5", progress=False))
    assert s.key == "2afc/train/traditional" and s.stems == ["s1", "s2"]
    np.testing.assert_array_equal(s.judge, np.float32([2 / 3, 0.0]))
    np.testing.assert_array_equal(s.n_votes, [3, 3])


def test_verify_checks_the_vote_counts(tmp_path):
    import h5py

    m = _small_csv(tmp_path, header=("ref", "p0", "p1", "votes_p0", "votes_p1"),
                   rows=[["im0.png", "im1.png", "im2.png", "1", "3"], ["im0.png", "im2.png", "im1.png", "2", "0"]])
    out = pack(m, tmp_path / "o.h5", progress=False)
    assert verify(out)["arrays_checked"] == 6  # ref, p0, p1, judge, stems, n_votes
    with h5py.File(out, "r+") as f:
        f["2afc/val/own/n_votes"][1] = 7
    with pytest.raises(DataError, match=r"/2afc/val/own/n_votes fails its SHA-256 check"):
        verify(out)
