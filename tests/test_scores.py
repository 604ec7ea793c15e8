"""2AFC score, JND mAP, human ceiling and bootstrap intervals on hand-computed cases."""
import numpy as np
import pytest
import torch

from bapps_toolkit.scores import (
    bootstrap_ci,
    bootstrap_distribution,
    human_ceiling_2afc,
    jnd_map,
    jnd_pr_curve,
    paired_bootstrap,
    per_item_2afc,
    score_2afc,
)

# d0, d1, judge -> per-item s by hand:
#   1<2 -> 1-0.2 = 0.8 ; 2>1 -> 0.6 ; tie -> 0.5 ; 3<4 -> 1-1.0 = 0.0
D0 = [1.0, 2.0, 3.0, 3.0]
D1 = [2.0, 1.0, 3.0, 4.0]
G = [0.2, 0.6, 0.4, 1.0]


def test_2afc_hand_computed_with_tie():
    assert per_item_2afc(D0, D1, G).tolist() == pytest.approx([0.8, 0.6, 0.5, 0.0])
    assert score_2afc(D0, D1, G) == pytest.approx(0.475)


def test_2afc_accepts_n111_tensors_and_mixed_types():
    d0 = torch.tensor(D0).view(4, 1, 1, 1)
    d1 = np.array(D1, dtype=np.float32).reshape(4, 1)
    assert score_2afc(d0, d1, torch.tensor(G)) == pytest.approx(0.475)


def test_2afc_rejects_bad_shapes_and_values():
    with pytest.raises(ValueError, match="same number of items"):
        score_2afc(D0, D1[:3], G)
    with pytest.raises(ValueError, match="one value per item"):
        score_2afc(np.ones((4, 2)), D1, G)
    with pytest.raises(ValueError, match="judge"):
        score_2afc(D0, D1, [0.2, 0.6, 0.4, 1.5])
    with pytest.raises(ValueError, match="non-finite"):
        score_2afc([np.nan, 1, 1, 1], D1, G)
    with pytest.raises(ValueError, match="empty"):
        score_2afc([], [], [])


def test_human_ceiling():
    # p^2 + (1-p)^2: 0.5 -> 0.5 ; 1 -> 1 ; 0.2 -> 0.68 ; 0.6 -> 0.52
    assert human_ceiling_2afc([0.5, 1.0, 0.2, 0.6]) == pytest.approx((0.5 + 1 + 0.68 + 0.52) / 4)


def test_jnd_map_hand_computed():
    # sorted: (0.1, 1) (0.2, .5) (0.3, 0) (0.4, 0); TP 1, 1.5, 1.5, 1.5; FP 0, .5, 1.5, 2.5
    # precision 1, .75, .5, .375; recall 2/3, 1, 1, 1 -> AP = 2/3 * 1 + 1/3 * .75 = 11/12
    d = [0.4, 0.1, 0.3, 0.2]
    same = [0.0, 1.0, 0.0, 0.5]
    assert jnd_map(d, same) == pytest.approx(11 / 12)
    prec, rec = jnd_pr_curve(d, same)
    assert prec.tolist() == pytest.approx([1, 0.75, 0.5, 0.375])
    assert rec.tolist() == pytest.approx([2 / 3, 1, 1, 1])


def test_jnd_map_ties_use_stable_order():
    # sorted stably: (0.1, 1) (0.2, 0)[item 0] (0.2, 1)[item 2]
    # precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    # (the other tie order would give 1.0)
    assert jnd_map([0.2, 0.1, 0.2], [0.0, 1.0, 1.0]) == pytest.approx(5 / 6)
    # a long run of ties: with a stable sort the result depends only on input order
    rng = np.random.default_rng(3)
    d = np.repeat(rng.random(50), 40)
    same = rng.random(2000)
    expected = jnd_map(d, same)
    assert jnd_map(d.reshape(-1, 1, 1, 1), torch.tensor(same)) == pytest.approx(expected)


def test_official_defect_shape_no_longer_matters():
    """The official code sorted N×1×1×1 distances over a size-1 axis: mAP == first label."""
    rng = np.random.default_rng(0)
    n = 300
    d = rng.random(n)
    same = (rng.random(n) < 1 - d).astype(np.float64)  # small distance -> likely "same"
    same[0] = 0.0
    nested = d.reshape(n, 1, 1, 1)
    # What the official numpy code does with that shape (argsort over the size-1 last axis):
    order = np.argsort(nested)
    s_sorted = same[order]                      # every entry is same[0]
    tp, fp = np.cumsum(s_sorted), np.cumsum(1 - s_sorted)
    official_prec = tp / (tp + fp)
    assert np.all(np.nan_to_num(official_prec) == same[0])  # the defect: a constant curve
    correct = jnd_map(d, same)
    assert jnd_map(nested, same) == pytest.approx(correct)
    assert jnd_map(torch.tensor(nested), same) == pytest.approx(correct)
    assert correct > 0.7  # informative distance -> high mAP; the official defect gave ~same[0]


def test_jnd_map_perfect_and_reversed():
    same = np.array([1, 1, 0, 0], dtype=float)
    assert jnd_map([0.1, 0.2, 0.3, 0.4], same) == pytest.approx(1.0)
    # reversed: precision 0, 0, 1/3, 1/2 ; recall 0, 0, .5, 1 ; envelope .5 -> AP = 0.5
    assert jnd_map([0.4, 0.3, 0.2, 0.1], same) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no pair was judged"):
        jnd_map([0.1, 0.2], [0.0, 0.0])


def test_bootstrap_vectorised_equals_loop_and_is_seeded():
    rng = np.random.default_rng(1)
    d0, d1, g = rng.random(150), rng.random(150), rng.random(150)
    fast = bootstrap_distribution(score_2afc, d0, d1, g, n_boot=200, seed=7)
    slow = bootstrap_distribution(lambda a, b, c: score_2afc(a, b, c), d0, d1, g, n_boot=200, seed=7)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    d, same = rng.random(120), rng.random(120)
    fast = bootstrap_distribution(jnd_map, d, same, n_boot=100, seed=3)
    slow = bootstrap_distribution(lambda a, b: jnd_map(a, b), d, same, n_boot=100, seed=3)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    assert bootstrap_ci(score_2afc, d0, d1, g, seed=5) == bootstrap_ci(score_2afc, d0, d1, g, seed=5)
    assert bootstrap_ci(score_2afc, d0, d1, g, seed=5) != bootstrap_ci(score_2afc, d0, d1, g, seed=6)


def _simulated_2afc(rng, n):
    """True score: P(d0<d1) = 0.7, judge ~ Beta(2, 5) independent (mean 2/7)
    -> E[s] = 0.7 * 5/7 + 0.3 * 2/7 = 0.5857…"""
    g = rng.beta(2.0, 5.0, n)
    closer = rng.random(n) < 0.7
    d0 = rng.random(n)
    d1 = np.where(closer, d0 + 0.5, d0 - 0.5)
    return d0, d1, g


TRUE_2AFC = 0.7 * 5 / 7 + 0.3 * 2 / 7


@pytest.mark.parametrize("alpha, band", [(0.05, (0.90, 0.985)), (0.5, (0.40, 0.60))])
def test_bootstrap_interval_coverage(alpha, band):
    """200 simulated data sets with a known true score: the interval covers it ≈ (1-alpha)."""
    rng = np.random.default_rng(2024)
    hits = 0
    for k in range(200):
        d0, d1, g = _simulated_2afc(rng, 300)
        lo, hi = bootstrap_ci(score_2afc, d0, d1, g, n_boot=1000, seed=k, alpha=alpha)
        hits += lo <= TRUE_2AFC <= hi
    coverage = hits / 200
    assert band[0] <= coverage <= band[1], coverage


def test_paired_bootstrap():
    rng = np.random.default_rng(11)
    d0, d1, g = _simulated_2afc(rng, 400)
    # identical metrics: no difference
    diff, (lo, hi), p = paired_bootstrap(score_2afc, (d0, d1, g), (d0, d1, g), n_boot=500)
    assert diff == 0.0 and lo == 0.0 and hi == 0.0 and p == 1.0
    # B = the metric with d0/d1 swapped (agrees with humans far less often)
    diff, (lo, hi), p = paired_bootstrap(score_2afc, (d0, d1, g), (d1, d0, g), n_boot=500)
    assert diff == pytest.approx(score_2afc(d0, d1, g) - score_2afc(d1, d0, g))
    assert diff > 0 and lo > 0 and p < 0.01
    # B = A plus small noise on a few items: no significant difference expected
    noisy = d1 + rng.normal(0, 1e-3, d1.shape)
    _, (lo, hi), p = paired_bootstrap(score_2afc, (d0, d1, g), (d0, noisy, g), n_boot=500)
    assert lo <= 0 <= hi and p > 0.05
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(score_2afc, (d0, d1, g), (d0[:10], d1[:10], g[:10]))


def test_bootstrap_on_torch_device_matches_numpy():
    rng = np.random.default_rng(5)
    d0, d1, g = rng.random(400), rng.random(400), rng.random(400)
    g[:50] = 0.5
    d1[:30] = d0[:30]  # ties
    a = bootstrap_distribution(score_2afc, d0, d1, g, n_boot=300, seed=1)
    b = bootstrap_distribution(score_2afc, d0, d1, g, n_boot=300, seed=1, device="cpu")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    d = np.round(rng.random(300), 2)  # many tied distances
    same = (rng.random(300) < 0.1) * rng.random(300)
    a = bootstrap_distribution(jnd_map, d, same, n_boot=300, seed=2)
    b = bootstrap_distribution(jnd_map, d, same, n_boot=300, seed=2, device="cpu")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
