"""paired_bootstrap: the interval and the p-value come from one method and never contradict.

Issue 10: the old p-value (bootstrap shifted to the null) and the old interval (percentile) could
call a difference significant and not significant at once on skewed item losses. The simulated
sets below are skewed enough that the old pair of rules contradicts itself on many of them (the
test checks that too, so it could fail if the data stopped being hard); the new rule
(:func:`bapps_toolkit._bootstrap.percentile_test`) must agree with itself on every one.
"""
from __future__ import annotations

import numpy as np
import pytest

from bapps_toolkit._bootstrap import interval_rank, percentile_test
from bapps_toolkit.correlation import paired_correlation_difference
from bapps_toolkit.scores import (
    PairedResult,
    as_items,
    jnd_map,
    paired_bootstrap,
    paired_distribution,
    register_item_mean,
    score_2afc,
)


def mean_loss(x):
    """Mean item loss (any real numbers); vectorised over resamples through ``per_item``."""
    return float(np.mean(x))


register_item_mean(mean_loss, lambda x: as_items(x))


def _skewed_set(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Item losses of metric A and B on the same items: lognormal, and a rare-large-loss mixture."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 300))
    a = rng.lognormal(0.0, 1.0, n)
    if seed % 2 == 0:  # most items equal, a few much worse for B: a long one-sided tail
        b = a + rng.lognormal(-1.5, 1.5, n) * (rng.random(n) < 0.15) - 0.02
    else:  # multiplicative lognormal noise plus a small exponential offset
        b = a * rng.lognormal(0.0, 0.3, n) + rng.exponential(0.02, n)
    return a, b


def _old_rule(diff: float, boot: np.ndarray, alpha: float) -> tuple[tuple[float, float], float]:
    """The rule before issue 10: percentile interval (linear quantiles) + null-shifted p-value."""
    fin = boot[np.isfinite(boot)]
    lo, hi = np.quantile(fin, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, (1.0 + np.sum(np.abs(fin - diff) >= abs(diff))) / (fin.size + 1.0))
    return (float(lo), float(hi)), float(p)


def _excludes_zero(ci: tuple[float, float]) -> bool:
    return not (ci[0] <= 0.0 <= ci[1])


def test_p_and_interval_agree_on_200_skewed_sets():
    old_contradictions = 0
    significant = 0
    for seed in range(200):
        a, b = _skewed_set(seed)
        alpha = 0.05 if seed % 4 < 2 else 0.01
        r = paired_bootstrap(mean_loss, (a,), (b,), n_boot=1000, seed=seed, alpha=alpha)
        assert isinstance(r, PairedResult)
        assert 0.0 <= r.p_value <= 1.0
        assert r.ci[0] <= r.ci[1]
        assert (r.p_value < alpha) == _excludes_zero(r.ci), (seed, alpha, r)
        assert r.diff == pytest.approx(a.mean() - b.mean(), abs=1e-12)
        significant += r.p_value < alpha
        diff, boot = paired_distribution(mean_loss, (a,), (b,), n_boot=1000, seed=seed)
        old_ci, old_p = _old_rule(diff, boot, alpha)
        old_contradictions += (old_p < alpha) != _excludes_zero(old_ci)
    assert old_contradictions >= 20, old_contradictions  # the sets are hard for the old rule
    assert 20 <= significant <= 180, significant  # both outcomes occur


def test_the_case_the_old_rule_got_wrong_is_now_consistent():
    # seed 16 reproduces the kind of set of the issue: interval (-0.088, -0.001), old p = 0.082
    a, b = _skewed_set(16)
    diff, boot = paired_distribution(mean_loss, (a,), (b,), n_boot=1000, seed=16)
    old_ci, old_p = _old_rule(diff, boot, 0.05)
    assert old_ci[1] < 0 and old_p >= 0.05  # contradiction: excludes 0, "not significant"
    r = paired_bootstrap(mean_loss, (a,), (b,), n_boot=1000, seed=16, alpha=0.05)
    assert r.diff == diff
    assert (r.p_value < 0.05) == _excludes_zero(r.ci)
    # the same resamples: the new interval is the order-statistic version of the old one
    k = interval_rank(1000, 0.05)
    s = np.sort(boot)
    assert r.ci == (s[k - 1], s[1000 - k])
    assert r.p_value == 2 * min(np.sum(boot <= 0), np.sum(boot >= 0)) / 1000


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_2afc_and_jnd_scores_agree_too(alpha):
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        n = 150
        g = rng.beta(0.5, 0.5, n)
        d0a, d1a = rng.lognormal(0, 1, n), rng.lognormal(0, 1, n)
        d0b, d1b = d0a * rng.lognormal(0, 0.5, n), d1a
        r = paired_bootstrap(score_2afc, (d0a, d1a, g), (d0b, d1b, g), n_boot=500, seed=seed, alpha=alpha)
        assert (r.p_value < alpha) == _excludes_zero(r.ci)
        assert r.diff == pytest.approx(score_2afc(d0a, d1a, g) - score_2afc(d0b, d1b, g))
        same = (rng.random(40) < 0.1).astype(float)  # few "same" labels: some resamples undefined
        same[0] = 1.0
        da, db = rng.lognormal(0, 1, 40), rng.lognormal(0, 1, 40)
        r = paired_bootstrap(jnd_map, (da, same), (db, same), n_boot=500, seed=seed, alpha=alpha)
        assert 0.0 <= r.p_value <= 1.0
        assert (r.p_value < alpha) == _excludes_zero(r.ci)


def test_identical_inputs_and_determinism():
    a, b = _skewed_set(3)
    r = paired_bootstrap(mean_loss, (a,), (a,), n_boot=400, seed=0)
    assert r == PairedResult(0.0, (0.0, 0.0), 1.0)
    diff, (lo, hi), p = paired_bootstrap(mean_loss, (a,), (b,), n_boot=400, seed=5)  # unpacks as before
    assert paired_bootstrap(mean_loss, (a,), (b,), n_boot=400, seed=5) == (diff, (lo, hi), p)
    other = paired_bootstrap(mean_loss, (a,), (b,), n_boot=400, seed=6)
    assert other.diff == diff and other.ci != (lo, hi)


def test_rank_rule_is_exact_in_floating_point():
    """For every resample count and every count m: fl(2m/n) < alpha  <=>  m < k."""
    for alpha in (0.05, 0.01, 0.07, 0.1, 0.3, 0.999, 1e-9):
        for n in range(1, 1500):
            k = interval_rank(n, alpha)
            assert 1 <= k <= n + 1 - k
            m = np.arange(n + 1)
            assert np.array_equal(2 * m / n < alpha, m < k), (alpha, n, k)


def test_percentile_test_by_hand():
    # ties at 0 count on both sides
    assert percentile_test(np.zeros(50), 0.05) == (0.0, 0.0, 1.0)
    boot = np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # alpha = 0.2: k = 1 (2/10 >= 0.2), interval [d(1), d(10)]; m = min(4, 7) = 4, p = 0.8
    assert percentile_test(boot, 0.2) == (-3.0, 6.0, 0.8)
    # all resamples above 0: p = 0 (< 2/n), interval excludes 0
    assert percentile_test(boot + 10, 0.05) == (7.0, 16.0, 0.0)
    # alpha = 0.5: k = 3, interval [d(3), d(8)] = [-1, 4]
    assert percentile_test(boot, 0.5)[:2] == (-1.0, 4.0)
    # non-finite resamples are left out; none left -> nan
    lo, hi, p = percentile_test(np.array([np.nan, 1.0, 2.0, np.inf]), 0.05)
    assert (lo, hi, p) == (1.0, 2.0, 0.0)
    assert all(np.isnan(v) for v in percentile_test(np.array([np.nan]), 0.05))
    with pytest.raises(ValueError, match="alpha"):
        interval_rank(10, 1.0)


def test_float_noise_around_zero_is_a_tie():
    # 0 in exact arithmetic, 1e-10 after float32 judge fractions: a tie, not a positive sign
    boot = np.array([1e-10] * 5 + [-3e-11] * 2 + [0.01] * 13)
    assert percentile_test(boot, 0.2) == (0.0, 0.01, 0.7)  # k = 2, m = 7
    lo, hi, p = percentile_test(boot, 0.2, tie_tol=0.0)  # kept as they are: lo < 0 < hi, m = 2
    assert (lo, hi, p) == (-3e-11, 0.01, 0.2)
    with pytest.raises(ValueError, match="tie_tol"):
        percentile_test(boot, 0.05, tie_tol=-1.0)


def test_correlation_difference_uses_the_same_rule():
    rng = np.random.default_rng(7)
    refs = np.repeat(np.arange(30), 4)
    y = rng.normal(size=refs.size)
    s_a = y + rng.normal(0, 0.5, refs.size)
    s_b = y + rng.lognormal(0, 1, refs.size)
    for alpha in (0.05, 0.01):
        diff, ci, p = paired_correlation_difference(s_a, s_b, y, refs, n_boot=300, seed=1, alpha=alpha)
        assert 0.0 <= p <= 1.0
        assert (p < alpha) == _excludes_zero(ci)
