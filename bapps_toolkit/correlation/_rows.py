"""Bootstrap resamples as rows of drawn items: group counts, compressed item lists, per-row sums.

A resample draws ``G`` groups (reference images) uniformly with replacement; it is held as its group
counts ``c`` ``[G]``, and an item of group ``g`` carries the weight ``c[g]`` — the number of copies
of it in the expanded sample. Items of groups not drawn (about ``1/e`` of them) have weight 0 and
are left out: a block of resamples becomes rows of the drawn items' indices and weights, padded
with weight 0 to the longest row of the block.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["draw_counts", "Rows", "Groups", "compress", "varies", "LineStats", "line_stats"]


def draw_counts(n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n_groups]`` group counts of ``n_boot`` resamples.

    Resample ``b`` is the ``b``-th run of ``n_groups`` draws of ``rng.integers(0, n_groups)`` from
    ``numpy.random.default_rng(seed)`` — the same values as one ``integers(0, n_groups,
    size=n_groups)`` call per resample.

    Args:
        n_groups: number of groups ``G``.
        n_boot: number of resamples.
        seed: the generator's seed.

    Returns:
        Integer counts, each row summing to ``n_groups``.
    """
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, n_groups, size=(n_boot, n_groups))
    flat = pick + (np.arange(n_boot, dtype=np.int64) * n_groups)[:, None]
    return np.bincount(flat.reshape(-1), minlength=n_boot * n_groups).reshape(n_boot, n_groups)


@dataclass(frozen=True)
class Rows:
    """A block of resamples as rows: ``idx`` ``[A, m]`` item indices and ``w`` ``[A, m]`` weights.

    Padding is item 0 with weight 0.
    """

    idx: np.ndarray
    w: np.ndarray

    def take(self, keep: np.ndarray, width: int | None = None) -> Rows:
        """The rows ``keep``, cut to their first ``width`` entries."""
        return Rows(self.idx[keep, :width], self.w[keep, :width])

    def widths(self) -> np.ndarray:
        """Each row's length up to its last drawn item."""
        drawn = self.w > 0
        return np.asarray(drawn.shape[1] - np.argmax(drawn[:, ::-1], axis=1))


@dataclass(frozen=True)
class Groups:
    """The items of each group as a padded table, its validity mask, and each item's group.

    ``table`` ``[G, S]`` holds item indices (``S`` the largest group, shorter groups padded with
    item 0), ``valid`` ``[G, S]`` which entries are items, ``group`` the group per item.
    """

    table: np.ndarray
    valid: np.ndarray
    group: np.ndarray

    @classmethod
    def of(cls, group: np.ndarray, n_groups: int) -> Groups:
        """Groups of the group codes ``group`` (items in their original order within a group)."""
        order = np.argsort(group, kind="stable")
        size = np.bincount(group, minlength=n_groups)
        start = np.cumsum(size) - size
        pos = np.arange(group.size) - start[group[order]]
        table = np.zeros((n_groups, max(int(size.max(initial=0)), 1)), dtype=np.int64)
        valid = np.zeros(table.shape, dtype=bool)
        table[group[order], pos], valid[group[order], pos] = order, True
        return cls(table, valid, group)


def compress(counts: np.ndarray, groups: Groups) -> Rows:
    """The drawn items of each resample in ``counts`` ``[A, G]``.

    Args:
        counts: group counts of a block of resamples.
        groups: the set's :class:`Groups`.

    Returns:
        :class:`Rows`, the drawn groups' items in group order. When the groups' sizes differ much
        (padding them to the largest would more than double the items), rows hold items instead.
    """
    a, n_groups = counts.shape
    if groups.table.size > 2 * groups.group.size:
        return _compress_items(counts, groups.group)
    drawn = counts > 0
    width = max(int(drawn.sum(1).max(initial=0)), 1)
    order = np.argsort(~drawn, axis=1, kind="stable")[:, :width]
    c = np.take_along_axis(counts, order, axis=1).astype(np.float64)
    idx = groups.table[order].reshape(a, -1)
    w = (c[:, :, None] * groups.valid[order]).reshape(a, -1)
    return Rows(idx, w)


def _compress_items(counts: np.ndarray, group: np.ndarray) -> Rows:
    full = counts[:, group]
    rows, cols = np.nonzero(full)
    lens = np.bincount(rows, minlength=counts.shape[0])
    pos = np.arange(rows.size) - np.repeat(np.cumsum(lens) - lens, lens)
    width = max(int(lens.max(initial=0)), 1)
    idx = np.zeros((counts.shape[0], width), dtype=np.int64)
    w = np.zeros((counts.shape[0], width))
    idx[rows, pos] = cols
    w[rows, pos] = full[rows, cols]
    return Rows(idx, w)


def varies(counts: np.ndarray, v: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Whether ``v`` takes more than one value among the drawn items of each resample."""
    lo, hi = np.full(n_groups, np.inf), np.full(n_groups, -np.inf)
    np.minimum.at(lo, group, v)
    np.maximum.at(hi, group, v)
    on = counts > 0
    return np.asarray(np.where(on, hi, -np.inf).max(1) > np.where(on, lo, np.inf).min(1))


@dataclass(frozen=True)
class LineStats:
    """Weighted moments of each row, and the residuals of its least-squares line.

    They are the item count ``n``, mean and standard deviation of ``s``, centred sums ``syy`` and
    ``sxy``, and the squared error of the least-squares line of ``y`` on ``s``;
    ``sc`` ``[A, m]`` is ``s`` less its mean and ``res`` the line's residuals.
    """

    n: np.ndarray
    s_mean: np.ndarray
    s_sd: np.ndarray
    syy: np.ndarray
    sxy: np.ndarray
    line_sse: np.ndarray
    sc: np.ndarray
    res: np.ndarray

    def take(self, keep: np.ndarray, width: int | None = None) -> LineStats:
        """The rows ``keep``, the arrays cut to their first ``width`` entries."""
        return LineStats(self.n[keep], self.s_mean[keep], self.s_sd[keep], self.syy[keep], self.sxy[keep],
                         self.line_sse[keep], self.sc[keep, :width], self.res[keep, :width])


def line_stats(s: np.ndarray, y: np.ndarray, w: np.ndarray) -> LineStats:
    """:class:`LineStats` of rows ``s, y, w`` ``[A, m]`` (sums of centred values, no cancellation)."""
    n = w.sum(1)
    sm, ym = np.einsum("am,am->a", w, s) / n, np.einsum("am,am->a", w, y) / n
    sc, yc = s - sm[:, None], y - ym[:, None]
    wsc = w * sc
    sxx, sxy = np.einsum("am,am->a", wsc, sc), np.einsum("am,am->a", wsc, yc)
    syy = np.einsum("am,am->a", w * yc, yc)
    slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
    yc -= slope[:, None] * sc
    line_sse = np.einsum("am,am->a", w * yc, yc)
    return LineStats(n, sm, np.sqrt(sxx / n), syy, sxy, line_sse, sc, yc)
