"""Spearman's rho and Kendall's tau-b of many bootstrap resamples at once.

A resample is given by *weights*: ``w[i]`` = how many times item ``i`` was drawn. Both statistics
are computed on the expanded sample (item ``i`` repeated ``w[i]`` times) exactly as
``scipy.stats.spearmanr`` / ``kendalltau(variant="b")`` would compute them on it, without building it:

* **SRCC**: the average rank of item ``i`` in the expanded sample is ``#{drawn copies below it} +
  (#{drawn copies tied with it} + 1) / 2`` (ties averaged as ``scipy.stats.rankdata``); rho is the
  weighted Pearson correlation of the two rank vectors. With whole groups resampled the ranks are
  ``c @ T + 1/2`` for the group counts ``c`` and the table ``T[g, i] = #{j in g: v_j < v_i} +
  #{j in g: v_j = v_i} / 2`` (:func:`rank_table`, one matrix product per block of resamples);
  otherwise they are read off a cumulative sum of the weights in the order of the values sorted
  once (:func:`weighted_spearman`). With few large groups the sums over items that rho needs are
  themselves cubic forms in ``c`` (:func:`spearman_forms`): ``sum_i w_i a_i b_i = sum c_g c_h c_k
  M[g, h, k]`` with ``M[g] = sum over i in g of T_s[:, i] T_y[:, i]'``, one product with ``G^3``
  numbers per resample instead of work over every item.
* **KRCC** (tau-b, Kendall 1945): with whole groups resampled, ``w = c[group]`` for the group
  counts ``c``, and every pair sum is a quadratic form in ``c``: ``n_c - n_d = c'Sc / 2`` with
  ``S[g, h] = sum over i in g, j in h of sign(s_i - s_j) sign(y_i - y_j)``, and the tie sums
  ``sum_v T_v^2 = c'A c`` with ``A[g, h] = #{i in g, j in h: s_i = s_j}``. Then
  ``tau_b = c'Sc / sqrt((N^2 - c'A_s c)(N^2 - c'A_y c))``, ``N = sum w``. ``S`` and ``A`` are built
  once per set by 2-D dominance counts (``O(G n + G m^2)`` for ``G`` groups of at most ``m`` items);
  all counts are integers held exactly in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RankOrder", "rank_order", "weighted_spearman", "rank_table", "spearman_from_ranks", "SpearmanForms",
           "spearman_forms", "spearman_from_counts", "pair_matrices", "tau_b_from_counts"]


class RankOrder:
    """The sort order of one variable of a set and, per sorted position, its tie block's bounds.

    ``order`` ``[m]`` sorts the items (padding last); ``first``/``last`` give the first and last
    sorted position of each position's tie block; ``back`` maps items to sorted positions.
    """

    def __init__(self, values: np.ndarray, size: int):
        m = values.size
        real = np.argsort(values[:size], kind="stable")
        self.order = np.concatenate([real, np.arange(size, m)])
        v = values[self.order]
        new = np.ones(m, dtype=bool)
        new[1:size] = v[1:size] != v[:size - 1]
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], m) - 1
        block = np.cumsum(new) - 1
        self.first, self.last = starts[block], ends[block]
        self.back = np.empty(m, dtype=np.int64)
        self.back[self.order] = np.arange(m)


def rank_order(values: np.ndarray, size: int) -> RankOrder:
    """:class:`RankOrder` of ``values[:size]`` (the rest is padding and sorts last, alone)."""
    return RankOrder(np.asarray(values, dtype=np.float64), int(size))


def _ranks(w: np.ndarray, order: np.ndarray, first: np.ndarray, last: np.ndarray,
           back: np.ndarray) -> np.ndarray:
    """Average ranks ``[A, m]`` of every item in each row's expanded sample (per-row index arrays)."""
    cum = np.zeros((w.shape[0], w.shape[1] + 1))
    np.cumsum(np.take_along_axis(w, order, axis=1), axis=1, out=cum[:, 1:])
    sorted_rank = (np.take_along_axis(cum, first, axis=1) + np.take_along_axis(cum, last + 1, axis=1) + 1) / 2
    return np.take_along_axis(sorted_rank, back, axis=1)


def weighted_spearman(w: np.ndarray, s_rank: tuple[np.ndarray, ...], y_rank: tuple[np.ndarray, ...]) -> np.ndarray:
    """Spearman's rho of each row's expanded sample (``nan`` where a variable is constant).

    Args:
        w: weights ``[A, m]``.
        s_rank: ``(order, first, last, back)`` of the predictions of each row, each ``[A, m]``.
        y_rank: the same for the subjective scores.

    Returns:
        ``[A]`` rho values.
    """
    return spearman_from_ranks(w, _ranks(w, *s_rank), _ranks(w, *y_rank))


def spearman_from_ranks(w: np.ndarray, rs: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Spearman's rho ``[A]`` from average ranks ``rs, ry`` ``[A, m]`` and weights ``w``.

    The ranks are those of the items of each row's expanded sample; rho is ``nan`` where a
    variable is constant.
    """
    mid = ((w.sum(1) + 1) / 2)[:, None]
    rs = rs - mid
    ry = ry - mid
    wrs = w * rs
    cov = np.einsum("am,am->a", wrs, ry)
    vs, vy = np.einsum("am,am->a", wrs, rs), np.einsum("am,am->a", w * ry, ry)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cov / np.sqrt(vs * vy)
    return np.where((vs > 0) & (vy > 0), np.clip(out, -1.0, 1.0), np.nan)


def rank_table(v: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """``T`` ``[G, n]`` of one variable (module doc).

    The average rank of item ``i`` in a resample with group counts ``c`` is
    ``c @ T[:, i] + 1/2``. Entries are halves of integers (exact).
    """
    rank, below, _ = _dominance(np.asarray(v, dtype=np.float64), np.asarray(group, dtype=np.int64), n_groups)
    return np.asarray((below[:, rank] + below[:, rank + 1]) / 2)


@dataclass(frozen=True)
class SpearmanForms:
    """Cubic and quadratic forms of one set (module doc), and its group sizes.

    ``cubic`` ``[3, G, G * G]`` is for the pairs
    ``(s, y), (s, s), (y, y)``, ``linear`` ``[2, G, G]`` with ``L[g, h] = sum over i in g of T[h, i]``,
    and the group sizes.
    """

    cubic: np.ndarray
    linear: np.ndarray
    sizes: np.ndarray


def spearman_forms(s: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int) -> SpearmanForms:
    """:class:`SpearmanForms` of a set (exact: sums of products of half-integers)."""
    ts, ty = rank_table(s, group, n_groups), rank_table(y, group, n_groups)
    one = np.zeros((group.size, n_groups))
    one[np.arange(group.size), group] = 1.0
    cubic = np.zeros((3, n_groups, n_groups, n_groups))
    for g in range(n_groups):
        i = np.flatnonzero(group == g)
        a, b = ts[:, i], ty[:, i]
        cubic[0, g], cubic[1, g], cubic[2, g] = a @ b.T, a @ a.T, b @ b.T
    linear = np.stack([(ts @ one).T, (ty @ one).T])
    return SpearmanForms(cubic.reshape(3, n_groups, -1), linear, one.sum(0))


def spearman_from_counts(counts: np.ndarray, forms: SpearmanForms) -> np.ndarray:
    """Spearman's rho ``[B]`` of resamples given by group counts ``[B, G]``.

    Rho is ``nan`` where a variable is constant.
    """
    c = np.asarray(counts, dtype=np.float64)
    b, g = c.shape
    n = c @ forms.sizes
    cubic = [np.einsum("bhk,bh,bk->b", (c @ m).reshape(b, g, g), c, c) for m in forms.cubic]
    lin_s, lin_y = (np.einsum("bg,bg->b", c @ m, c) for m in forms.linear)
    # ranks are c @ T + 1/2 and their mean (N + 1) / 2: centred ranks are c @ T - N / 2
    quarter = n ** 3 / 4
    cov = cubic[0] - n / 2 * (lin_s + lin_y) + quarter
    vs, vy = cubic[1] - n * lin_s + quarter, cubic[2] - n * lin_y + quarter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cov / np.sqrt(vs * vy)
    return np.where((vs > 0) & (vy > 0), np.clip(out, -1.0, 1.0), np.nan)


def _dominance(v: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense ranks of ``v``, counts below each rank per group, and positions within groups.

    ``below[h, r]`` = #items of group ``h`` with rank < ``r``; the position is each item's within
    its group in the order of ``v``.
    """
    _, rank = np.unique(v, return_inverse=True)
    rank = rank.reshape(-1)
    table = np.zeros((n_groups, int(rank.max()) + 2), dtype=np.int64)
    np.add.at(table, (group, rank + 1), 1)
    below = np.cumsum(table, axis=1)
    order = np.lexsort((v, group))
    pos = np.empty(v.size, dtype=np.int64)
    starts = np.searchsorted(group[order], np.arange(n_groups))
    pos[order] = np.arange(v.size) - starts[group[order]]
    return rank, below, pos


def pair_matrices(s: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int,
                  block: int = 1 << 21) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(S, A_s, A_y)`` ``[G, G]`` of one set (module doc), exact integers as float64."""
    group = np.asarray(group, dtype=np.int64)
    rs, below_s, ps = _dominance(s, group, n_groups)
    ry, below_y, py = _dominance(y, group, n_groups)
    size = np.bincount(group, minlength=n_groups)
    top = int(size.max()) + 1
    grid = np.zeros((n_groups, top, top), dtype=np.int64)
    grid[group, ps + 1, py + 1] = 1
    grid = grid.cumsum(1).cumsum(2)
    out = [np.zeros((n_groups, n_groups)) for _ in range(3)]
    hh = np.arange(n_groups)[:, None]
    step = max(1, block // max(n_groups, 1))
    for lo in range(0, s.size, step):
        i = slice(lo, lo + step)
        a, a2 = below_s[:, rs[i]], below_s[:, rs[i] + 1]
        b, b2 = below_y[:, ry[i]], below_y[:, ry[i] + 1]
        both_le = grid[hh, a2, b2]
        conc = grid[hh, a, b] + size[:, None] - a2 - b2 + both_le
        disc = (a - grid[hh, a, b2]) + (b - grid[hh, a2, b])
        for mat, part in zip(out, (conc - disc, a2 - a, b2 - b), strict=True):
            np.add.at(mat.T, group[i], part.T.astype(np.float64))
    return out[0], out[1], out[2]


def tau_b_from_counts(counts: np.ndarray, sizes: np.ndarray, mats: tuple[np.ndarray, np.ndarray, np.ndarray]
                      ) -> np.ndarray:
    """Kendall's tau-b ``[B]`` of resamples given by group ``counts`` ``[B, G]`` (module doc)."""
    c = np.asarray(counts, dtype=np.float64)
    s_mat, a_s, a_y = mats
    n = c @ np.asarray(sizes, dtype=np.float64)
    num = np.einsum("bg,bg->b", c @ s_mat, c)
    den = (n * n - np.einsum("bg,bg->b", c @ a_s, c)) * (n * n - np.einsum("bg,bg->b", c @ a_y, c))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / np.sqrt(den)
    return np.where(den > 0, np.clip(out, -1.0, 1.0), np.nan)
