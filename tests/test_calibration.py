"""Calibration of 2AFC predictors: the scores against a hand-computed case, the cross-fitted
logistic link (never scored on its own fold), G's forward pass against the training code's, and
the calibration of an evaluation on the synthetic mini set in every report format."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from bapps_toolkit.calibration import (
    EPS,
    LINK_G,
    LINK_LOGISTIC,
    POOLED_CATEGORY,
    brier_score,
    calibration_scores,
    cross_fit_logistic,
    expected_calibration_error,
    fit_logistic,
    fold_of_groups,
    log_likelihood,
    log_likelihood_ceiling,
    ranking_net_probability,
    reliability_bins,
)
from bapps_toolkit.calibration import stats as cal_stats
from bapps_toolkit.errors import CheckpointError

# --------------------------------------------------------------------------------------------
# the scores, by hand

Q = [0.9, 0.92, 0.3, 0.65, 0.05]
H = [1.0, 0.6, 0.2, 0.4, 0.0]


def test_scores_match_a_hand_computed_case():
    # log-likelihood, item by item: h log q + (1 - h) log(1 - q)
    items = [1.0 * math.log(0.9),
             0.6 * math.log(0.92) + 0.4 * math.log(0.08),
             0.2 * math.log(0.3) + 0.8 * math.log(0.7),
             0.4 * math.log(0.65) + 0.6 * math.log(0.35),
             1.0 * math.log(0.95)]
    assert log_likelihood(Q, H) == pytest.approx(sum(items) / 5, abs=1e-12)
    assert log_likelihood(Q, H) == pytest.approx(-0.5090630, abs=1e-6)  # the same sum, worked on paper
    # Brier: (0.1² + 0.32² + 0.1² + 0.25² + 0.05²) / 5
    assert brier_score(Q, H) == pytest.approx((0.01 + 0.1024 + 0.01 + 0.0625 + 0.0025) / 5, abs=1e-12)
    assert brier_score(Q, H) == pytest.approx(0.03748, abs=1e-12)
    # ECE, 10 bins: bin 9 holds q = 0.9 and 0.92 (mean q 0.91, mean h 0.8), bins 3, 6, 0 one item each
    ece = 2 / 5 * abs(0.91 - 0.8) + 1 / 5 * abs(0.3 - 0.2) + 1 / 5 * abs(0.65 - 0.4) + 1 / 5 * abs(0.05 - 0.0)
    assert ece == pytest.approx(0.124)
    assert expected_calibration_error(Q, H) == pytest.approx(ece, abs=1e-12)
    bins = reliability_bins(Q, H)
    assert bins.count == (1, 0, 0, 1, 0, 0, 1, 0, 0, 2)
    assert bins.mean_q[9] == pytest.approx(0.91) and bins.mean_h[9] == pytest.approx(0.8)
    assert math.isnan(bins.mean_q[1])
    s = calibration_scores(Q, H)
    assert (s.n, s.log_lik, s.brier, s.ece) == (5, log_likelihood(Q, H), brier_score(Q, H), ece_of(Q, H))
    # the ceiling: q = h; 0·log 0 counts as 0
    ceiling = (0.6 * math.log(0.6) + 0.4 * math.log(0.4) + 0.2 * math.log(0.2) + 0.8 * math.log(0.8)
               + 0.4 * math.log(0.4) + 0.6 * math.log(0.6)) / 5
    assert log_likelihood_ceiling(H) == pytest.approx(ceiling, abs=1e-9)


def ece_of(q, h):
    return expected_calibration_error(q, h)


def test_bin_edges_and_clipping():
    # q = 0 falls in the first bin, q = 1 in the last (closed) one, 0.1 starts the second
    assert reliability_bins([0.0, 0.1, 1.0], [0.0, 0.0, 1.0]).count == (1, 1, 0, 0, 0, 0, 0, 0, 0, 1)
    assert expected_calibration_error([0.5, 0.5], [0.0, 1.0]) == 0.0  # calibrated on average in its bin
    assert expected_calibration_error([0.5], [1.0], n_bins=1) == 0.5
    # a certain wrong answer costs log(EPS), not -inf
    assert log_likelihood([0.0], [1.0]) == pytest.approx(math.log(EPS))
    assert log_likelihood([0.5, 0.5], [1.0, 0.0]) == pytest.approx(math.log(0.5))


@pytest.mark.parametrize("call, word", [
    (lambda: log_likelihood([0.5], [1.2]), "h: values must lie in"),
    (lambda: brier_score([-0.1], [1.0]), "q: values must lie in"),
    (lambda: brier_score([0.5, 0.5], [1.0]), "same length"),
    (lambda: log_likelihood([], []), "empty"),
    (lambda: expected_calibration_error([np.nan], [1.0]), "finite"),
    (lambda: expected_calibration_error([0.5], [1.0], n_bins=0), "n_bins"),
    (lambda: fit_logistic([1.0, 2.0], [0.5]), "same length"),
    (lambda: cross_fit_logistic([1.0, 2.0], [0.5, 0.5], ["a", "a"]), "two distinct groups"),
    (lambda: cross_fit_logistic([1.0, 2.0], [0.5, 0.5], k=1), "k >= 2"),
    (lambda: cross_fit_logistic([1.0, 2.0], [0.5, 0.5], ["a"]), "one entry per item"),
])
def test_bad_input_is_a_clear_error(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# --------------------------------------------------------------------------------------------
# the logistic link and cross-fitting

def _simulated(n: int, seed: int = 0, a: float = 0.2, b: float = 2.0, scale: float = 0.03):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, scale, n)  # d0 - d1 in a metric's own units
    p = 1.0 / (1.0 + np.exp(-(a + b * x / scale)))
    h = rng.binomial(5, p) / 5.0  # five raters per triplet, as the BAPPS val sets
    return x, h


def test_logistic_fit_is_the_penalised_optimum_and_recovers_the_link():
    x, h = _simulated(20000)
    link = fit_logistic(x, h)
    # first-order condition of the penalised mean cross-entropy, on the scaled input
    z = x / link.scale
    q = link(x)
    grad = np.array([np.mean(q - h), np.mean((q - h) * z)]) + cal_stats.L2_PENALTY * np.array(
        [link.intercept, link.slope])
    assert np.abs(grad).max() < 1e-9
    assert link.scale == pytest.approx(np.sqrt(np.mean(x ** 2)))
    # the data were drawn with q = σ(0.2 + 2 x/0.03); the fitted link is scaled by the RMS of x
    assert link.intercept == pytest.approx(0.2, abs=0.05)
    assert link.slope * 0.03 / link.scale == pytest.approx(2.0, rel=0.05)


def test_separable_data_still_give_a_finite_link():
    link = fit_logistic([-1.0, -0.5, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0])
    assert np.isfinite([link.intercept, link.slope]).all() and link.slope > 0
    assert fit_logistic([0.0, 0.0], [0.0, 1.0]).scale == 1.0  # all ties: no scale to take


def test_folds_keep_groups_together_and_depend_only_on_the_seed():
    groups = [f"ref{i // 3}" for i in range(60)]  # 20 references, three triplets each
    fold = fold_of_groups(groups, k=5, seed=7)
    for g in set(groups):
        assert len({int(fold[i]) for i, gg in enumerate(groups) if gg == g}) == 1
    assert sorted(np.bincount(fold).tolist()) == [12] * 5  # 4 groups per fold
    assert np.array_equal(fold, fold_of_groups(list(groups), k=5, seed=7))
    assert not np.array_equal(fold, fold_of_groups(groups, k=5, seed=8))
    assert set(fold_of_groups(["a", "b", "c"], k=5).tolist()) == {0, 1, 2}  # fewer groups than folds


def test_cross_fitting_never_fits_on_the_fold_it_scores(monkeypatch):
    x, h = _simulated(400, seed=1)
    x = x + np.arange(400) * 1e-9  # every item recognisable by its x
    groups = [f"g{i // 2}" for i in range(400)]
    seen: list[np.ndarray] = []
    real = cal_stats.fit_logistic

    def spy(xs, hs, **kw):
        seen.append(np.asarray(xs).copy())
        return real(xs, hs, **kw)

    monkeypatch.setattr(cal_stats, "fit_logistic", spy)
    fit = cross_fit_logistic(x, h, groups, k=5, seed=3)
    assert len(seen) == len(fit.links) == 5
    for f, trained_on in enumerate(seen):
        own = set(x[fit.fold == f].tolist())
        assert own and not own & set(trained_on.tolist())
        assert len(trained_on) == int((fit.fold != f).sum())
    # behaviourally: changing the judge fractions of fold 0 leaves fold 0's predictions unchanged
    h2 = h.copy()
    h2[fit.fold == 0] = 1.0 - h2[fit.fold == 0]
    fit2 = cross_fit_logistic(x, h2, groups, k=5, seed=3)
    assert np.array_equal(fit2.q[fit.fold == 0], fit.q[fit.fold == 0])
    assert not np.array_equal(fit2.q[fit.fold != 0], fit.q[fit.fold != 0])
    assert np.all((fit.q > 0) & (fit.q < 1))


# --------------------------------------------------------------------------------------------
# G

def test_ranking_net_forward_matches_the_training_code():
    from bapps_toolkit.train.model import G_EPS, RankingNet, init_ranking_net_, make_generator

    assert cal_stats.RANKING_EPS == G_EPS
    g = RankingNet()
    init_ranking_net_(g, make_generator(5))
    rng = np.random.default_rng(0)
    d0, d1 = rng.random(64) * 0.5, rng.random(64) * 0.5
    with torch.no_grad():
        want = g(torch.from_numpy(d0).float(), torch.from_numpy(d1).float()).double().numpy()
    got = ranking_net_probability(g.state_dict(), d0, d1)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_ranking_net_state_is_checked():
    from bapps_toolkit.train.model import RankingNet

    state = dict(RankingNet().state_dict())
    with pytest.raises(CheckpointError, match="expected tensors"):
        ranking_net_probability({k: v for k, v in state.items() if k != "model.2.bias"}, [0.1], [0.2])
    bad = dict(state, **{"model.2.weight": torch.zeros(32, 31, 1, 1)})
    with pytest.raises(CheckpointError, match="model.2.weight has shape"):
        ranking_net_probability(bad, [0.1], [0.2])
    nan = dict(state, **{"model.4.bias": torch.tensor([float("nan")])})
    with pytest.raises(CheckpointError, match="non-finite"):
        ranking_net_probability(nan, [0.1], [0.2])
    with pytest.raises(ValueError, match="same length"):
        ranking_net_probability(state, [0.1, 0.2], [0.2])


# --------------------------------------------------------------------------------------------
# an evaluation on the synthetic mini set

@pytest.fixture(scope="module")
def l2_ssim(mini_h5):
    from bapps_toolkit.evaluate import run_evaluation

    return run_evaluation(mini_h5, ["l2", "ssim"], datasets=["val"], n_boot=20, progress=False)


def test_evaluation_calibrates_every_metric_on_each_2afc_set(l2_ssim):
    from bapps_toolkit.evaluate.calibrate import calibrate_distances

    cal = l2_ssim.calibration
    assert cal is not None and cal.folds == 5 and cal.seed == 0 and not cal.skipped
    sets = sorted({sd.key for sd in l2_ssim.distances if sd.mode == "2afc"})
    assert len(sets) == 6
    for metric in ("l2", "ssim"):
        rows = [r for r in cal.rows if r.metric == metric]
        assert {r.link for r in rows} == {LINK_LOGISTIC} and all(r.primary for r in rows)
        assert sorted(f"2afc/{r.split}/{r.category}" for r in rows if r.category != POOLED_CATEGORY) == sets
        pooled = next(r for r in rows if r.category == POOLED_CATEGORY)
        assert pooled.n == sum(r.n for r in rows if r.category != POOLED_CATEGORY)
        assert all(r.synthetic for r in rows)
        assert all(r.log_lik <= r.log_lik_ceiling + 1e-12 for r in rows)  # nothing beats q = h
        # the reported numbers are the scores of the stored per-item probabilities
        for sd in (s for s in l2_ssim.distances if s.metric == metric and s.mode == "2afc"):
            p = cal.probabilities(metric, sd.key)
            assert p is not None and len(p.q) == len(sd.stems)
            row = next(r for r in rows if f"2afc/{r.split}/{r.category}" == sd.key)
            assert row.brier == pytest.approx(brier_score(p.q, sd.judge))
            assert row.log_lik == pytest.approx(log_likelihood(p.q, sd.judge))
    # the synthetic observer prefers the less distorted image: a link beats the coin (log 0.5)
    assert all(r.log_lik > math.log(0.5) for r in cal.rows if r.category == POOLED_CATEGORY)
    # seeded: the same seed gives the same numbers, another seed other folds
    again = calibrate_distances(l2_ssim.distances, l2_ssim.metrics, synthetic={}, seed=0)
    assert [r.log_lik for r in again.rows] == [r.log_lik for r in cal.rows]
    other = calibrate_distances(l2_ssim.distances, l2_ssim.metrics, synthetic={}, seed=1)
    assert [r.log_lik for r in other.rows] != [r.log_lik for r in cal.rows]


def test_calibration_in_every_report_format(l2_ssim, tmp_path):
    from bapps_toolkit.report import tables

    t = l2_ssim.table
    written = tables.write_reports(t, csv=tmp_path / "r.csv", markdown=tmp_path / "r.md",
                                   latex=tmp_path / "r.tex", json_path=tmp_path / "r.json")
    assert len(written) == 4
    md = (tmp_path / "r.md").read_text()
    assert "#### Calibration (2AFC)" in md and "5-fold cross-fitting" in md
    assert "| l2 | logistic | pooled | 1670 |" in md
    tex = (tmp_path / "r.tex").read_text()
    assert r"\label{tab:bapps-calibration}" in tex
    doc = json.loads((tmp_path / "r.json").read_text())
    rows = doc["calibration"]["rows"]
    assert len(rows) == len(l2_ssim.calibration.rows) and doc["calibration"]["folds"] == 5
    assert set(rows[0]) >= {"metric", "link", "log_lik", "brier", "ece", "bins", "synthetic"}
    csv = pd.read_csv(tmp_path / "r.csv")
    assert list(csv.columns[-4:]) == ["calibration_link", "log_lik", "brier", "ece"]
    cnn = csv[(csv.metric == "l2") & (csv.category == "cnn") & (csv["mode"] == "2afc")].iloc[0]
    row = next(r for r in l2_ssim.calibration.rows if r.metric == "l2" and r.category == "cnn")
    assert cnn.calibration_link == "logistic" and cnn.ece == pytest.approx(row.ece, rel=1e-5)
    assert csv[csv["mode"] == "jnd"].log_lik.isna().all() and csv[csv.metric == "human"].log_lik.isna().all()


def test_a_trained_checkpoint_is_calibrated_by_its_own_G(mini_root, tmp_path):
    """``bapps train`` stores G beside the linear layers; evaluation scores G's output (primary
    link) and the cross-fitted logistic link, and G's q is the training code's forward pass."""
    from safetensors.torch import load_file

    from bapps_toolkit.evaluate import run_evaluation
    from bapps_toolkit.metrics.trained import load_metric_from_checkpoint
    from bapps_toolkit.train import TrainConfig, train
    from bapps_toolkit.train.model import RankingNet
    from tests.test_train import make_subset

    data = make_subset(mini_root, tmp_path / "bapps", n_train=20, n_val=20)
    run = tmp_path / "run"
    train(TrainConfig(data=str(data), out=str(run), net="alex", variant="lin", backbone_weights="random",
                      epochs=1, decay_epochs=1, batch_size=10, progress=False, seed=3))
    metric = load_metric_from_checkpoint(run)
    stored = {k[2:]: v for k, v in load_file(str(run / "latest.safetensors")).items() if k.startswith("G.")}
    assert metric.ranking_net is not None and set(metric.ranking_net) == set(stored)
    res = run_evaluation(data, [run], datasets=["2afc/val"], n_boot=10, progress=False)
    cal = res.calibration
    assert cal is not None
    links = {(r.link, r.primary) for r in cal.rows}
    assert links == {(LINK_G, True), (LINK_LOGISTIC, False)}
    assert all(not r.calibrated for r in cal.rows)  # random backbone, synthetic data: UNCALIBRATED
    g = RankingNet()
    g.load_state_dict(stored)
    sd = next(s for s in res.distances if s.key == "2afc/val/cnn")
    with torch.no_grad():
        want = g(torch.from_numpy(sd.d0).float(), torch.from_numpy(sd.d1).float()).double().numpy()
    got = cal.probabilities(sd.metric, sd.key)
    assert got is not None and got.link == LINK_G
    np.testing.assert_allclose(got.q, want, atol=1e-6)
