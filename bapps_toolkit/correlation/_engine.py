"""The four figures of every bootstrap resample of one or several sets, computed in batch.

A resample draws whole groups (reference images) with replacement; it is represented by its group
counts ``c`` ``[G]`` and so by item weights ``w = c[group]``. For each resample, exactly as the
per-resample path (``srcc``, ``krcc``, ``fit_logistic``, ``plcc_rmse`` on the expanded sample):

* fewer than 3 drawn items: every figure ``nan``;
* SRCC / KRCC: :mod:`._ranks` (``nan`` where a variable is constant);
* PLCC / RMSE: the logistic is fitted by :func:`._lm.fit_logistic_rows` — warm-started from the
  full-sample fit in its standardised units, or, where the full sample fell back to the straight
  line, from the two standard starts in the resample's own standardised units, the better one
  kept. The straight line is used instead when the resample has fewer than 6 items or a constant
  variable, when the fit is not finite, or when it fits worse than the line. A fit that does not
  converge keeps its best iterate and is counted in :attr:`SetSamples.n_not_converged`.

Several sets (the distortion types of a benchmark) go through the same pass: their items are
padded to a common length with weight 0, and rows are processed in blocks of bounded size.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ._fit import LogisticFit
from ._lm import LMRule, fit_logistic_rows
from ._ranks import pair_matrices, rank_order, tau_b_from_counts, weighted_spearman

__all__ = ["SetData", "SetSamples", "draw_counts", "resample_figures", "BLOCK_ELEMENTS", "RULE"]

#: Rows x items processed at once (memory: about 20 float64 arrays of this many elements).
BLOCK_ELEMENTS = 1 << 19
#: The stopping rule of every resample's logistic fit.
RULE = LMRule()
#: Kendall's tau-b through group quadratic forms up to this many groups (and grid cells); beyond,
#: per resample with ``scipy.stats.kendalltau`` on the expanded sample.
MAX_TAU_GROUPS = 1500
MAX_TAU_CELLS = 1 << 25


@dataclass(frozen=True)
class SetData:
    """One set: predictions ``s``, scores ``y``, group codes ``group`` in ``[0, n_groups)`` and the
    full-sample fit to warm-start from (``None`` or a straight line: cold starts)."""

    s: np.ndarray
    y: np.ndarray
    group: np.ndarray
    n_groups: int
    warm: LogisticFit | None


@dataclass
class SetSamples:
    """Per-resample figures of one set and how its logistic fits went."""

    samples: dict[str, np.ndarray]
    n_not_converged: int
    n_line: int
    n_fitted: int
    not_converged: np.ndarray


def draw_counts(n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n_groups]`` group counts; resample ``b`` draws ``n_groups`` groups uniformly with
    replacement, one ``rng.integers`` call per resample (``numpy.random.default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, n_groups), dtype=np.int64)
    for b in range(n_boot):
        out[b] = np.bincount(rng.integers(0, n_groups, size=n_groups), minlength=n_groups)
    return out


@dataclass(frozen=True)
class _Padded:
    """The sets padded to ``m`` items; padding belongs to group ``n_groups[p]`` (count 0)."""

    s: np.ndarray
    y: np.ndarray
    group: np.ndarray
    size: np.ndarray
    s_rank: tuple[np.ndarray, ...]
    y_rank: tuple[np.ndarray, ...]


def _pad(sets: list[SetData]) -> _Padded:
    m = max(d.s.size for d in sets)
    p = len(sets)
    s, y = np.zeros((p, m)), np.zeros((p, m))
    group = np.empty((p, m), dtype=np.int64)
    ranks: list[list[np.ndarray]] = [[], []]
    for k, d in enumerate(sets):
        n = d.s.size
        s[k, :n], y[k, :n] = d.s, d.y
        group[k, :n], group[k, n:] = d.group, d.n_groups
        for out, v in zip(ranks, (s[k], y[k]), strict=True):
            r = rank_order(v, n)
            out.append(np.stack([r.order, r.first, r.last, r.back]))
    size = np.array([d.s.size for d in sets])
    return _Padded(s, y, group, size, tuple(np.stack(ranks[0], 1)), tuple(np.stack(ranks[1], 1)))


def _line(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares line of each row: params ``[A, 5]`` (``b4, b5``) and its error."""
    n = w.sum(1)
    zm, ym = (w * z).sum(1) / n, (w * y).sum(1) / n
    dz, dy = z - zm[:, None], y - ym[:, None]
    szz, szy, syy = (w * dz * dz).sum(1), (w * dz * dy).sum(1), (w * dy * dy).sum(1)
    slope = np.where(szz > 0, szy / np.where(szz > 0, szz, 1.0), 0.0)
    p = np.zeros((z.shape[0], 5))
    p[:, 3], p[:, 4] = slope, ym - slope * zm
    return p, np.maximum(syy - slope * szy, 0.0)


def _cold_starts(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    """The two standard starts of ``fit_logistic`` for each row (``z`` already standardised)."""
    on = w > 0
    ymax, ymin = np.where(on, y, -np.inf).max(1), np.where(on, y, np.inf).min(1)
    n = w.sum(1)
    ym, zm = (w * y).sum(1) / n, (w * z).sum(1) / n
    r = (w * (z - zm[:, None]) * (y - ym[:, None])).sum(1)
    ones, zeros = np.ones_like(n), np.zeros_like(n)
    first = np.stack([ymax - ymin, np.where(r >= 0, 1.0, -1.0), zeros, zeros, ym], 1)
    second = np.stack([ymax, ymin, zm, 0.1 * ones, 0.1 * ones], 1)
    return [first, second]


def _fit_rows(z: np.ndarray, y: np.ndarray, w: np.ndarray, starts: list[np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best fit over ``starts`` for each row: ``(params, sse, converged)``."""
    best_p, best_sse, best_conv = None, None, None
    for p0 in starts:
        fit = fit_logistic_rows(z, y, w, p0, RULE)
        sse = np.where(np.isfinite(fit.sse) & np.all(np.isfinite(fit.params), 1), fit.sse, np.inf)
        if best_p is None or best_sse is None or best_conv is None:
            best_p, best_sse, best_conv = fit.params, sse, fit.converged
            continue
        better = sse < best_sse
        best_p = np.where(better[:, None], fit.params, best_p)
        best_sse, best_conv = np.where(better, sse, best_sse), np.where(better, fit.converged, best_conv)
    assert best_p is not None and best_sse is not None and best_conv is not None
    return best_p, best_sse, best_conv


def _plcc_rmse(z: np.ndarray, y: np.ndarray, w: np.ndarray, p: np.ndarray,
               y_varies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b1, b2, b3, b4, b5 = (p[:, j, None] for j in range(5))
    with np.errstate(over="ignore"):
        q = b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (z - b3)))) + b4 * z + b5
    n = w.sum(1)
    r = q - y
    rmse = np.sqrt(np.einsum("am,am->a", w * r, r) / n)
    on = w > 0
    q_varies = np.where(on, q, -np.inf).max(1) > np.where(on, q, np.inf).min(1)
    qc = q - ((w * q).sum(1) / n)[:, None]
    yc = y - ((w * y).sum(1) / n)[:, None]
    wq = w * qc
    with np.errstate(invalid="ignore", divide="ignore"):
        plcc = np.einsum("am,am->a", wq, yc) / np.sqrt(np.einsum("am,am->a", wq, qc)
                                                       * np.einsum("am,am->a", w * yc, yc))
    return np.where(q_varies & y_varies, np.clip(plcc, -1.0, 1.0), np.nan), rmse


@dataclass
class _Rows:
    """One block of rows: their set index, weights and per-item data."""

    pid: np.ndarray
    w: np.ndarray
    s: np.ndarray
    y: np.ndarray


def _standardise(rows: _Rows, warm: list[LogisticFit | None]) -> tuple[np.ndarray, np.ndarray]:
    """``z`` of each row (the warm fit's units, else the resample's own) and whether it is warm."""
    is_warm = np.array([warm[k] is not None for k in rows.pid])
    mu = np.array([warm[k].z_scale[0] if warm[k] is not None else 0.0 for k in rows.pid])
    sd = np.array([warm[k].z_scale[1] if warm[k] is not None else 1.0 for k in rows.pid])
    if not is_warm.all():
        n = rows.w.sum(1)
        own_mu = (rows.w * rows.s).sum(1) / n
        own_sd = np.sqrt((rows.w * (rows.s - own_mu[:, None]) ** 2).sum(1) / n)
        mu, sd = np.where(is_warm, mu, own_mu), np.where(is_warm, sd, own_sd)
    return (rows.s - mu[:, None]) / np.where(sd > 0, sd, 1.0)[:, None], is_warm


def _fit_block(rows: _Rows, warm: list[LogisticFit | None], eligible: np.ndarray,
               y_varies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(plcc, rmse, logistic used, not converged)`` of a block of rows."""
    z, is_warm = _standardise(rows, warm)
    params, line_sse = _line(z, rows.y, rows.w)
    used = np.zeros(z.shape[0], dtype=bool)
    failed = np.zeros(z.shape[0], dtype=bool)
    for mode in (True, False):
        sel = np.flatnonzero(eligible & (is_warm == mode))
        if sel.size == 0:
            continue
        zs, ys, ws = z[sel], rows.y[sel], rows.w[sel]
        if mode:
            starts = [np.array([warm[k].z_params for k in rows.pid[sel]])]
        else:
            starts = _cold_starts(zs, ys, ws)
        p, sse, conv = _fit_rows(zs, ys, ws, starts)
        take = np.isfinite(sse) & (sse <= line_sse[sel] * (1 + 1e-9))
        params[sel[take]] = p[take]
        used[sel[take]] = True
        failed[sel] = ~conv
    plcc, rmse = _plcc_rmse(z, rows.y, rows.w, params, y_varies)
    return plcc, rmse, used, failed


def _varies(counts: np.ndarray, v: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Whether ``v`` takes more than one value among the drawn items of each resample."""
    lo, hi = np.full(n_groups, np.inf), np.full(n_groups, -np.inf)
    np.minimum.at(lo, group, v)
    np.maximum.at(hi, group, v)
    on = counts > 0
    return np.where(on, hi, -np.inf).max(1) > np.where(on, lo, np.inf).min(1)


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


def _blocks(counts: list[np.ndarray], pad: _Padded) -> Iterator[tuple[np.ndarray, np.ndarray, _Rows]]:
    """Yield ``(set index array, resample index array, rows)`` in blocks of bounded size."""
    m = pad.s.shape[1]
    per = max(1, BLOCK_ELEMENTS // m)
    pid = np.concatenate([np.full(c.shape[0], k) for k, c in enumerate(counts)])
    bid = np.concatenate([np.arange(c.shape[0]) for c in counts])
    padded = [np.concatenate([c, np.zeros((c.shape[0], 1), dtype=c.dtype)], 1) for c in counts]
    for lo in range(0, pid.size, per):
        p, b = pid[lo:lo + per], bid[lo:lo + per]
        w = np.empty((p.size, m))
        for k in np.unique(p):
            on = p == k
            w[on] = padded[k][b[on]][:, pad.group[k]]
        yield p, b, _Rows(p, w, pad.s[p], pad.y[p])


def resample_figures(sets: list[SetData], counts: list[np.ndarray], figures: tuple[str, ...]) -> list[SetSamples]:
    """Per-resample figures of every set (``counts[k]``: its resamples' group counts; module doc)."""
    pad = _pad(sets)
    out = [SetSamples({f: np.full(c.shape[0], np.nan) for f in figures}, 0, 0, 0, np.zeros(c.shape[0], dtype=bool))
           for c in counts]
    sizes = [np.bincount(d.group, minlength=d.n_groups) for d in sets]
    n_items = [c @ z for c, z in zip(counts, sizes, strict=True)]
    s_var = [_varies(c, d.s, d.group, d.n_groups) for c, d in zip(counts, sets, strict=True)]
    y_var = [_varies(c, d.y, d.group, d.n_groups) for c, d in zip(counts, sets, strict=True)]
    if "krcc" in figures:
        for k, d in enumerate(sets):
            out[k].samples["krcc"] = np.where(n_items[k] >= 3, _kendall(d, counts[k]), np.nan)
    want_fit = "plcc" in figures or "rmse" in figures
    warm = [d.warm if d.warm is not None and d.warm.method == "logistic" else None for d in sets]
    for p, b, rows in _blocks(counts, pad):
        n = np.array([n_items[k][j] for k, j in zip(p, b, strict=True)])
        sv = np.array([s_var[k][j] for k, j in zip(p, b, strict=True)])
        yv = np.array([y_var[k][j] for k, j in zip(p, b, strict=True)])
        ok = n >= 3
        if "srcc" in figures:
            rho = weighted_spearman(rows.w, tuple(a[p] for a in pad.s_rank), tuple(a[p] for a in pad.y_rank))
            _scatter(out, "srcc", p, b, np.where(ok & sv & yv, rho, np.nan))
        if want_fit and ok.any():
            sub = _Rows(p[ok], rows.w[ok], rows.s[ok], rows.y[ok])
            plcc, rmse, used, failed = _fit_block(sub, warm, (n[ok] >= 6) & sv[ok] & yv[ok], yv[ok])
            for f, v in (("plcc", plcc), ("rmse", rmse)):
                if f in figures:
                    _scatter(out, f, p[ok], b[ok], v)
            for k in np.unique(p[ok]):
                on = p[ok] == k
                out[k].n_fitted += int(on.sum())
                out[k].n_line += int((~used[on]).sum())
                out[k].n_not_converged += int(failed[on].sum())
                out[k].not_converged[b[ok][on]] = failed[on]
    return out


def _scatter(out: list[SetSamples], figure: str, p: np.ndarray, b: np.ndarray, values: np.ndarray) -> None:
    for k in np.unique(p):
        on = p == k
        out[k].samples[figure][b[on]] = values[on]
