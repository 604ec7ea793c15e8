"""The batched bootstrap of the correlation figures against the per-resample scipy path.

Check of agreement (the same resamples through both paths): :func:`reference_samples` draws the
same group indices as the batched engine, so every resample's figures can be compared one by one.
SRCC/KRCC agree to 1e-12; PLCC/RMSE to 1e-6 on every resample whose batched fit converged and
whose scipy fit did not fail (the others are counted, not hidden); intervals therefore agree. A
different-seed comparison checks the intervals within their Monte-Carlo error.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bapps_toolkit import correlation as C
from bapps_toolkit.correlation import _engine, _ranks
from bapps_toolkit.correlation._lm import fit_logistic_rows

from .scipy_bootstrap import reference_samples


def _kadid_like(n_ref=12, n_type=3, n_lev=5, seed=0, decimals=2):
    rng = np.random.default_rng(seed)
    ref = np.repeat(np.arange(n_ref), n_type * n_lev)
    typ = np.tile(np.repeat(np.arange(n_type), n_lev), n_ref)
    lev = np.tile(np.arange(1, n_lev + 1), n_ref * n_type)
    psnr = 40 - rng.uniform(2, 6, n_type)[typ] * lev + rng.normal(0, 2.0, n_ref)[ref] + rng.normal(0, 1.5, ref.size)
    mos = 1 + 4 / (1 + np.exp(-(psnr - 25) / 4)) + rng.normal(0, 0.3, ref.size)
    return np.round(psnr, decimals), np.round(mos, decimals), ref, np.array([f"t{t}" for t in typ])


def _gamma_set(n=300, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    d = rng.gamma(2.0, 1.0, n) * scale
    return -d, 8.0 / (1 + np.exp(1.5 * (d / scale - 2))) + rng.normal(0, 0.4, n)


@pytest.mark.parametrize("case", ["gamma-1e-3", "gamma-1", "gamma-50", "kadid", "kadid-ties"])
def test_batched_fit_equals_scipy_fit(case):
    if case.startswith("gamma"):
        s, y = _gamma_set(scale=float(case.split("-", 1)[1]))
    else:
        s, y, _, _ = _kadid_like(decimals=0 if case == "kadid-ties" else 2)
    fit = C.fit_logistic(s, y)
    assert fit.method == "logistic"
    z = (s - fit.z_scale[0]) / fit.z_scale[1]
    # two rows: the scipy optimum itself and a start away from it
    p0 = np.array([fit.z_params, np.array(fit.z_params) * [1.3, 0.8, 1, 1, 1] + [0, 0, 0.2, 0, 0]])
    got = fit_logistic_rows(np.tile(z, (2, 1)), np.tile(y, (2, 1)), np.ones((2, z.size)), p0)
    assert got.converged.all()
    q_ref = fit(s)
    for p in got.params:
        q = C.logistic5(z, *p)
        assert np.sum((q - y) ** 2) <= np.sum((q_ref - y) ** 2) * (1 + 1e-9)
        assert np.corrcoef(q, y)[0, 1] == pytest.approx(np.corrcoef(q_ref, y)[0, 1], abs=1e-6)
        assert np.sqrt(np.mean((q - y) ** 2)) == pytest.approx(np.sqrt(np.mean((q_ref - y) ** 2)), abs=1e-6)


def test_weights_are_repeated_items():
    s, y = _gamma_set(n=80, seed=2)
    w = np.random.default_rng(0).integers(0, 3, s.size)
    fit = C.fit_logistic(s, y)
    z = (s - fit.z_scale[0]) / fit.z_scale[1]
    a = fit_logistic_rows(z[None], y[None], w[None].astype(float), np.array([fit.z_params]))
    ze, ye = np.repeat(z, w), np.repeat(y, w)
    b = fit_logistic_rows(ze[None], ye[None], np.ones((1, ze.size)), np.array([fit.z_params]))
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6, atol=1e-8)


def _compare(new: C.BootstrapResult, old: dict, label: str) -> int:
    for f in ("srcc", "krcc"):
        np.testing.assert_array_equal(np.isnan(new.samples[f]), np.isnan(old[f]), err_msg=f"{label} {f}")
        np.testing.assert_allclose(new.samples[f], old[f], atol=1e-12, err_msg=f"{label} {f}")
    n_items = old["sse"] / np.where(old["rmse"] > 0, old["rmse"] ** 2, np.nan)
    better = n_items * new.samples["rmse"] ** 2 < old["sse"] * (1 - 1e-6)  # the scipy fit stopped short
    exc = new.not_converged | old["failed"] | better
    for f in ("plcc", "rmse"):
        np.testing.assert_allclose(new.samples[f][~exc], old[f][~exc], atol=1e-6, err_msg=f"{label} {f}")
    assert new.n_not_converged == int(new.not_converged.sum())
    return int(exc.sum())


def test_same_resamples_agree_with_scipy_path_overall():
    s, y, ref, _ = _kadid_like(n_ref=15)
    new = C.bootstrap_correlation(s, y, ref, n_boot=80, seed=3)
    old = reference_samples(s, y, ref, n_boot=80, seed=3)
    assert _compare(new, old, "overall") == 0
    for f in C.FIGURES:
        lo, hi = np.quantile(old[f], [0.025, 0.975])
        assert (new.low[f], new.high[f]) == pytest.approx((lo, hi), abs=1e-6)
    assert new.point["srcc"] == stats.spearmanr(s, y).statistic
    assert new.point["krcc"] == stats.kendalltau(s, y).statistic


def test_per_type_in_one_pass_agrees_with_scipy_path():
    s, y, ref, typ = _kadid_like(n_ref=12, n_type=3)
    got = C.per_type_bootstrap(s, y, typ, ref, n_boot=40, seed=5)
    assert sorted(got) == ["t0", "t1", "t2"]
    for k, name in enumerate(sorted(got)):
        m = typ == name
        n, new = got[name]
        assert n == int(m.sum())
        seq = int(np.random.SeedSequence([5, k]).generate_state(1)[0])
        _compare(new, reference_samples(s[m], y[m], ref[m], n_boot=40, seed=seq), name)
        assert new.point == C.bootstrap_correlation(s[m], y[m], ref[m], n_boot=1).point


def test_intervals_agree_across_seeds_within_monte_carlo_error():
    s, y, ref, _ = _kadid_like(n_ref=30, n_type=2)
    b = 300
    new = C.bootstrap_correlation(s, y, ref, n_boot=b, seed=11)
    old = reference_samples(s, y, ref, n_boot=b, seed=12)
    for f in C.FIGURES:
        for q, got in ((0.025, new.low[f]), (0.975, new.high[f])):
            half = np.sqrt(q * (1 - q) / b)  # binomial spread of the order statistic, in probability
            pooled = np.concatenate([new.samples[f], old[f]])
            se = (np.quantile(pooled, min(q + half, 1)) - np.quantile(pooled, max(q - half, 0))) / 2
            assert abs(got - np.quantile(old[f], q)) <= 4 * np.sqrt(2) * se + 1e-12, (f, q)


def test_a_set_that_does_not_converge_is_counted():
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, 400)
    y = s ** 3 + rng.normal(0, 0.02, s.size)  # the logistic's infimum lies at infinity (a cubic)
    ref = np.arange(s.size) // 4
    r = C.bootstrap_correlation(s, y, ref, n_boot=30, seed=0)
    assert r.n_not_converged > 0
    assert r.n_not_converged == int(r.not_converged.sum())
    assert np.isfinite(r.samples["plcc"]).all()


@pytest.mark.parametrize("groups", ["refs", "items"])
def test_ties_match_scipy_on_the_expanded_sample(groups):
    rng = np.random.default_rng(4)
    s = np.round(rng.normal(size=90), 0)
    y = np.round(s + rng.normal(size=90), 0)
    g = np.arange(90) // 6 if groups == "refs" else np.arange(90)
    new = C.bootstrap_correlation(s, y, g, n_boot=25, seed=1, figures=("srcc", "krcc"))
    old = reference_samples(s, y, g, n_boot=25, seed=1, warm=False)
    for f in ("srcc", "krcc"):
        np.testing.assert_allclose(new.samples[f], old[f], atol=1e-12)


def test_kendall_fallback_equals_quadratic_form(monkeypatch):
    s, y, ref, _ = _kadid_like(n_ref=10)
    a = C.bootstrap_correlation(s, y, ref, n_boot=20, figures=("krcc",))
    monkeypatch.setattr(_engine, "MAX_TAU_GROUPS", 1)
    b = C.bootstrap_correlation(s, y, ref, n_boot=20, figures=("krcc",))
    np.testing.assert_allclose(a.samples["krcc"], b.samples["krcc"], atol=1e-12)


def test_pair_matrices_against_brute_force():
    rng = np.random.default_rng(7)
    s, y = np.round(rng.normal(size=40), 1), np.round(rng.normal(size=40), 1)
    g = rng.integers(0, 5, 40)
    S, As, Ay = _ranks.pair_matrices(s, y, g, 5)
    sign = np.sign(s[:, None] - s[None]) * np.sign(y[:, None] - y[None])
    one = np.eye(5)[g]
    np.testing.assert_array_equal(S, one.T @ sign @ one)
    np.testing.assert_array_equal(As, one.T @ (s[:, None] == s[None]) @ one)
    np.testing.assert_array_equal(Ay, one.T @ (y[:, None] == y[None]) @ one)


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_tiny_sets(n):
    """Fewer than 6 items: the line, exactly as before. With 6-7 drawn items on 4-5 distinct
    points the logistic can interpolate (a step, b2 -> inf); both paths then stop at arbitrary
    points of a degenerate fit, so only SRCC/KRCC and the undefined pattern are compared there."""
    rng = np.random.default_rng(n)
    s, y = rng.normal(size=n), rng.normal(size=n)
    for g in (np.arange(n), np.zeros(n, dtype=int), np.arange(n) // 2):
        new = C.bootstrap_correlation(s, y, g, n_boot=30, seed=2)
        old = reference_samples(s, y, g, n_boot=30, seed=2)
        at_most_n = g.max() == n - 1 or g.max() == 0  # every resample has n items
        for f in C.FIGURES if n < 6 and at_most_n else ("srcc", "krcc"):
            np.testing.assert_array_equal(np.isnan(new.samples[f]), np.isnan(old[f]), err_msg=f)
            np.testing.assert_allclose(new.samples[f], old[f], atol=1e-9, err_msg=f)


def test_non_converged_count_reaches_the_reports():
    from bapps_toolkit.evaluate.benchmarks import BenchmarkResult, FitNote
    from bapps_toolkit.report.benchmark_tables import cross_markdown, per_type_markdown

    row = dict(metric="psnr", label="PSNR", calibrated=True, benchmark="kadid10k", kind="correlation", part="all",
               figure="srcc", n=10, value=0.5, ci_low=0.4, ci_high=0.6, synthetic=True, direction="x")
    note = FitNote("psnr", "kadid10k", "all 3/1000, type:blur 7/1000")
    res = BenchmarkResult(rows=[row], fit_notes=[note])
    assert "did not converge" in cross_markdown(res) and "type:blur 7/1000" in cross_markdown(res)
    assert "all 3/1000" in per_type_markdown(res, "kadid10k")
