"""Property-based tests (hypothesis) of the scoring functions in ``bapps_toolkit.scores``.

Properties (Zhang et al., CVPR 2018, §3; the 2AFC formula with ties counting 0.5, JND mAP as VOC
continuous AP over the soft precision–recall curve):

* 2AFC score lies in [0, 1]; swapping p0 and p1 and replacing the judge fraction ``g`` by
  ``1 − g`` leaves it unchanged; a metric agreeing with every rater (judge ∈ {0, 1}) scores 1.
* JND mAP lies in [0, 1]; it is unchanged by any strictly increasing transform of the distances
  — tested on integer-valued distances with transforms that are exact in float64 (or spread the
  values far apart), so they create no new ties and break none; a ranking that puts every
  "same" pair first scores 1; with no ties, jointly permuting the items changes nothing.
* Bad input (NaN/Inf, fractions outside [0, 1], mismatched lengths, empty, several values per
  item, all-zero ``same``) raises ``ValueError`` and never another exception.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bapps_toolkit.scores import jnd_map, score_2afc

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
fraction = st.floats(0.0, 1.0, allow_nan=False, width=64)


@st.composite
def triplets(draw, max_n: int = 60):
    n = draw(st.integers(1, max_n))
    # small integer pools make ties frequent; free floats exercise the rest
    dist = st.one_of(st.integers(0, 4).map(float), finite)
    d0 = np.array(draw(st.lists(dist, min_size=n, max_size=n)))
    d1 = np.array(draw(st.lists(dist, min_size=n, max_size=n)))
    g = np.array(draw(st.lists(st.one_of(st.sampled_from([0.0, 0.5, 1.0]), fraction), min_size=n, max_size=n)))
    return d0, d1, g


@SETTINGS
@given(triplets())
def test_2afc_in_unit_interval_and_swap_invariant(t):
    d0, d1, g = t
    s = score_2afc(d0, d1, g)
    assert 0.0 <= s <= 1.0
    assert score_2afc(d1, d0, 1.0 - g) == pytest.approx(s, abs=1e-12)
    # shapes [N, 1, 1, 1] (LPIPS outputs) give the same score
    assert score_2afc(d0.reshape(-1, 1, 1, 1), d1.reshape(-1, 1, 1, 1), g) == s


@SETTINGS
@given(triplets())
def test_2afc_perfect_agreement_scores_one(t):
    d0, d1, _ = t
    keep = d0 != d1
    if not keep.any():
        return
    d0, d1 = d0[keep], d1[keep]
    g = (d1 < d0).astype(float)   # every rater preferred the patch the metric finds closer
    assert score_2afc(d0, d1, g) == 1.0
    assert score_2afc(d0, d1, 1.0 - g) == 0.0


@st.composite
def jnd_sets(draw, max_n: int = 60, distinct: bool = False):
    n = draw(st.integers(1, max_n))
    if distinct:
        d = np.array(draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True)), float)
    else:
        d = np.array(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)), float)
    same = np.array(draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0]), fraction), min_size=n, max_size=n)))
    if same.sum() <= 0:
        same[draw(st.integers(0, n - 1))] = draw(st.floats(0.01, 1.0))
    return d, same


#: Strictly increasing maps that keep integer-valued inputs (0 … 10 000) exactly ordered.
TRANSFORMS = {
    "affine": lambda x: 3.0 * x + 7.0,          # exact in float64
    "negative shift": lambda x: x - 1e4,         # exact
    "cube": lambda x: x ** 3,                    # exact for |x| <= 10 000 (< 2**53)
    "exp": lambda x: np.exp(x / 1000.0),         # consecutive integers stay > 1e-3 apart, relative
    "log1p": lambda x: np.log1p(x),              # increasing, spread >= 1e-4 on 0…10 000
    "sqrt": lambda x: np.sqrt(x),                # correctly rounded, hence monotone; ties stay ties
}


@SETTINGS
@given(jnd_sets(), st.sampled_from(sorted(TRANSFORMS)))
def test_jnd_map_in_unit_interval_and_monotone_invariant(s, name):
    d, same = s
    f = TRANSFORMS[name]
    td = f(d)
    order, t_order = np.argsort(d, kind="stable"), np.argsort(td, kind="stable")
    assert np.array_equal(order, t_order), "the transform changed the order (test setup)"
    m = jnd_map(d, same)
    assert 0.0 <= m <= 1.0
    assert jnd_map(td, same) == m


@SETTINGS
@given(jnd_sets(distinct=True), st.randoms(use_true_random=False))
def test_jnd_map_permutation_invariant_without_ties(s, rnd):
    d, same = s
    perm = np.array(rnd.sample(range(len(d)), len(d)))
    assert jnd_map(d[perm], same[perm]) == pytest.approx(jnd_map(d, same), abs=1e-12)


@SETTINGS
@given(st.integers(1, 30), st.integers(0, 30))
def test_jnd_map_perfect_ranking_is_one(n_same, n_diff):
    d = np.arange(n_same + n_diff, dtype=float)
    same = np.r_[np.ones(n_same), np.zeros(n_diff)]
    assert jnd_map(d, same) == pytest.approx(1.0, abs=1e-12)  # sum of n steps 1/n in float64


# ------------------------------------------------------------------------------------ bad input
@st.composite
def broken_2afc(draw):
    n = draw(st.integers(1, 20))
    d0 = draw(hnp.arrays(np.float64, n, elements=finite))
    d1 = draw(hnp.arrays(np.float64, n, elements=finite))
    g = draw(hnp.arrays(np.float64, n, elements=fraction))
    how = draw(st.sampled_from(["nan", "inf", "judge>1", "judge<0", "judge nan", "length", "empty",
                                "per item"]))
    i = draw(st.integers(0, n - 1))
    if how == "nan":
        d0[i] = np.nan
    elif how == "inf":
        d1[i] = draw(st.sampled_from([np.inf, -np.inf]))
    elif how == "judge>1":
        g[i] = draw(st.floats(1.0, 1e9, exclude_min=True))
    elif how == "judge<0":
        g[i] = draw(st.floats(-1e9, 0.0, exclude_max=True))
    elif how == "judge nan":
        g[i] = np.nan
    elif how == "length":
        d1 = np.r_[d1, 0.0]
    elif how == "empty":
        d0, d1, g = d0[:0], d1[:0], g[:0]
    else:
        d0 = np.stack([d0, d0], axis=1)
    return d0, d1, g


@SETTINGS
@given(broken_2afc())
def test_2afc_bad_input_is_value_error(t):
    with pytest.raises(ValueError):
        score_2afc(*t)


@st.composite
def broken_jnd(draw):
    n = draw(st.integers(1, 20))
    d = draw(hnp.arrays(np.float64, n, elements=finite))
    same = draw(hnp.arrays(np.float64, n, elements=st.floats(0.05, 1.0)))
    how = draw(st.sampled_from(["nan", "inf", "same>1", "same<0", "all zero", "length", "empty",
                                "per item"]))
    i = draw(st.integers(0, n - 1))
    if how == "nan":
        d[i] = np.nan
    elif how == "inf":
        d[i] = np.inf
    elif how == "same>1":
        same[i] = 1.5
    elif how == "same<0":
        same[i] = -0.5
    elif how == "all zero":
        same[:] = 0.0
    elif how == "length":
        same = same[:-1]
    elif how == "empty":
        d, same = d[:0], same[:0]
    else:
        d = np.stack([d, d], axis=1)
    return d, same


@SETTINGS
@given(broken_jnd())
def test_jnd_bad_input_is_value_error(t):
    with pytest.raises(ValueError):
        jnd_map(*t)
