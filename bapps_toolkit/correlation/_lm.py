"""The 5-parameter logistic fitted to many weighted data sets at once (batched Levenberg–Marquardt).

Each row ``a`` is one least-squares problem ``min_b sum_i w[a, i] (q(z[a, i]; b) - y[a, i])^2`` with
``q(z; b) = b1 (1/2 - 1/(1 + exp(b2 (z - b3)))) + b4 z + b5`` (the VQEG logistic). A bootstrap
resample is a row whose weights count how often each item was drawn, so the resample is never
materialised. Input: ``z`` standardised predictions, any real ``y``; weights >= 0.

Method (Marquardt 1963, with the damping update of Nielsen 1999): the normal equations
``(J'WJ + lam diag(J'WJ)) d = -J'Wr`` are solved for every active row at once; a step is taken
when it lowers the weighted squared error. ``J'WJ``, ``J'Wr`` and the error come from the weighted
Gram matrix of the model's basis ``[u, dg (z - b3), dg, z, 1]`` (``u = 1/2 - 1/(1 + e)``,
``dg = e / (1 + e)^2``) and ``y`` — three varying basis functions per item and iteration, the
sums over ``z``, ``1`` and ``y`` computed once per row. Rows that have converged leave the batch.

**Convergence rule** (the same for every row, in the spirit of MINPACK's ``lmder``): after an
accepted step, converged when both the actual and the predicted relative reductions of the error
are at most ``ftol``; after any step, when the step is at most ``xtol (|b| + xtol)``, or when the
largest cosine between the residual and a column of ``J`` is at most ``gtol``. A row that meets
none of them within ``max_iter`` evaluations is **not converged**: it keeps its best iterate and is
flagged, never dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BatchFit", "LMRule", "fit_logistic_rows"]


@dataclass(frozen=True)
class LMRule:
    """Stopping rule of :func:`fit_logistic_rows` (module doc); identical for every row."""

    max_iter: int = 100
    ftol: float = 1e-10
    xtol: float = 1e-10
    gtol: float = 1e-10
    lam0: float = 1e-5


@dataclass(frozen=True)
class BatchFit:
    """Per-row result: ``params`` ``[R, 5]`` (in the units of ``z``), the weighted squared error
    ``sse`` ``[R]``, ``converged`` ``[R]`` (bool) and the number of model evaluations ``iterations``."""

    params: np.ndarray
    sse: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray


@dataclass
class _State:
    """Normal equations of the active rows at their current parameters."""

    sse: np.ndarray
    normal: np.ndarray
    grad: np.ndarray


def _constants(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``[A, 6]``: the weighted sums of ``z^2, z, 1, z y, y, y^2`` of each row (fixed per row)."""
    wz, wy = w * z, w * y
    return np.stack([np.einsum("am,am->a", wz, z), wz.sum(1), w.sum(1), np.einsum("am,am->a", wz, y),
                     wy.sum(1), np.einsum("am,am->a", wy, y)], axis=1)


def _evaluate(p: np.ndarray, planes: np.ndarray, w: np.ndarray, k: np.ndarray) -> _State:
    """Error, ``J'WJ`` and ``J'Wr`` at ``p``. ``planes`` ``[A, 6, m]`` holds ``z, 1, y`` in its last
    three planes; the first three receive the varying basis. ``k``: the constants of the rows."""
    b1, b2, b3, b4, b5 = (p[:, j] for j in range(5))
    a = p.shape[0]
    z = planes[:, 3]
    zc = z - b3[:, None]
    g = np.multiply(b2[:, None], zc)
    with np.errstate(over="ignore"):
        np.exp(g, out=g)
    g += 1.0
    np.reciprocal(g, out=g)  # 1 / (1 + exp(.)), in [0, 1]
    np.subtract(0.5, g, out=planes[:, 0])
    np.multiply(g, g, out=planes[:, 2])
    np.subtract(g, planes[:, 2], out=planes[:, 2])  # dg = g (1 - g) = e / (1 + e)^2
    np.multiply(planes[:, 2], zc, out=planes[:, 1])
    weighted = np.empty_like(planes[:, :3])
    for j in range(3):
        np.multiply(planes[:, j], w, out=weighted[:, j])
    sums = weighted @ planes.transpose(0, 2, 1)  # [A, 3, 6]: sums of basis x (basis, z, 1, y)
    full = np.empty((a, 5, 5))
    full[:, :3, :] = sums[:, :, :5]
    full[:, 3:, :3] = sums[:, :, 3:5].transpose(0, 2, 1)
    full[:, 3, 3], full[:, 3, 4], full[:, 4, 3], full[:, 4, 4] = k[:, 0], k[:, 1], k[:, 1], k[:, 2]
    lin = np.zeros((a, 5))
    lin[:, 0], lin[:, 3], lin[:, 4] = b1, b4, b5
    my = np.concatenate([sums[:, :, 5], k[:, 3:5]], axis=1)  # M'Wy
    mr = np.einsum("akl,al->ak", full, lin) - my  # M'Wr
    r = np.multiply(planes[:, 0], b1[:, None])
    r += np.multiply(z, b4[:, None], out=zc)
    r += b5[:, None]
    r -= planes[:, 5]
    sse = np.einsum("am,am->a", np.multiply(r, w, out=zc), r)  # direct: no cancellation near a perfect fit
    scale = np.ones((a, 5))
    scale[:, 1], scale[:, 2] = b1, -b1 * b2
    normal = full * scale[:, :, None] * scale[:, None, :]
    return _State(np.maximum(sse, 0.0), normal, mr * scale)


def _step(st: _State, lam: np.ndarray) -> np.ndarray:
    """The damped Gauss–Newton step of every row (least squares where the system is singular)."""
    d = np.diagonal(st.normal, axis1=1, axis2=2)
    floor = 1e-12 * d.max(axis=1, keepdims=True) + 1e-300
    mat = st.normal + np.eye(5) * (lam[:, None] * np.maximum(d, floor))[:, :, None]
    rhs = -st.grad
    ok = np.all(np.isfinite(mat), axis=(1, 2)) & np.all(np.isfinite(rhs), axis=1)
    out = np.zeros_like(rhs)
    try:
        out[ok] = np.linalg.solve(mat[ok], rhs[ok][:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        for i in np.flatnonzero(ok):
            out[i] = np.linalg.lstsq(mat[i], rhs[i], rcond=None)[0]
    return out


def _take(st: _State, keep: np.ndarray) -> _State:
    return _State(st.sse[keep], st.normal[keep], st.grad[keep])


def fit_logistic_rows(z: np.ndarray, y: np.ndarray, w: np.ndarray, p0: np.ndarray,
                      rule: LMRule = LMRule()) -> BatchFit:
    """Fit every row of ``z, y, w`` (``[R, m]``, weights >= 0) from its start ``p0`` ``[R, 5]``.

    Args:
        z: predictions of each row in standardised units.
        y: subjective scores of each row.
        w: non-negative weights (bootstrap counts; 0 leaves an item out).
        p0: start of each row.
        rule: the stopping rule (module doc).

    Returns:
        :class:`BatchFit` with one entry per row.
    """
    n_rows = p0.shape[0]
    p = np.array(p0, dtype=np.float64)
    it = np.zeros(n_rows, dtype=np.int64)
    conv = np.zeros(n_rows, dtype=bool)
    sse_out = np.full(n_rows, np.nan)
    rows = np.arange(n_rows)
    z, y, w = (np.asarray(v, dtype=np.float64) for v in (z, y, w))
    total = w.sum(1)
    shift = np.einsum("am,am->a", w, y) / np.where(total > 0, total, 1.0)  # b5 absorbs it; sums stay small
    y = y - shift[:, None]
    p[:, 4] -= shift
    k = _constants(z, y, w)
    planes = np.empty((n_rows, 6, z.shape[1]))
    planes[:, 3], planes[:, 4], planes[:, 5] = z, 1.0, y
    st = _evaluate(p, planes, w, k)
    lam, nu = np.full(n_rows, rule.lam0), np.full(n_rows, 2.0)
    live = np.isfinite(st.sse)
    for _ in range(rule.max_iter):
        if not live.all():
            sse_out[rows[~live]] = st.sse[~live]
            rows, planes, w, k, p_act = rows[live], planes[live], w[live], k[live], p[rows[live]]
            st, lam, nu = _take(st, live), lam[live], nu[live]
        else:
            p_act = p[rows]
        if rows.size == 0:
            break
        delta = _step(st, lam)
        trial = _evaluate(p_act + delta, planes, w, k)
        it[rows] += 1
        pred = -(2 * np.einsum("ak,ak->a", delta, st.grad) + np.einsum("ak,akl,al->a", delta, st.normal, delta))
        actual = st.sse - trial.sse
        ok = np.isfinite(trial.sse) & np.all(np.isfinite(trial.normal), axis=(1, 2)) & (actual > 0)
        rho = np.where(ok & (pred > 0), actual / np.where(pred > 0, pred, 1.0), 0.0)
        f_small = ok & (actual <= rule.ftol * st.sse) & (pred <= rule.ftol * st.sse)
        p[rows[ok]] = p_act[ok] + delta[ok]
        st.sse[ok], st.normal[ok], st.grad[ok] = trial.sse[ok], trial.normal[ok], trial.grad[ok]
        lam = np.where(ok, lam * np.maximum(1 / 3, 1 - (2 * rho - 1) ** 3), lam * nu)
        nu = np.where(ok, 2.0, nu * 2)
        x_small = np.linalg.norm(delta, axis=1) <= rule.xtol * (np.linalg.norm(p[rows], axis=1) + rule.xtol)
        diag = np.diagonal(st.normal, axis1=1, axis2=2)
        cosine = np.max(np.abs(st.grad) / np.sqrt(np.maximum(diag * st.sse[:, None], 1e-300)), axis=1)
        done = f_small | x_small | (cosine <= rule.gtol) | (st.sse == 0)
        conv[rows[done]] = True
        live = ~done
    sse_out[rows] = st.sse
    p[:, 4] += shift
    return BatchFit(p, sse_out, conv, it)
