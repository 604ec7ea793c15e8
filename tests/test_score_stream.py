"""Streamed folder scoring (issue 15, part 2) and what `bapps score` prints (issue 10, first hour).

* streamed = pairwise: the distances of `score_folders` (DataLoader workers, size groups, small
  batches) equal one metric call per pair at the pair's native size;
* sizes: mixed sizes are grouped, a pair of two sizes is an error naming both files, and the
  resize option is the only way a size changes;
* resume: an interrupted run (interruption injected with monkeypatch) leaves a valid journal that
  the rerun continues, scoring only the missing pairs; a torn last line is dropped; rows of
  another metric are refused;
* `--all-pairs` as a matrix from cached features = pairwise calls (LPIPS on a random backbone,
  labelled UNCALIBRATED; l2 and ssim through the pairwise fallback), in memory and spilled to disk;
* outputs state metric, unit and direction; `--as-similarity` gives PSNR in dB and SSIM;
* memory (slow): the peak for 4N pairs is close to the peak for N pairs.
"""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bapps_toolkit.cli.main import build_parser, main
from bapps_toolkit.data import to_model_input
from bapps_toolkit.errors import DataError
from bapps_toolkit.metrics import create_metric
from bapps_toolkit.scoring import pair_run as pairs_mod  # where the batches are read
from bapps_toolkit.scoring.pair_output import journal_path
from bapps_toolkit.scoring.pair_stream import plan_batches
from bapps_toolkit.scoring.pairs import all_pairs_matrix, score_all_pairs, score_files, score_folders


def _img(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _pairwise(metric, a, b):
    with torch.no_grad():
        return float(metric(to_model_input(a[None]), to_model_input(b[None])))


@pytest.fixture
def mixed(tmp_path):
    """Two folders of 7 pairs in three sizes (interleaved), distorted by noise."""
    rng = np.random.default_rng(0)
    sizes = [(40, 48), (36, 36), (40, 48), (64, 40), (36, 36), (40, 48), (64, 40)]
    arrs = {}
    for k, (h, w) in enumerate(sizes):
        a = _img(rng, h, w)
        b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
        arrs[f"p{k}.png"] = (a, b)
        _save(tmp_path / "d0" / f"p{k}.png", a)
        _save(tmp_path / "d1" / f"p{k}.png", b)
    return tmp_path, arrs


@pytest.fixture(scope="module")
def random_alex():
    with pytest.warns(UserWarning, match="UNCALIBRATED"):
        return create_metric("lpips-alex", backbone_weights="random")


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_equals_pairwise_calls_at_native_size(mixed, random_alex, workers):
    root, arrs = mixed
    for metric in ("l2", random_alex):
        res = score_folders(root / "d0", root / "d1", metric=metric, batch_size=2, num_workers=workers,
                            progress=False)
        m = create_metric("l2") if metric == "l2" else random_alex
        want = [_pairwise(m, *arrs[p.name]) for p in res.files0]
        assert [p.name for p in res.files0] == sorted(arrs)
        np.testing.assert_allclose(res.distances, want, rtol=1e-5, atol=1e-8)
        assert not any(res.resized)
    # one batch per size (pixel budget and batch size large) gives the same numbers
    whole = score_folders(root / "d0", root / "d1", metric=random_alex, batch_size=1000, max_batch_pixels=1 << 30,
                          num_workers=workers, progress=False)
    np.testing.assert_allclose(whole.distances, res.distances, rtol=1e-5, atol=1e-8)


def test_batches_hold_one_size_within_the_budget():
    targets = np.array([[40, 48], [36, 36], [40, 48], [64, 40], [36, 36], [40, 48], [64, 40]])
    batches = plan_batches(targets, range(7), batch_size=2, max_batch_pixels=4000)
    assert sorted(k for b in batches for k in b) == list(range(7))
    assert batches == [[0, 2], [5], [1, 4], [3], [6]]  # sizes by first appearance; 2 x 64x40 > 4000 pixels
    for b in batches:
        assert len({tuple(targets[k]) for k in b}) == 1
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches(targets, range(7), batch_size=0, max_batch_pixels=10)


def test_pair_of_two_sizes_is_an_error_unless_resize_says_how(tmp_path):
    rng = np.random.default_rng(2)
    a, b = _save(tmp_path / "a.png", _img(rng, 30, 40)), _save(tmp_path / "b.png", _img(rng, 60, 80))
    with pytest.raises(DataError, match=r"a\.png is 40x30 but .*b\.png is 80x60.*resize"):
        score_files([(a, b)], metric="l2", progress=False)
    assert main(["score", str(a), str(b), "--metric", "l2"]) == 2
    notes = []
    res = score_files([(a, b)], metric="l2", resize="first", progress=False, notes=notes.append)
    b_small = np.array(Image.open(b).convert("RGB").resize((40, 30), Image.Resampling.BILINEAR))
    assert res.distances[0] == pytest.approx(_pairwise(create_metric("l2"), np.array(Image.open(a)), b_small),
                                             rel=1e-6)
    assert res.resized == [True] and "resized" in notes[0]
    res = score_files([(a, b)], metric="l2", resize="20x10", progress=False)
    a10 = np.array(Image.open(a).convert("RGB").resize((20, 10), Image.Resampling.BILINEAR))
    b10 = np.array(Image.open(b).convert("RGB").resize((20, 10), Image.Resampling.BILINEAR))
    assert res.distances[0] == pytest.approx(_pairwise(create_metric("l2"), a10, b10), rel=1e-6)
    with pytest.raises(ValueError, match="WxH"):
        score_files([(a, b)], metric="l2", resize="big", progress=False)


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_from_its_journal(mixed, monkeypatch):
    root, arrs = mixed
    out = root / "res" / "dists.csv"
    ref = score_folders(root / "d0", root / "d1", metric="l2", progress=False, num_workers=0)
    real = pairs_mod.iter_batches
    seen: list[list[int]] = []

    def dies_after_two(*args, **kwargs):
        for k, batch in enumerate(real(*args, **kwargs)):
            if k == 2:
                raise _Interrupt
            seen.append(list(batch[0]))
            yield batch

    monkeypatch.setattr(pairs_mod, "iter_batches", dies_after_two)
    with pytest.raises(_Interrupt):
        score_folders(root / "d0", root / "d1", metric="l2", out=out, batch_size=2, num_workers=0, progress=False)
    assert not out.exists() and not (root / "res" / "dists.csv.lock").exists()
    part = pd.read_csv(journal_path(out))  # a valid CSV of the batches that finished
    assert len(part) == sum(len(b) for b in seen) == 3  # batches [p0, p2], [p5] (sizes grouped)
    np.testing.assert_allclose(part.distance, [ref.distances[k] for k in (0, 2, 5)], rtol=1e-7)
    # a kill in mid-write leaves a torn last line: it is dropped on resume
    with open(journal_path(out), "a") as fh:
        fh.write("p6.png,0.12")
    scored: list[int] = []

    def counting(*args, **kwargs):
        for batch in real(*args, **kwargs):
            scored.extend(batch[0])
            yield batch

    monkeypatch.setattr(pairs_mod, "iter_batches", counting)
    res = score_folders(root / "d0", root / "d1", metric="l2", out=out, batch_size=2, num_workers=0, progress=False)
    assert sorted(scored) == [1, 3, 4, 6]  # only the missing pairs
    assert not journal_path(out).exists() and not (root / "res" / "dists.csv.lock").exists()
    f = pd.read_csv(out)
    assert list(f.file) == sorted(arrs)
    np.testing.assert_allclose(f.distance, ref.distances, rtol=1e-7)
    np.testing.assert_allclose(res.distances, ref.distances, rtol=1e-7)
    # a complete output: the rerun scores nothing and rewrites the same file
    scored.clear()
    text = out.read_text()
    score_folders(root / "d0", root / "d1", metric="l2", out=out, num_workers=0, progress=False)
    assert scored == [] and out.read_text() == text
    # another metric into the same file is refused, naming file and line
    with pytest.raises(DataError, match=r"dists\.csv line 2: distances of metric 'l2'.*'psnr'"):
        score_folders(root / "d0", root / "d1", metric="psnr", out=out, progress=False)
    out2 = root / "ssim.csv"
    score_folders(root / "d0", root / "d1", metric="ssim", out=out2, progress=False)
    with pytest.raises(DataError, match=r"ssim\.csv: columns file,distance,.* this run writes file,similarity"):
        score_folders(root / "d0", root / "d1", metric="ssim", out=out2, as_similarity=True, progress=False)


def test_rerun_scores_only_new_pairs(mixed, monkeypatch):
    root, arrs = mixed
    out = root / "d.csv"
    (root / "d0" / "p6.png").rename(root / "p6_0.png")
    (root / "d1" / "p6.png").rename(root / "p6_1.png")
    score_folders(root / "d0", root / "d1", metric="l2", out=out, progress=False)
    (root / "p6_0.png").rename(root / "d0" / "p6.png")
    (root / "p6_1.png").rename(root / "d1" / "p6.png")
    scored = []
    real = pairs_mod.iter_batches

    def counting(*args, **kwargs):
        for batch in real(*args, **kwargs):
            scored.extend(batch[0])
            yield batch

    monkeypatch.setattr(pairs_mod, "iter_batches", counting)
    score_folders(root / "d0", root / "d1", metric="l2", out=out, progress=False)
    assert len(scored) == 1 and len(pd.read_csv(out)) == 7


def _folder(tmp_path, n=6, h=40, w=48, seed=3):
    rng = np.random.default_rng(seed)
    arrs = []
    base = _img(rng, h, w)
    for i in range(n):  # near-duplicates of one image and unrelated ones
        a = base if i % 2 else _img(rng, h, w)
        a = np.clip(a.astype(int) + rng.integers(-3 * i, 3 * i + 1, a.shape), 0, 255).astype(np.uint8)
        arrs.append(a)
        _save(tmp_path / "all" / f"im{i:02d}.png", a)
    return tmp_path / "all", arrs


@pytest.mark.parametrize("spill", [False, True])
def test_all_pairs_matrix_equals_pairwise_calls(tmp_path, random_alex, spill):
    folder, arrs = _folder(tmp_path)
    n = len(arrs)
    # spill: the cache goes to a temporary file and blocks of 2 images; else one block in memory
    opts = dict(cache_bytes=1, block_bytes=1) if spill else {}
    for metric in (random_alex, "l2", "ssim"):
        m = create_metric(metric) if isinstance(metric, str) else metric
        want = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                if i != j:
                    want[i, j] = _pairwise(m, arrs[i], arrs[j])
        got = all_pairs_matrix(folder, metric=metric, progress=False, num_workers=0, **opts)
        np.testing.assert_allclose(got.matrix, want, rtol=1e-5, atol=1e-8)
        res = score_all_pairs(folder, metric=metric, progress=False, num_workers=0, batch_size=2, **opts)
        iu = np.triu_indices(n, 1)
        np.testing.assert_allclose(res.distances, want[iu], rtol=1e-5, atol=1e-8)
        assert [(a.name, b.name) for a, b in zip(res.files0, res.files1, strict=True)][0] == ("im00.png", "im01.png")
    assert "UNCALIBRATED" in got.label or metric != random_alex


def test_all_pairs_npy_and_json_label_uncalibrated(tmp_path, random_alex, capsys):
    folder, arrs = _folder(tmp_path, n=5)
    out = tmp_path / "m.npy"
    with pytest.warns(UserWarning, match="UNCALIBRATED"):
        assert main(["score", "--dir", str(folder), "--all-pairs", "--backbone-weights", "alex=random",
                     "--out", str(out), "--no-progress", "--workers", "0"]) == 0
    mat = np.load(out)
    meta = json.loads((tmp_path / "m.npy.json").read_text())
    assert meta["files"] == [f"im{i:02d}.png" for i in range(5)] and "UNCALIBRATED" in meta["metric"]
    assert meta["direction"] == "lower = more similar" and meta["calibrated"] is False
    assert "UNCALIBRATED" in capsys.readouterr().err
    assert mat.shape == (5, 5) and np.all(np.diag(mat) == 0) and np.allclose(mat, mat.T)
    assert mat[0, 3] == pytest.approx(_pairwise(random_alex, arrs[0], arrs[3]), rel=1e-5)


def test_all_pairs_mixed_sizes_need_resize(tmp_path):
    folder, _ = _folder(tmp_path, n=3)
    _save(folder / "zz.png", _img(np.random.default_rng(9), 20, 20))
    with pytest.raises(DataError, match=r"zz\.png is 20x20.*resize"):
        all_pairs_matrix(folder, metric="l2", progress=False)
    got = all_pairs_matrix(folder, metric="l2", resize="24x20", progress=False, num_workers=0)
    assert got.matrix.shape == (4, 4)


def test_all_pairs_csv_resumes_by_block(tmp_path, monkeypatch):
    folder, _ = _folder(tmp_path, n=6)
    out = tmp_path / "p.csv"
    ref = score_all_pairs(folder, metric="l2", progress=False, num_workers=0)
    journal_path(out).write_text("".join(_csv_lines(ref)[:1 + 5]))  # header + pairs (0, 1) … (0, 5)
    calls = []
    real = pairs_mod.ap.iter_blocks

    def spy(*args, **kwargs):
        for i0, j0, d in real(*args, **kwargs):
            calls.append((i0, j0))
            yield i0, j0, d

    monkeypatch.setattr(pairs_mod.ap, "iter_blocks", spy)
    # blocks of 2 images: block (0, 0) holds only pair (0, 1), done; block (0, 2) is half done
    res = score_all_pairs(folder, metric="l2", out=out, progress=False, num_workers=0, block_bytes=4 * 40 * 48 * 3)
    assert (0, 0) not in calls and (0, 2) in calls and (2, 2) in calls
    np.testing.assert_allclose(res.distances, ref.distances, rtol=1e-7)
    f = pd.read_csv(out)
    assert len(f) == 15 and not journal_path(out).exists()
    np.testing.assert_allclose(f.distance, ref.distances, rtol=1e-7)


def _csv_lines(res):
    buf = io.StringIO()
    res.to_csv(buf)
    return buf.getvalue().splitlines(keepends=True)


def test_outputs_state_metric_unit_direction_and_similarity_forms(mixed, capsys):
    root, arrs = mixed
    a, b = root / "d0" / "p0.png", root / "d1" / "p0.png"
    mse = np.mean((arrs["p0.png"][0] / 255.0 - arrs["p0.png"][1] / 255.0) ** 2)
    assert main(["score", str(a), str(b), "--metric", "psnr"]) == 0
    out = capsys.readouterr().out
    assert float(out.split()[0]) == pytest.approx(100 + 10 * math.log10(mse), abs=1e-3)
    assert "psnr" in out and "dB" in out and "lower = more similar" in out
    assert main(["score", str(a), str(b), "--metric", "psnr", "--as-similarity"]) == 0
    out = capsys.readouterr().out
    assert float(out.split()[0]) == pytest.approx(-10 * math.log10(mse), rel=1e-5)
    assert "PSNR (dB)" in out and "higher = more similar" in out
    assert main(["score", str(a), str(b), "--metric", "ssim", "--as-similarity"]) == 0
    s = float(capsys.readouterr().out.split()[0])
    d = _pairwise(create_metric("ssim"), *arrs["p0.png"])
    assert s == pytest.approx(1 - 2 * d, rel=1e-5)
    assert main(["score", str(a), str(b), "--metric", "l2", "--as-similarity"]) == 2
    assert "no similarity form" in capsys.readouterr().err
    assert main(["score", "--dir0", str(root / "d0"), "--dir1", str(root / "d1"), "--metric", "psnr",
                 "--as-similarity", "--no-progress"]) == 0
    f = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(f.columns) == ["file", "similarity", "unit", "direction", "resized", "metric"]
    assert set(f.unit) == {"PSNR (dB)"} and set(f.direction) == {"higher = more similar"}


def test_score_help_has_examples_and_every_flag_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    score = sub.choices["score"]
    assert all(a.help for a in score._actions)
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = capsys.readouterr().out
    assert text.count("  bapps score ") >= 3 and "--no-progress" in text and "--workers" in text


@pytest.mark.slow
@pytest.mark.parametrize("malloc", ["mmap4M", "glibc-default"])
def test_peak_memory_does_not_grow_with_the_number_of_pairs(tmp_path, malloc):
    """With a decode worker, and batches (8 pairs of 128², 1.5 MiB float inputs) under both mmap
    thresholds: the main process trims its freed blocks after each batch (without that it grew
    by ~6 MiB per batch of 16 pairs, 150 MB after 800 pairs, under either setting)."""
    from reliability.harness import MMAP_ENV, measure

    rng = np.random.default_rng(5)
    n = 200
    for count in (n, 4 * n):
        for k in range(count):
            a = _img(rng, 128, 128)
            _save(tmp_path / f"d0_{count}" / f"{k:05d}.png", a)
            _save(tmp_path / f"d1_{count}" / f"{k:05d}.png", a[::-1])
    body = """
        from bapps_toolkit.scoring.pairs import score_folders
        res = score_folders(sys.argv[1], sys.argv[2], metric="l2", out=sys.argv[3], progress=False, num_workers=1,
                           max_batch_pixels=8 * 128 * 128)
        _report(n=len(res.distances))
    """
    figs = {}
    for count in (n, 4 * n):
        figs[count] = measure(body, tmp_path / f"d0_{count}", tmp_path / f"d1_{count}", tmp_path / f"o{count}.csv",
                              env=MMAP_ENV if malloc == "mmap4M" else {})
        assert figs[count]["n"] == count
    # the former implementation kept every decoded image: +600 pairs x 2 x 48 KiB = +56 MiB
    assert figs[4 * n]["above_mb"] - figs[n]["above_mb"] < 12, figs
