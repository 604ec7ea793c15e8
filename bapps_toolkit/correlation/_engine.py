"""The four figures of every bootstrap resample of one or several sets, computed in batch.

A resample is held as its group counts and processed as a row of its drawn items (:mod:`._rows`).
For each resample, as the per-resample path (``srcc``, ``krcc``, ``fit_logistic``, ``plcc_rmse``
on the expanded sample) defines them:

* fewer than 3 drawn items: every figure ``nan``;
* SRCC / KRCC: :mod:`._ranks` (``nan`` where a variable is constant);
* PLCC / RMSE: the logistic of :func:`._varpro.fit_centred`, started from the full-sample fit (the
  point estimate's, ``fit_logistic``) in its standardised units. It is used when it meets the
  convergence rule within :data:`RULE`'s budget; otherwise the straight line is — the rule of
  ``fit_logistic``, which falls back to the line when ``curve_fit`` does not converge. Where the
  full-sample fit is itself the line (``curve_fit`` did not converge, or too few items or a
  constant variable), every resample uses the line too, so that point and resamples share one
  outcome. The line is also used with fewer than 6 items or a constant variable, and when the
  logistic fits worse than the line. Each resample's outcome is recorded (``FIT_*``).
  PLCC is ``sqrt(1 - E / S_yy)`` and RMSE ``sqrt(E / n)`` for the fitted curve's squared error
  ``E``: for a least-squares fit whose linear parameters are optimal (the logistic here and the
  line) the Pearson correlation of the prediction and ``y`` equals that.

Every set goes through the same code a block of resamples at a time; the logistic fits of all
sets are queued and fitted together, rows of similar length in one batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from ._fit import LogisticFit
from ._ranks import (
    SpearmanForms,
    pair_matrices,
    rank_order,
    rank_table,
    spearman_forms,
    spearman_from_counts,
    spearman_from_ranks,
    tau_b_from_counts,
    weighted_spearman,
)
from ._rows import Groups, LineStats, Rows, compress, draw_counts, line_stats, varies
from ._varpro import CONVERGED, FitRule, curvature, fit_buffer

__all__ = ["SetData", "SetSamples", "draw_counts", "resample_figures", "RULE", "FIT_NONE", "FIT_LOGISTIC",
           "FIT_FEW", "FIT_NOT_CONVERGED", "FIT_WORSE", "FIT_POINT_LINE", "FIT_OUTCOMES"]

#: The stopping rule of every resample's logistic fit.
RULE = FitRule()
#: Outcome of a resample's PLCC/RMSE: no figure (fewer than 3 items), the logistic, or the line
#: because of too few items or a constant variable, no convergence within the budget (or a
#: non-finite fit), a logistic worse than the line, or a full-sample fit that is the line itself.
FIT_NONE, FIT_LOGISTIC, FIT_FEW, FIT_NOT_CONVERGED, FIT_WORSE, FIT_POINT_LINE = -1, 0, 1, 2, 3, 4
#: What each ``FIT_*`` code means (reports and tests).
FIT_OUTCOMES = {
    FIT_NONE: "fewer than 3 items: no PLCC/RMSE",
    FIT_LOGISTIC: "the logistic fit, converged",
    FIT_FEW: "line: fewer than 6 items or a constant variable",
    FIT_NOT_CONVERGED: "line: the logistic fit did not converge within its budget",
    FIT_WORSE: "line: the logistic fitted worse than the line",
    FIT_POINT_LINE: "line: the full-sample fit is the line",
}
#: Resamples x items per block (the full item lists before compression), and drawn items per
#: batch of logistic fits.
BLOCK_ELEMENTS = 1 << 19
FIT_ELEMENTS = 1 << 19
#: Rows of a block are queued in groups of about this many, sorted by length (less padding).
CHUNK_ROWS = 128
#: Steps of a batch of fits before its slow rows are set aside to finish together.
PAUSE_AFTER = 12
#: Spearman's cubic forms (``G^3``, where ``G^2 <= n``) or rank tables (``G x n``), and Kendall's
#: group quadratic forms up to these sizes; beyond, ranks from cumulative sums and
#: ``scipy.stats.kendalltau`` per resample.
MAX_TABLE = 1 << 22
MAX_TAU_GROUPS = 1500
MAX_TAU_CELLS = 1 << 25


@dataclass(frozen=True)
class SetData:
    """One set: predictions ``s``, scores ``y``, group codes and the full-sample fit to start from.

    The group codes ``group`` lie in ``[0, n_groups)``; the fit is ``None`` or a straight line
    (then every resample uses the line).
    """

    s: np.ndarray
    y: np.ndarray
    group: np.ndarray
    n_groups: int
    warm: LogisticFit | None


@dataclass
class SetSamples:
    """Per-resample figures of one set and the outcome of each resample's fit (``FIT_*`` codes)."""

    samples: dict[str, np.ndarray]
    fit: np.ndarray


@dataclass
class _Set:
    """A set in progress: constants, and per resample its line statistics and best logistic error."""

    data: SetData
    groups: Groups
    tables: tuple[np.ndarray, np.ndarray] | SpearmanForms | None
    warm: tuple[float, float, np.ndarray, np.ndarray] | None
    out: SetSamples
    stats: np.ndarray = field(init=False)
    best: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        b = self.out.fit.size
        self.stats = np.full((b, 6), np.nan)  # n, syy, sxy, line_sse, s varies, y varies
        self.best = np.full(b, np.inf)


def _start(d: SetData, b: int, figures: tuple[str, ...]) -> _Set:
    tables: tuple[np.ndarray, np.ndarray] | SpearmanForms | None = None
    if "srcc" in figures and d.n_groups ** 2 <= d.s.size and d.n_groups ** 3 <= MAX_TABLE:
        tables = spearman_forms(d.s, d.y, d.group, d.n_groups)
    elif "srcc" in figures and d.n_groups * d.s.size <= MAX_TABLE:
        tables = (rank_table(d.s, d.group, d.n_groups), rank_table(d.y, d.group, d.n_groups))
    warm = None
    if d.warm is not None and d.warm.method == "logistic":
        mu, sd = d.warm.z_scale
        theta = np.array(d.warm.z_params[1:3], dtype=np.float64)
        line = line_stats(d.s[None], d.y[None], np.ones((1, d.s.size)))
        at = theta - [0.0, (line.s_mean[0] - mu) / sd]
        warm = (float(mu), float(sd), theta, curvature(line.sc[0] / sd, line.res[0], at))
    out = SetSamples({f: np.full(b, np.nan) for f in figures}, np.full(b, FIT_NONE, dtype=np.int8))
    return _Set(d, Groups.of(d.group, d.n_groups), tables, warm, out)


def _spearman(st: _Set, counts: np.ndarray, rows: Rows) -> np.ndarray:
    if isinstance(st.tables, SpearmanForms):
        return spearman_from_counts(counts, st.tables)
    if st.tables is not None:
        c = counts.astype(np.float64)
        ranks = [np.take_along_axis(c @ t, rows.idx, axis=1) + 0.5 for t in st.tables]
        return spearman_from_ranks(rows.w, ranks[0], ranks[1])
    d = st.data
    w = counts[:, d.group].astype(np.float64)
    orders = []
    for v in (d.s, d.y):
        r = rank_order(v, v.size)
        orders.append(tuple(np.broadcast_to(a, w.shape) for a in (r.order, r.first, r.last, r.back)))
    return weighted_spearman(w, orders[0], orders[1])


def _kendall(d: SetData, counts: np.ndarray) -> np.ndarray:
    sizes = np.bincount(d.group, minlength=d.n_groups)
    if d.n_groups <= MAX_TAU_GROUPS and d.n_groups * (int(sizes.max()) + 1) ** 2 <= MAX_TAU_CELLS:
        return tau_b_from_counts(counts, sizes, pair_matrices(d.s, d.y, d.group, d.n_groups))
    out = np.full(counts.shape[0], np.nan)
    for b, c in enumerate(counts):
        w = c[d.group]
        if w.sum() >= 3:
            out[b] = stats.kendalltau(np.repeat(d.s, w), np.repeat(d.y, w), variant="b").statistic
    return out


@dataclass(frozen=True)
class _Job:
    """Logistic fits of some resamples of one set: centred rows and their starts (``fit_centred``).

    For resumed rows it also holds the steps spent and the damping reached.
    """

    set_index: int
    resamples: np.ndarray
    zc: np.ndarray
    yt: np.ndarray
    w: np.ndarray
    start: np.ndarray
    spent: np.ndarray | None = None
    lam: np.ndarray | None = None
    corr: np.ndarray | None = None


def _batch(jobs: list[_Job]) -> tuple[np.ndarray, np.ndarray]:
    """The jobs' rows in one ``fit_buffer`` buffer (``zc``, ``yt`` in planes 4, 5) and their weights.

    Rows are padded with weight 0 to the longest row.
    """
    width = max(j.zc.shape[1] for j in jobs)
    size = sum(j.resamples.size for j in jobs)
    buf, w = np.empty((6, size, width)), np.zeros((size, width))
    lo = 0
    for j in jobs:
        sl, m = slice(lo, lo + j.resamples.size), j.zc.shape[1]
        buf[4, sl, :m], buf[5, sl, :m], w[sl, :m] = j.zc, j.yt, j.w
        buf[4:, sl, m:] = 0.0
        lo = sl.stop
    return buf, w


@dataclass
class _Queue:
    """Logistic fits waiting for a batch, per class of row length (4 % wide).

    A batch runs :data:`PAUSE_AFTER` steps; its rows still iterating then wait in ``tail`` for one
    last batch.
    """

    sets: list[_Set]
    waiting: dict[int, list[_Job]] = field(default_factory=dict)
    tail: dict[int, list[_Job]] = field(default_factory=dict)

    def add(self, job: _Job) -> None:
        key = int(np.ceil(np.log(job.zc.shape[1]) / np.log(1.04)))
        jobs = self.waiting.setdefault(key, [])
        jobs.append(job)
        if sum(j.zc.size for j in jobs) >= FIT_ELEMENTS:
            self._fit(self.waiting.pop(key), PAUSE_AFTER)

    def flush(self) -> None:
        for key in list(self.waiting):
            self._fit(self.waiting.pop(key), PAUSE_AFTER)
        for key in list(self.tail):
            self._fit(self.tail.pop(key), None)

    def _fit(self, jobs: list[_Job], pause: int | None) -> None:
        buf, w = _batch(jobs)
        size, width = w.shape
        spent = np.concatenate([j.spent if j.spent is not None else np.zeros(j.resamples.size, np.int64) for j in jobs])
        lam = np.concatenate([j.lam if j.lam is not None else np.full(j.resamples.size, RULE.lam0) for j in jobs])
        corr = np.concatenate([j.corr if j.corr is not None else np.zeros((j.resamples.size, 2, 2)) for j in jobs])
        got = fit_buffer(buf, w, np.concatenate([j.start for j in jobs]), RULE, spent=spent, lam=lam, pause=pause,
                         corr=corr)
        paused = got.paused(RULE) & np.isfinite(got.sse) if pause is not None else np.zeros(size, dtype=bool)
        sse = np.where((got.status == CONVERGED) & np.isfinite(got.sse) & np.isfinite(got.b1), got.sse, np.inf)
        lo = 0
        for j in jobs:
            sl = slice(lo, lo + j.resamples.size)
            best = self.sets[j.set_index].best
            best[j.resamples] = np.minimum(best[j.resamples], sse[sl])
            p = np.flatnonzero(paused[sl]) + lo
            if p.size:  # rows of all sets resume together, in classes of a factor 2 in length
                self.tail.setdefault(int(np.log2(width)), []).append(_Job(
                    j.set_index, j.resamples[p - lo], buf[4, p], buf[5, p], w[p], got.theta[p], got.iterations[p],
                    got.lam[p]))
            lo = sl.stop


def _queue_fits(q: _Queue, k: int, b: np.ndarray, rows: Rows, line: LineStats) -> None:
    """Queue the logistic fits of the resamples ``b``, started from the full-sample fit.

    The start is in the fit's standardised units (``z = (s - mu) / sd``; ``theta``'s ``b3`` is
    taken relative to the mean).
    """
    st = q.sets[k]
    if st.warm is None:
        raise RuntimeError("a resample fit needs the full-sample fit of its set first")
    mu, sd, theta, corr = st.warm
    start = np.stack([np.full(b.size, theta[0]), theta[1] - (line.s_mean - mu) / sd], axis=1)
    q.add(_Job(k, b, line.sc / sd, line.res, rows.w, start, corr=np.broadcast_to(corr, (b.size, 2, 2))))


def _block(q: _Queue, k: int, lo: int, counts: np.ndarray) -> None:
    """Rank figures and line statistics of a block of resamples of set ``k``; queue its fits."""
    st = q.sets[k]
    d = st.data
    b = np.arange(lo, lo + counts.shape[0])
    n = counts @ np.bincount(d.group, minlength=d.n_groups)
    keep = n >= 3
    if not keep.any():
        return
    b, counts = b[keep], counts[keep]
    sv, yv = varies(counts, d.s, d.group, d.n_groups), varies(counts, d.y, d.group, d.n_groups)
    rows = compress(counts, st.groups)
    if "srcc" in st.out.samples:
        st.out.samples["srcc"][b] = np.where(sv & yv, _spearman(st, counts, rows), np.nan)
    if "plcc" in st.out.samples or "rmse" in st.out.samples:
        line = line_stats(d.s[rows.idx], d.y[rows.idx], rows.w)
        st.stats[b] = np.stack([line.n, line.syy, line.sxy, line.line_sse, sv, yv], axis=1)
        fit = (line.n >= 6) & sv & yv
        st.out.fit[b] = np.where(fit, FIT_NOT_CONVERGED, FIT_FEW)
        if st.warm is None:  # the full sample itself fell back to the line: so does every resample
            st.out.fit[b[fit]] = FIT_POINT_LINE
            return
        sel = np.flatnonzero(fit)
        if sel.size:  # rows of similar length together, each group cut to its longest row
            widths = rows.widths()
            sel = sel[np.argsort(widths[sel], kind="stable")]
            for part in np.array_split(sel, max(1, sel.size // CHUNK_ROWS)):
                width = int(widths[part].max())
                _queue_fits(q, k, b[part], rows.take(part, width), line.take(part, width))


def _finish(st: _Set) -> None:
    """PLCC, RMSE and fit outcome of every resample of a set from its fits and line statistics."""
    n, syy, sxy, line_sse, sv, yv = st.stats.T
    fitted = st.out.fit == FIT_NOT_CONVERGED
    found = fitted & np.isfinite(st.best)
    worse = found & (st.best > line_sse * (1 + 1e-9))
    st.out.fit[found & ~worse] = FIT_LOGISTIC
    st.out.fit[worse] = FIT_WORSE
    logistic = st.out.fit == FIT_LOGISTIC
    sse = np.where(logistic, st.best, line_sse)
    flat = ~logistic & ((sxy == 0) | (sv == 0))  # a horizontal line: the prediction is constant
    with np.errstate(invalid="ignore", divide="ignore"):
        plcc = np.where((yv == 1) & ~flat, np.sqrt(np.clip(1.0 - sse / syy, 0.0, 1.0)), np.nan)
        rmse = np.sqrt(sse / n)
    for f, v in (("plcc", plcc), ("rmse", rmse)):
        if f in st.out.samples:
            st.out.samples[f] = v


def resample_figures(sets: list[SetData], counts: list[np.ndarray], figures: tuple[str, ...]) -> list[SetSamples]:
    """Per-resample figures of every set (``counts[k]``: its resamples' group counts; module doc).

    Args:
        sets: the sets.
        counts: ``[B_k, G_k]`` group counts of set ``k``'s resamples.
        figures: any of ``srcc, krcc, plcc, rmse``.

    Returns:
        One :class:`SetSamples` per set.
    """
    with threadpool_limits(limits=1, user_api="blas"):  # small products: threads would only wait
        return _resample_figures(sets, counts, figures)


def _resample_figures(sets: list[SetData], counts: list[np.ndarray], figures: tuple[str, ...]) -> list[SetSamples]:
    q = _Queue([_start(d, c.shape[0], figures) for d, c in zip(sets, counts, strict=True)])
    for k, (d, c) in enumerate(zip(sets, counts, strict=True)):
        per = max(1, BLOCK_ELEMENTS // d.s.size)
        for lo in range(0, c.shape[0], per):
            _block(q, k, lo, c[lo:lo + per])
        if "krcc" in figures:
            n = c @ np.bincount(d.group, minlength=d.n_groups)
            q.sets[k].out.samples["krcc"] = np.where(n >= 3, _kendall(d, c), np.nan)
    q.flush()
    for st in q.sets:
        if "plcc" in figures or "rmse" in figures:
            _finish(st)
    return [st.out for st in q.sets]
