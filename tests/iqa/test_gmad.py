"""gMAD on a packed IQA-layout replica (tests/iqa/replicas.py, SYNTHETIC scores not used) with
four metrics: every selected pair meets the defender's tolerance (re-measured on the written
images), shares one reference, is the attacker's farthest pair in its band; the report's
aggressiveness and resistance matrices from simulated-observer judgments."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bapps_toolkit.competition import read_manifest
from bapps_toolkit.competition.gmad import GmadConfig, run_gmad
from bapps_toolkit.competition.metricspec import build_metric
from bapps_toolkit.competition.output import pixel_digest
from bapps_toolkit.competition.pool import load_pool
from bapps_toolkit.data.images import read_rgb
from bapps_toolkit.data.iqa.pack_iqa import pack_benchmark
from bapps_toolkit.data.mini.observer import OBS_TAU, observer_distance, sigmoid
from bapps_toolkit.errors import DataError
from bapps_toolkit.judge import read_items
from bapps_toolkit.report.competition import competition_report

from . import replicas

METRICS = ("l2", "ssim", "fsim", "lpips-alex")
WEIGHTS = ("alex=random",)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = replicas.kadid10k(tmp_path_factory.mktemp("kadid"))
    out = tmp_path_factory.mktemp("packed") / "kadid.h5"
    pack_benchmark(root, out, progress=False)
    return root, out


@pytest.fixture(scope="module")
def gmad_run(packed, tmp_path_factory):
    out = tmp_path_factory.mktemp("gmad") / "set"
    return run_gmad(GmadConfig(METRICS, pool=str(packed[1]), out=str(out), backbone_weights=WEIGHTS)), out


def _tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255


def test_every_ordered_pair_meets_the_defender_tolerance_on_the_written_images(gmad_run):
    run, out = gmad_run
    man = read_manifest(out)
    assert {(it.held, it.pushed) for it in man.items} == {(d, a) for d in METRICS for a in METRICS if a != d}
    metrics = {n: build_metric(n, backbone_weights=WEIGHTS) for n in METRICS}
    for it in man.items:
        ref, p0, p1 = (_tensor(read_rgb(out / it.key / r / f"{it.stem}.png")) for r in ("ref", "p0", "p1"))
        d = [float(metrics[it.held](ref, x)) for x in (p0, p1)]
        assert abs(d[0] - d[1]) <= it.tolerance * (1 + 1e-6), it
        assert all(abs(v - it.level_value) <= it.tolerance / 2 * (1 + 1e-6) for v in d), it
        a = [float(metrics[it.pushed](ref, x)) for x in (p0, p1)]
        assert a == pytest.approx(list(it.values[it.pushed]), rel=1e-4, abs=1e-7)


def test_pairs_share_their_reference_and_are_the_attackers_farthest(gmad_run, packed):
    run, out = gmad_run
    man = read_manifest(out)
    pool = load_pool(packed[1])
    digest = {pixel_digest(pool.load_entry(j)): j for j in range(len(pool.entries))}
    refs = [e.ref_id for e in pool.entries]
    names = list(METRICS)
    for it in man.items:
        j0, j1 = (digest[pixel_digest(read_rgb(out / it.key / s / f"{it.stem}.png"))] for s in ("p0", "p1"))
        assert refs[j0] == refs[j1] == it.source
        assert pixel_digest(pool.load_ref(it.source)) == it.digests["ref"]
        sd, sa = run.scores[names.index(it.held)], run.scores[names.index(it.pushed)]
        band = [j for j in range(len(refs)) if abs(sd[j] - it.level_value) <= it.tolerance / 2]
        best = max(abs(sa[x] - sa[y]) for x in band for y in band if x < y and refs[x] == refs[y])
        got = abs(sa[j0] - sa[j1])
        assert got == pytest.approx(best) or got < best  # passed over only for a pair used at another level
    assert sum(abs(it.values[it.pushed][0] - it.values[it.pushed][1]) > 0 for it in man.items) == len(man.items)


def test_the_set_is_judgeable_and_labelled(gmad_run):
    run, out = gmad_run
    assert len(read_items(out)) == len(run.manifest.items)
    man = read_manifest(out)
    assert man.uncalibrated and any("SYNTHETIC" in n for n in man.notes)
    assert (out / "pool_scores.csv").read_text().splitlines()[0] == "ref_id,image," + ",".join(METRICS)


def _observer_judgments(out, man) -> dict:
    ans = {}
    for it in man.items:
        ref, p0, p1 = (read_rgb(out / it.key / r / f"{it.stem}.png")[None] for r in ("ref", "p0", "p1"))
        ans[(it.key, it.stem)] = float(sigmoid((observer_distance(ref, p0)[0] - observer_distance(ref, p1)[0])
                                                / OBS_TAU))
    return ans


def test_report_gives_both_matrices_as_tables_and_a_figure(gmad_run, tmp_path):
    import shutil

    run, out = gmad_run
    man = read_manifest(out)
    judged = tmp_path / "judged"  # as `bapps judge export` writes it, with the observer's fractions
    shutil.copytree(out / "2afc", judged / "2afc")
    frac = _observer_judgments(out, man)
    for key in {it.key for it in man.items}:
        (judged / key / "judge").mkdir()
    for (key, stem), f in frac.items():
        np.save(judged / key / "judge" / f"{stem}.npy", np.array([f], dtype=np.float32))
    rep = competition_report(judged, out, out=tmp_path / "verdict", n_boot=500)
    agg, res = rep.tables["aggressiveness"], rep.tables["resistance"]
    assert agg.shape == res.shape == (4, 4)
    assert np.allclose(res.to_numpy(), 1 - agg.to_numpy().T, equal_nan=True)
    assert np.isnan(np.diag(agg.to_numpy())).all() and np.isfinite(agg.to_numpy()[~np.eye(4, dtype=bool)]).all()
    assert any("UNCALIBRATED" in c for c in agg.columns)
    for name in ("aggressiveness", "resistance", "cells", "figure", "text", "json", "pairs"):
        assert rep.files[name].is_file()
    assert "aggressiveness (rows: attacker" in rep.text and "Ma et al." in rep.text
    assert len(rep.verdict.pairs) == 6


def test_pool_from_the_benchmark_folder_and_from_an_own_folder(packed, tmp_path):
    from PIL import Image

    assert len(load_pool(packed[0]).entries) == 60
    own = tmp_path / "own"
    rng = np.random.default_rng(0)
    for rid in ("a", "b"):
        img = rng.integers(30, 220, (40, 40, 3), dtype=np.uint8)
        (own / "ref").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(own / "ref" / f"{rid}.png")
        for k in range(4):
            (own / "dist" / rid).mkdir(parents=True, exist_ok=True)
            noisy = np.clip(img + rng.normal(0, 5 + 10 * k, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(own / "dist" / rid / f"{k}.png")
    run = run_gmad(GmadConfig(("l2", "ssim"), pool=str(own), out=str(tmp_path / "o"), levels=2, tolerance=0.5))
    assert run.manifest.items and {it.source for it in run.manifest.items} <= {"a", "b"}
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(own / "dist" / "a" / "odd.png")
    with pytest.raises(DataError, match="odd.png.*reference"):
        run_gmad(GmadConfig(("l2", "ssim"), pool=str(own), out=str(tmp_path / "o2")))


def test_a_rerun_uses_the_cached_scores_and_a_corrupt_cache_is_rescored(gmad_run, tmp_path, monkeypatch):
    import shutil

    from bapps_toolkit.competition import gmad

    run, out = gmad_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    cfg = GmadConfig(METRICS, pool=run.manifest.settings["pool"], out=str(copy), backbone_weights=WEIGHTS)

    def refuse(*a, **k):
        raise AssertionError("scored again")

    monkeypatch.setattr(gmad, "score_pool", refuse)
    again = run_gmad(cfg)
    assert [it.digests for it in again.manifest.items] == [it.digests for it in run.manifest.items]
    np.save(copy / ".competition" / "scores.npy", np.zeros((2, 3)))
    monkeypatch.undo()
    again = run_gmad(cfg)
    assert np.allclose(again.scores, run.scores, equal_nan=True)


def test_bad_pools_and_settings_are_refused(tmp_path, packed):
    with pytest.raises(DataError, match="does not exist"):
        load_pool(tmp_path / "nothing")
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not a packed correlation benchmark"):
        load_pool(tmp_path / "x.h5")
    with pytest.raises(ValueError, match="at least two"):
        run_gmad(GmadConfig(("l2",), pool=str(packed[1]), out=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="tolerance"):
        run_gmad(GmadConfig(("l2", "ssim"), pool=str(packed[1]), out=str(tmp_path / "o"), tolerance=1.5))


def test_gmad_cli(packed, tmp_path, capsys):
    from bapps_toolkit.cli.main import main

    assert main(["gmad", "l2", "ssim", "--pool", str(packed[1]), "--out", str(tmp_path / "g"), "--levels", "3"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and (tmp_path / "g" / "competition.json").is_file()
    assert main(["gmad", "l2", "--pool", str(packed[1]), "--out", str(tmp_path / "h")]) == 2
    assert "at least two" in capsys.readouterr().err
