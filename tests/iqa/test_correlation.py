"""Correlation figures against scipy.stats and the logistic fit against an independent fit."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from bapps_toolkit import correlation as C


def _data(n=300, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    d = rng.gamma(2.0, 1.0, n) * scale
    mos = 8.0 / (1 + np.exp(1.5 * (d / scale - 2))) + rng.normal(0, 0.4, n)
    return d, mos


def test_srcc_krcc_match_scipy_with_ties():
    d, mos = _data()
    d = np.round(d, 1)  # ties
    assert C.srcc(d, mos) == pytest.approx(stats.spearmanr(d, mos).statistic, abs=1e-12)
    assert C.krcc(d, mos) == pytest.approx(stats.kendalltau(d, mos, variant="b").statistic, abs=1e-12)
    assert C.srcc(d, mos) < -0.5


def _independent_fit(s, y):
    """Direct least squares on the raw s with scipy.optimize.least_squares (trust region),
    started from many points; returns the best fitted prediction."""
    def resid(p):
        return C.logistic5(s, *p) - y
    best = None
    for b2 in (-10, -3, -1, -0.3, 0.3, 1, 3, 10):
        p0 = [np.ptp(y), b2 / np.std(s), np.median(s), 0.0, np.mean(y)]
        r = optimize.least_squares(resid, p0, method="trf", max_nfev=20000, x_scale="jac")
        if best is None or r.cost < best.cost:
            best = r
    return C.logistic5(s, *best.x)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 50.0])
def test_logistic_fit_matches_independent_fit(scale):
    d, mos = _data(scale=scale)
    s = C.signed_prediction(d, higher_is_better=True)
    fit = C.fit_logistic(s, mos)
    assert fit.method == "logistic"
    q_ref = _independent_fit(s, mos)
    sse, sse_ref = np.sum((fit(s) - mos) ** 2), np.sum((q_ref - mos) ** 2)
    assert sse <= sse_ref * (1 + 1e-6)
    plcc, rmse, _ = C.plcc_rmse(s, mos, fit)
    assert plcc == pytest.approx(stats.pearsonr(q_ref, mos).statistic, abs=1e-4)
    assert rmse == pytest.approx(np.sqrt(np.mean((q_ref - mos) ** 2)), rel=1e-4)
    # the fit beats the unfitted Pearson on this sigmoidal relation
    assert plcc > abs(stats.pearsonr(s, mos).statistic)


def test_formula_and_reparametrisation():
    s = np.linspace(-2, 5, 7)
    b = (3.0, 1.2, 0.5, 0.1, 2.0)
    want = b[0] * (0.5 - 1 / (1 + np.exp(b[1] * (s - b[2])))) + b[3] * s + b[4]
    np.testing.assert_allclose(C.logistic5(s, *b), want)
    mu, sd = 1.5, 2.0
    z = (s - mu) / sd
    raw = C.to_raw(np.array(b), mu, sd)
    np.testing.assert_allclose(C.logistic5(s, *raw), C.logistic5(z, *b), rtol=1e-12)


def test_fallback_to_line_when_fit_fails(monkeypatch):
    d, mos = _data()

    def boom(*a, **k):
        raise RuntimeError("no convergence")
    monkeypatch.setattr("scipy.optimize.curve_fit", boom)
    fit = C.fit_logistic(d, mos)
    assert fit.method == "linear-fallback"
    plcc, _, _ = C.plcc_rmse(d, mos, fit)
    assert plcc == pytest.approx(abs(stats.pearsonr(d, mos).statistic), abs=1e-10)


def test_constant_prediction_gives_nan_not_crash():
    y = np.arange(10.0)
    f = C.correlation_figures(np.ones(10), y)
    assert np.isnan(f["srcc"]) and np.isnan(f["plcc"]) and f["fit"].method == "linear-fallback"


def test_sign_convention():
    d, mos = _data()
    dmos = 10 - mos
    a = C.srcc(C.signed_prediction(d, True), mos)
    b = C.srcc(C.signed_prediction(d, False), dmos)
    assert a > 0.5 and a == pytest.approx(b)


def test_bootstrap_by_reference_is_wider_than_by_item():
    rng = np.random.default_rng(1)
    refs = np.repeat(np.arange(10), 30)
    offset = rng.normal(0, 2.0, 10)[refs]  # content effect shared by a reference's images
    d = rng.uniform(0, 1, refs.size)
    mos = -3 * d + offset + rng.normal(0, 0.2, refs.size)
    by_ref = C.bootstrap_correlation(d, mos, refs, n_boot=200, seed=0, figures=("srcc",))
    by_item = C.bootstrap_correlation(d, mos, np.arange(refs.size), n_boot=200, seed=0, figures=("srcc",))
    w_ref = by_ref.high["srcc"] - by_ref.low["srcc"]
    w_item = by_item.high["srcc"] - by_item.low["srcc"]
    assert w_ref > 1.5 * w_item
    assert by_ref.low["srcc"] <= by_ref.point["srcc"] <= by_ref.high["srcc"]
    again = C.bootstrap_correlation(d, mos, refs, n_boot=200, seed=0, figures=("srcc",))
    assert again.low == by_ref.low


def test_per_type_and_paired():
    d, mos = _data(n=200)
    types = np.array(["blur", "noise"] * 100)
    pt = C.per_type_figures(d, mos, types)
    assert set(pt) == {"blur", "noise"}
    m = types == "blur"
    assert pt["blur"]["srcc"] == pytest.approx(stats.spearmanr(d[m], mos[m]).statistic)
    rng = np.random.default_rng(3)
    worse = d + rng.normal(0, 2.0, d.size)
    refs = np.arange(d.size) // 10
    diff, (lo, hi), p = C.paired_correlation_difference(-d, -worse, mos, refs, n_boot=300)
    assert diff > 0 and lo > 0 and p < 0.05
    diff0, _, p0 = C.paired_correlation_difference(-d, -d, mos, refs, n_boot=50)
    assert diff0 == 0 and p0 == 1.0


def test_bad_input_named():
    with pytest.raises(ValueError, match="subjective score"):
        C.srcc([1, 2, 3], [1, np.nan, 3])
    with pytest.raises(ValueError, match="3 items but"):
        C.srcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="figure"):
        C.paired_correlation_difference([1, 2, 3], [1, 2, 3], [1, 2, 3], [0, 1, 2], figure="x")


def test_analytic_jacobian_matches_finite_differences():
    s = np.linspace(-3, 3, 11)
    b = np.array([2.0, 1.3, 0.4, 0.2, -1.0])
    jac = C.logistic5_jac(s, *b)
    for k in range(5):
        h = np.zeros(5)
        h[k] = 1e-6
        num = (C.logistic5(s, *(b + h)) - C.logistic5(s, *(b - h))) / 2e-6
        np.testing.assert_allclose(jac[:, k], num, rtol=1e-5, atol=1e-8)


def test_point_fit_helpers_give_the_same_numbers_as_the_public_functions():
    """``_fit_z`` hands ``curve_fit`` lighter copies of ``logistic5`` and its Jacobian; they must
    compute the same numbers, so that the point estimates stay exactly what they were."""
    import warnings

    from bapps_toolkit.correlation import _fit

    rng = np.random.default_rng(3)
    s = rng.normal(size=50)
    for p in ([3.0, 2.0, 0.1, 0.2, 1.0], [-1e3, 0.05, 0.7, 40.0, -30.0], [2.0, 900.0, 0.0, 0.0, 0.0]):
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(_fit._model(s, *p), C.logistic5(s, *p))
        np.testing.assert_array_equal(_fit._model_jac(s, *p), C.logistic5_jac(s, *p))
    for seed in range(6):
        d, mos = _data(n=120, seed=seed)
        z = (d - d.mean()) / d.std()
        for p0 in ([np.ptp(mos), -1.0, 0.0, 0.0, mos.mean()], [mos.max(), mos.min(), 0.0, 0.1, 0.1]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    want, _ = optimize.curve_fit(C.logistic5, z, mos, p0=p0, maxfev=2000, jac=C.logistic5_jac)
                except RuntimeError:
                    want = None
            got = _fit._fit_z(z, mos, [p0], 2000)
            assert (got is None) == (want is None)
            if got is not None:
                np.testing.assert_array_equal(got[1], want)
