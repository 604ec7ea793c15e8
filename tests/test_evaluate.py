"""evaluate() on the synthetic mini set, checked against direct numpy computations."""
import numpy as np
import pandas as pd
import pytest
import torch

from bapps_toolkit.data import JND_CATEGORIES, TWOAFC_CATEGORIES, find_sets, load_2afc, load_jnd
from bapps_toolkit.errors import DataError
from bapps_toolkit.evaluate import COLUMNS, evaluate, run_evaluation, select_sets
from bapps_toolkit.metrics import Metric
from bapps_toolkit.scores import HUMAN, MEAN_CATEGORY, jnd_map, score_2afc


def _l2_numpy(a, b):
    """Mean squared error of uint8 images in [0, 1], by hand (numpy, float64)."""
    a = a.astype(np.float64) / 255
    b = b.astype(np.float64) / 255
    return ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)


@pytest.fixture(scope="module")
def l2_result(mini_h5):
    # every set, train included: since issue 10 train sets are scored only when named
    return run_evaluation(mini_h5, ["l2"], datasets=["train", "val"], n_boot=300, progress=False)


def test_every_category_and_columns(l2_result, mini_h5):
    t = l2_result.table
    assert list(t.columns) == COLUMNS
    present = find_sets(mini_h5)
    expected = {f"2afc/{s}/{c}" for s, cs in TWOAFC_CATEGORIES.items() for c in cs} | {
        f"jnd/{s}/{c}" for s, cs in JND_CATEGORIES.items() for c in cs}
    assert set(present) == expected
    l2 = t[(t.metric == "l2") & (t.category != MEAN_CATEGORY)]
    assert {f"{r.mode}/{r.split}/{r.category}" for r in l2.itertuples()} == expected
    human = t[(t.metric == HUMAN) & (t.category != MEAN_CATEGORY)]
    assert {f"{r.mode}/{r.split}/{r.category}" for r in human.itertuples()} == {
        k for k in expected if k.startswith("2afc/")}
    assert t.synthetic.all() and t.calibrated.all()
    assert ((t.ci_low <= t.score) & (t.score <= t.ci_high)).all()
    assert (t[t.metric == "l2"].label == "l2").all()


def test_scores_match_direct_numpy(l2_result, mini_h5):
    t = l2_result.table
    for s in load_2afc(mini_h5, ["val/cnn", "train/mix"]):
        d0, d1 = _l2_numpy(s.ref, s.p0), _l2_numpy(s.ref, s.p1)
        row = t[(t.metric == "l2") & (t["mode"] == "2afc") & (t.split == s.split) & (t.category == s.category)].iloc[0]
        assert row.n == len(s)
        assert row.score == pytest.approx(score_2afc(d0, d1, s.judge), abs=1e-12)
        hum = t[(t.metric == HUMAN) & (t.split == s.split) & (t.category == s.category)].iloc[0]
        g = s.judge.astype(np.float64)
        assert hum.score == pytest.approx(np.mean(g ** 2 + (1 - g) ** 2))
    for s in load_jnd(mini_h5, ["val/traditional"]):
        row = t[(t.metric == "l2") & (t["mode"] == "jnd") & (t.category == "traditional")].iloc[0]
        assert row.score == pytest.approx(jnd_map(_l2_numpy(s.p0, s.p1), s.same), abs=1e-9)
    # mean column = unweighted mean of val/traditional and val/cnn
    part = t[(t.metric == "l2") & (t.split == "val") & (t["mode"] == "2afc")].set_index("category").score
    assert part[MEAN_CATEGORY] == pytest.approx((part["traditional"] + part["cnn"]) / 2)


def test_folder_and_h5_agree_and_seed_is_reproducible(mini_root, mini_h5):
    a = evaluate(mini_root, ["l2"], datasets=["2afc/val/color"], n_boot=200, seed=3, progress=False)
    b = evaluate(mini_h5, ["l2"], datasets=["2afc/val/color"], n_boot=200, seed=3, progress=False)
    pd.testing.assert_frame_equal(a, b)
    c = evaluate(mini_h5, ["l2"], datasets=["2afc/val/color"], n_boot=200, seed=4, progress=False)
    assert (c.score == b.score).all() and not (c.ci_low == b.ci_low).all()


class CountingL1(Metric):
    """Mean absolute difference; counts how often each image batch is processed."""

    name = "count-l1"

    def __init__(self):
        super().__init__()
        self.forward_calls = 0
        self.pair_calls = 0

    def _distance(self, x0, x1):
        self.forward_calls += 1
        return (x0 - x1).abs().mean(dim=(1, 2, 3))

    def pair_distances(self, ref, p0, p1, *, validate=True):
        self.pair_calls += 1
        return self._distance(ref, p0), self._distance(ref, p1)


def test_metric_objects_pair_distances_and_batches(mini_h5):
    m = CountingL1()
    t = evaluate(mini_h5, [m, "l2"], datasets=["val/cnn"], batch_size=128, n_boot=50, progress=False)
    # val/cnn has 300 triplets -> 3 batches through pair_distances; JND val/cnn 250 pairs -> 2
    assert m.pair_calls == 3
    assert m.forward_calls == 3 * 2 + 2
    keys = {(r.metric, r.mode, r.category) for r in t.itertuples()}
    assert ("count-l1", "2afc", "cnn") in keys and ("count-l1", "jnd", "cnn") in keys
    assert not any(r.category == MEAN_CATEGORY for r in t.itertuples())  # no val/traditional


def test_select_sets():
    present = ["2afc/train/mix", "2afc/val/cnn", "2afc/val/traditional", "jnd/val/cnn"]
    # issue 10: the default is the val sets (2AFC and JND), train only by explicit choice
    assert select_sets(present, None) == [k for k in present if "/val/" in k]
    assert select_sets(present, ["val/cnn"]) == ["2afc/val/cnn", "jnd/val/cnn"]
    assert select_sets(present, ["jnd"]) == ["jnd/val/cnn"]
    assert select_sets(present, ["2afc/val", "train"]) == ["2afc/train/mix", "2afc/val/cnn", "2afc/val/traditional"]
    with pytest.raises(DataError, match="present: 2afc/train/mix"):
        select_sets(present, ["val/deblur"])


def test_jnd_only_has_no_human_rows(mini_h5):
    t = evaluate(mini_h5, ["psnr"], datasets=["jnd"], n_boot=50, progress=False)
    assert set(t["mode"]) == {"jnd"} and HUMAN not in set(t.metric) and len(t) == 2


def test_save_distances_round_trip(mini_h5, tmp_path):
    res = run_evaluation(mini_h5, ["l2"], datasets=["val/cnn"], n_boot=20, progress=False,
                         save_distances=tmp_path / "d.npz")
    z = np.load(tmp_path / "d.npz")
    sd = next(d for d in res.distances if d.key == "2afc/val/cnn")
    np.testing.assert_array_equal(z["l2|2afc/val/cnn|d0"], sd.d0)
    assert list(z["l2|2afc/val/cnn|stems"]) == sd.stems
    assert score_2afc(z["l2|2afc/val/cnn|d0"], z["l2|2afc/val/cnn|d1"], z["l2|2afc/val/cnn|judge"]) == \
        pytest.approx(res.table.query("metric == 'l2' and mode == '2afc'").score.iloc[0])
    run_evaluation(mini_h5, ["l2"], datasets=["val/cnn"], n_boot=20, progress=False,
                   save_distances=tmp_path / "d.csv")
    f = pd.read_csv(tmp_path / "d.csv")
    assert len(f) == 300 + 250
    assert f[f["mode"] == "jnd"].d.notna().all() and f[f["mode"] == "2afc"].d0.notna().all()


def test_bad_inputs(tmp_path, mini_h5):
    with pytest.raises(DataError, match="does not exist"):
        evaluate(tmp_path / "nope.h5", ["l2"], progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError):
        evaluate(empty, ["l2"], progress=False)
    with pytest.raises(ValueError, match="unknown metric 'no-such-metric'"):
        evaluate(mini_h5, ["no-such-metric"], progress=False)
    with pytest.raises(ValueError, match="no metrics"):
        evaluate(mini_h5, [], progress=False)
    with pytest.raises(ValueError, match="given twice"):
        evaluate(mini_h5, ["l2", "L2"], progress=False)
    with pytest.raises(ValueError, match="unknown network"):
        evaluate(mini_h5, ["l2"], backbone_weights={"resnet": "random"}, progress=False)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        evaluate(mini_h5, [str(tmp_path / "run" / "latest.safetensors")], progress=False)


def test_random_backbone_is_labelled(mini_h5):
    with pytest.warns(UserWarning):
        t = evaluate(mini_h5, ["lpips-alex"], datasets=["2afc/val/cnn"], n_boot=20,
                     backbone_weights={"alex": "random"}, progress=False)
    lp = t[t.metric == "lpips-alex"]
    assert (~lp.calibrated).all()
    assert lp.label.str.contains("UNCALIBRATED").all()
    assert t[t.metric == HUMAN].calibrated.all()


def test_unvalidated_later_batches_equal_validated_path(mini_h5):
    """Only a set's first batch goes through validation; later batches must give the same numbers."""
    from bapps_toolkit.metrics import create_metric

    with pytest.warns(UserWarning):
        lp = create_metric("lpips-alex", backbone_weights="random")
    kw = dict(datasets=["val/cnn"], n_boot=10, progress=False)
    small = run_evaluation(mini_h5, [lp, "l2-lab"], batch_size=64, **kw)
    whole = run_evaluation(mini_h5, [lp, "l2-lab"], batch_size=1000, **kw)  # one (validated) batch
    for a, b in zip(small.distances, whole.distances, strict=False):
        for field in ("d0", "d1", "d"):
            if getattr(a, field) is not None:
                np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-5, atol=1e-7)


def test_wrong_input_range_is_caught_on_first_batch(mini_h5):
    from bapps_toolkit.metrics import create_metric

    m = create_metric("l2", input_range=(0, 1))
    with pytest.raises(ValueError, match="range"):
        evaluate(mini_h5, [m], datasets=["2afc/val/cnn"], n_boot=10, progress=False)
    with pytest.raises(ValueError, match="spatial"):
        with pytest.warns(UserWarning):
            evaluate(mini_h5, [create_metric("lpips-alex", backbone_weights="random", spatial=True)],
                     datasets=["2afc/val/cnn"], progress=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(mini_h5):
    from bapps_toolkit.metrics import create_metric

    kw = dict(datasets=["val/cnn"], n_boot=200, progress=False)
    with pytest.warns(UserWarning):
        lp = create_metric("lpips-alex", backbone_weights="random")
    cpu = run_evaluation(mini_h5, [lp, "l2-lab"], device="cpu", **kw)
    gpu = run_evaluation(mini_h5, [lp, "l2-lab"], device="cuda", **kw)
    for a, b in zip(cpu.distances, gpu.distances, strict=False):
        for field in ("d0", "d1", "d"):
            if getattr(a, field) is not None:
                np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-3, atol=1e-5)
    # same resamples on either device, and (near-)identical distances: the scores agree
    assert np.allclose(cpu.table.score, gpu.table.score, atol=0.01)
