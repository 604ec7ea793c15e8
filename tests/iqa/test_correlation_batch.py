"""The batched bootstrap of the correlation figures against the per-resample scipy path.

Check of agreement (the same resamples through both paths): :func:`reference_samples` draws the
same group indices as the batched engine, so every resample's figures can be compared one by one.
SRCC/KRCC agree to 1e-12. PLCC/RMSE agree to 1e-6 wherever both paths used the same kind of curve
(both the converged logistic at the same optimum, or both the line); resamples where they did not
— one path's fit did not converge, or the two optimisers stopped at different points of an
ill-posed fit — are counted, and on these well-posed sets there are none. A different-seed
comparison checks the intervals within their Monte-Carlo error.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bapps_toolkit import correlation as C
from bapps_toolkit.correlation import _engine, _fit, _ranks, _rows, _varpro
from bapps_toolkit.correlation._varpro import FitRule, fit_rows

from .scipy_bootstrap import compare_samples, reference_samples


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
    p = np.array(fit.z_params)
    # two starts: scipy's optimum, and one away from it (as a resample's optimum is from the full fit's)
    theta0 = np.array([p[1:3], p[1:3] * [0.7, 1] + [0, 0.3]])
    got = fit_rows(np.tile(z, (2, 1)), np.tile(y, (2, 1)), np.ones((2, z.size)), theta0)
    assert (got.status == _varpro.CONVERGED).all()
    assert got.iterations[0] == 0  # scipy's optimum already meets the test
    q_ref = fit(s)
    for params, sse in zip(got.params, got.sse, strict=True):
        q = C.logistic5(z, *params)
        assert sse == pytest.approx(np.sum((q - y) ** 2), rel=1e-12)
        assert sse <= np.sum((q_ref - y) ** 2) * (1 + 1e-7)
        np.testing.assert_allclose(q, q_ref, atol=1e-4 * np.ptp(y))
        assert np.corrcoef(q, y)[0, 1] == pytest.approx(np.corrcoef(q_ref, y)[0, 1], abs=1e-7)
        assert np.sqrt(np.mean((q - y) ** 2)) == pytest.approx(np.sqrt(np.mean((q_ref - y) ** 2)), abs=1e-7)


def test_weights_are_repeated_items():
    s, y = _gamma_set(n=80, seed=2)
    w = np.random.default_rng(0).integers(0, 3, s.size)
    fit = C.fit_logistic(s, y)
    z = (s - fit.z_scale[0]) / fit.z_scale[1]
    theta0 = np.array([fit.z_params[1:3]]) * [1.2, 1]
    a = fit_rows(z[None], y[None], w[None].astype(float), theta0)
    ze, ye = np.repeat(z, w), np.repeat(y, w)
    b = fit_rows(ze[None], ye[None], np.ones((1, ze.size)), theta0)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6, atol=1e-8)
    assert a.sse == pytest.approx(b.sse, rel=1e-10)


def test_exact_sums_keep_a_degenerating_fit_accurate():
    """Near its limits (b2 -> 0: a cubic; b3 far outside the data: an exponential) the logistic's
    error from plain sums cancels; the iteration's error must still match a direct sum."""
    s, y = _gamma_set(n=200, seed=3)
    z = (s - s.mean()) / s.std()
    zc = z - z.mean()
    yt = y - y.mean() - (zc @ y) / (zc @ zc) * zc
    w = np.ones((3, z.size))
    theta = np.array([[1e-3, 0.3], [1.5, -14.0], [1.0, 0.2]])
    got = _varpro.fit_centred(np.tile(zc, (3, 1)), np.tile(yt, (3, 1)), w, theta, FitRule(max_iter=0))
    for t, sse in zip(theta, got.sse, strict=True):
        u = np.tanh(0.5 * np.longdouble(t[0]) * (zc.astype(np.longdouble) - t[1]))
        a = np.stack([u, zc.astype(np.longdouble), np.ones_like(u)], axis=1)
        coef = np.linalg.lstsq(a.astype(np.float64), yt, rcond=None)[0].astype(np.longdouble)
        for _ in range(2):  # refine in extended precision
            r = yt - a @ coef
            coef += np.linalg.lstsq(a.astype(np.float64), r.astype(np.float64), rcond=None)[0]
        r = yt - a @ coef
        assert sse == pytest.approx(float(r @ r), rel=1e-9)


def _compare(new: C.BootstrapResult, old: dict, label: str) -> dict[str, float]:
    """:func:`compare_samples`, with SRCC/KRCC agreeing to 1e-12 and PLCC/RMSE to 1e-6 wherever
    both paths used the same curve; returns the counts of the resamples where they did not."""
    got = compare_samples(new, old)
    assert got["rank_diff"] <= 1e-12, label
    assert got["fit_diff"] <= 1e-6, label
    assert new.n_not_converged == int(new.not_converged.sum())
    return {k: v for k, v in got.items() if k not in ("rank_diff", "fit_diff", "same")}


def test_same_resamples_agree_with_scipy_path_overall():
    s, y, ref, _ = _kadid_like(n_ref=15)
    new = C.bootstrap_correlation(s, y, ref, n_boot=80, seed=3)
    old = reference_samples(s, y, ref, n_boot=80, seed=3)
    assert _compare(new, old, "overall") == dict(scipy_failed=0, not_converged=0, point_line=0, new_lower=0,
                                                 new_higher=0)
    assert new.n_not_converged == 0 and new.n_logistic == new.n_fitted == 80
    for f in C.FIGURES:
        lo, hi = np.quantile(old[f], [0.025, 0.975])
        assert (new.low[f], new.high[f]) == pytest.approx((lo, hi), abs=1e-6)
    assert new.point["srcc"] == stats.spearmanr(s, y).statistic
    assert new.point["krcc"] == stats.kendalltau(s, y).statistic
    plcc, rmse, _ = _fit.plcc_rmse(s, y)
    assert (new.point["plcc"], new.point["rmse"]) == (plcc, rmse)  # the scipy point figures, unchanged


def test_per_type_in_one_pass_agrees_with_scipy_path():
    """Three small types (60 items, 12 references): on two of them ``curve_fit`` does not converge
    on the full sample, so their point figures and all their resamples use the line (the old path
    refitted each resample from the two standard starts instead); on the third, the old path's fit
    failed on some resamples that the new fit converges on, and stopped short of the new fit's
    smaller error on two. The new fit is never the worse one."""
    s, y, ref, typ = _kadid_like(n_ref=12, n_type=3)
    got = C.per_type_bootstrap(s, y, typ, ref, n_boot=40, seed=5)
    assert sorted(got) == ["t0", "t1", "t2"]
    for k, name in enumerate(sorted(got)):
        m = typ == name
        n, new = got[name]
        assert n == int(m.sum())
        seq = int(np.random.SeedSequence([5, k]).generate_state(1)[0])
        counts = _compare(new, reference_samples(s[m], y[m], ref[m], n_boot=40, seed=seq), name)
        assert counts["new_higher"] == counts["not_converged"] == 0, (name, counts)
        assert counts["new_lower"] <= 2 and counts["scipy_failed"] <= 12, (name, counts)
        if C.fit_logistic(s[m], y[m]).method == "linear-fallback":
            assert (new.fit_outcome == _engine.FIT_POINT_LINE).all()
            line = _line_figures(s[m], y[m], ref[m], 40, seq)
            np.testing.assert_allclose(new.samples["plcc"], line[:, 0], atol=1e-10)
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


def _line_figures(s, y, ref, n_boot, seed):
    """PLCC/RMSE of the least-squares line on each expanded resample (as ``fit_logistic``'s fallback)."""
    _, inv = np.unique(ref, return_inverse=True)
    counts = _rows.draw_counts(int(inv.max()) + 1, n_boot, seed)
    out = np.full((n_boot, 2), np.nan)
    for b, c in enumerate(counts):
        idx = np.repeat(np.arange(s.size), c[inv])
        plcc, rmse, _ = _fit.plcc_rmse(s[idx], y[idx], _fit._linear(s[idx], y[idx]))
        out[b] = plcc, rmse
    return out


def test_a_fit_that_does_not_converge_uses_the_line_and_is_counted(monkeypatch):
    s, y, ref, _ = _kadid_like(n_ref=15)
    monkeypatch.setattr(_engine, "RULE", FitRule(max_iter=6))  # a budget too small for many resamples
    r = C.bootstrap_correlation(s, y, ref, n_boot=60, seed=4)
    assert 0 < r.n_not_converged < r.n_fitted
    assert r.n_not_converged == int(r.not_converged.sum()) == int((r.fit_outcome == _engine.FIT_NOT_CONVERGED).sum())
    assert r.n_line == r.n_not_converged and r.n_logistic == r.n_fitted - r.n_not_converged
    line = _line_figures(s, y, ref, 60, 4)
    np.testing.assert_allclose(r.samples["plcc"][r.not_converged], line[r.not_converged, 0], atol=1e-10)
    np.testing.assert_allclose(r.samples["rmse"][r.not_converged], line[r.not_converged, 1], atol=1e-10)
    conv = ~r.not_converged  # the converged ones are the full-budget figures
    monkeypatch.setattr(_engine, "RULE", FitRule())
    full = C.bootstrap_correlation(s, y, ref, n_boot=60, seed=4)
    np.testing.assert_allclose(r.samples["plcc"][conv], full.samples["plcc"][conv], atol=1e-6)


def test_a_point_estimate_on_the_line_puts_every_resample_on_the_line(monkeypatch):
    """When ``curve_fit`` does not converge on the full sample, the point figures are the line's;
    the resamples follow, so that the interval is about the same curve as the point."""
    s, y, ref, _ = _kadid_like(n_ref=15)

    def fail(*a, **k):
        raise RuntimeError("no convergence")
    monkeypatch.setattr("scipy.optimize.curve_fit", fail)
    r = C.bootstrap_correlation(s, y, ref, n_boot=50, seed=2)
    assert (r.fit_outcome == _engine.FIT_POINT_LINE).all() and r.n_line == 50 and r.n_logistic == 0
    line = _line_figures(s, y, ref, 50, 2)
    np.testing.assert_allclose(r.samples["plcc"], line[:, 0], atol=1e-10)
    assert r.low["plcc"] <= r.point["plcc"] <= r.high["plcc"]


def test_draw_counts_are_the_sequential_draws():
    for n_groups, n_boot, seed in ((81, 40, 3), (5, 7, 1), (1, 3, 0), (300, 5, 9)):
        rng = np.random.default_rng(seed)
        want = np.stack([np.bincount(rng.integers(0, n_groups, size=n_groups), minlength=n_groups)
                         for _ in range(n_boot)])
        np.testing.assert_array_equal(_rows.draw_counts(n_groups, n_boot, seed), want)


@pytest.mark.parametrize("groups", ["refs", "items", "uneven"])
def test_ties_match_scipy_on_the_expanded_sample(groups):
    rng = np.random.default_rng(4)
    s = np.round(rng.normal(size=90), 0)
    y = np.round(s + rng.normal(size=90), 0)
    g = {"refs": np.arange(90) // 6, "items": np.arange(90),
         "uneven": np.minimum(np.arange(90) // 3, 20)}[groups]  # one group of 30 items, the rest of 3
    new = C.bootstrap_correlation(s, y, g, n_boot=25, seed=1, figures=("srcc", "krcc"))
    old = reference_samples(s, y, g, n_boot=25, seed=1, warm=False)
    for f in ("srcc", "krcc"):
        np.testing.assert_allclose(new.samples[f], old[f], atol=1e-12)


def test_rank_fallbacks_equal_the_tables(monkeypatch):
    s, y, ref, _ = _kadid_like(n_ref=10)
    a = C.bootstrap_correlation(s, y, ref, n_boot=20, figures=("srcc", "krcc"))
    monkeypatch.setattr(_engine, "MAX_TAU_GROUPS", 1)
    monkeypatch.setattr(_engine, "MAX_TABLE", 1)
    b = C.bootstrap_correlation(s, y, ref, n_boot=20, figures=("srcc", "krcc"))
    for f in ("srcc", "krcc"):
        np.testing.assert_allclose(a.samples[f], b.samples[f], atol=1e-12)


def test_pair_matrices_and_rank_table_against_brute_force():
    rng = np.random.default_rng(7)
    s, y = np.round(rng.normal(size=40), 1), np.round(rng.normal(size=40), 1)
    g = rng.integers(0, 5, 40)
    S, As, Ay = _ranks.pair_matrices(s, y, g, 5)
    sign = np.sign(s[:, None] - s[None]) * np.sign(y[:, None] - y[None])
    one = np.eye(5)[g]
    np.testing.assert_array_equal(S, one.T @ sign @ one)
    np.testing.assert_array_equal(As, one.T @ (s[:, None] == s[None]) @ one)
    np.testing.assert_array_equal(Ay, one.T @ (y[:, None] == y[None]) @ one)
    c = rng.integers(0, 3, 5)
    ranks = c @ _ranks.rank_table(s, g, 5) + 0.5
    drawn = np.repeat(np.arange(40), c[g])
    expanded = stats.rankdata(s[drawn])
    for i in np.flatnonzero(c[g]):
        assert ranks[i] == expanded[np.flatnonzero(drawn == i)[0]]


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
    assert "straight line" in cross_markdown(res)
    assert "all 3/1000" in per_type_markdown(res, "kadid10k")


def test_paired_plcc_difference_is_the_difference_of_the_two_bootstraps():
    """Both metrics see the same resamples, each refitted from its own full-sample fit."""
    from bapps_toolkit._bootstrap import percentile_test

    s, y, ref, _ = _kadid_like(n_ref=15)
    worse = s + np.random.default_rng(1).normal(0, 4, s.size)
    diff, (lo, hi), p = C.paired_correlation_difference(s, worse, y, ref, figure="plcc", n_boot=60, seed=8)
    a = C.bootstrap_correlation(s, y, ref, n_boot=60, seed=8, figures=("plcc",))
    b = C.bootstrap_correlation(worse, y, ref, n_boot=60, seed=8, figures=("plcc",))
    assert diff == a.point["plcc"] - b.point["plcc"]
    assert (lo, hi, p) == percentile_test(a.samples["plcc"] - b.samples["plcc"], 0.05)
