"""The 5-parameter logistic fitted to many weighted data sets at once, by variable projection.

Each row ``a`` is one least-squares problem ``min_b sum_i w[a, i] (q(z[a, i]; b) - y[a, i])^2`` with
``q(z; b) = b1 u(z; b2, b3) + b4 z + b5`` and ``u = 1/2 - 1/(1 + exp(b2 (z - b3)))`` (the VQEG
logistic; ``u = tanh(b2 (z - b3) / 2) / 2``). A bootstrap resample is a row whose weights count how
often each item was drawn (items not drawn are left out of the row). Weights >= 0.

**Variable projection** (Golub & Pereyra 1973; the Jacobian of Kaufman 1975): ``b1, b4, b5``
enter linearly, so for fixed ``theta = (b2, b3)`` they are the weighted least-squares solution,
in closed form: with ``~`` the residual after the weighted line on ``(1, z)``,
``b1 = <u~, y~> / <u~, u~>`` and the error is ``E(theta) = E_line - <u~, y~>^2 / <u~, u~>``.
Levenberg–Marquardt (Marquardt's scaling, Nielsen's damping update) runs on ``theta`` alone, for
every row at once, its Gauss–Newton matrix corrected by a structured secant update (the residuals'
curvature, which Gauss–Newton leaves out, learnt from the steps taken: Dennis, Gay & Welsch's
NL2SOL idea) wherever the corrected matrix stays positive definite. ``E``, its exact gradient and
the Gauss–Newton matrix come from the weighted sums of ``tanh, tanh^2, tanh^2 z`` against
themselves and ``1, z, y`` — one ``tanh`` per item and evaluation (:mod:`._projection`). The
minimiser is that of the full 5-parameter problem (the linear parameters are optimal for every
``theta``).

**Precision.** Plain sums cancel when ``u`` is nearly constant or nearly linear in ``z`` (the
logistic turning into an exponential or a cubic, ``b1`` growing without bound). A row whose
projected ``tanh`` keeps less than :data:`EXACT_BELOW` of its second moment is summed from then on
with residuals formed item by item on both sides of every sum, which keeps ``E`` accurate.

**Outcome of a row** (the same test for every row, at the tolerances of MINPACK's ``lmder`` as
``scipy.optimize.curve_fit`` uses them):

* :data:`CONVERGED` — the reduction of ``E`` that the undamped model step predicts is at most
  ``ftol`` relative to ``E`` (then no step is taken), or, after a step, the actual and the
  predicted relative reductions of ``E`` are both at most ``ftol`` (and their ratio at most 2), or
  the step is at most ``xtol`` relative to ``theta``, or the gradient vanishes;
* :data:`NOT_CONVERGED` — none of these within ``max_iter`` steps;
* :data:`NON_FINITE` — the error at the start is not finite.

Every row keeps its best iterate whatever the outcome; the caller decides what to use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._projection import EXACT_BELOW, Rows, State, state

__all__ = ["CONVERGED", "NOT_CONVERGED", "NON_FINITE", "FitRule", "RowFits", "CentredFits", "fit_rows",
           "fit_centred", "fit_buffer", "curvature"]

CONVERGED, NOT_CONVERGED, NON_FINITE = 0, 1, 2
#: The rows still iterating are copied into a smaller batch when they fall below this share of it,
#: or when more than this share of the plainly summed rows need exact sums.
COMPACT_BELOW = 0.7
COMPACT_EXACT = 0.2


@dataclass(frozen=True)
class FitRule:
    """Stopping rule of :func:`fit_rows` (module doc); the same for every row.

    Attributes:
        max_iter: Levenberg–Marquardt steps (each one evaluation) before a row is
            :data:`NOT_CONVERGED`.
        ftol: relative reduction of the error below which a step has converged (MINPACK's).
        xtol: relative step length below which a row has converged (MINPACK's).
        lam0: initial damping, relative to the diagonal of the Gauss–Newton matrix.
    """

    max_iter: int = 100
    ftol: float = 1.49012e-8
    xtol: float = 1.49012e-8
    lam0: float = 1e-3


@dataclass(frozen=True)
class CentredFits:
    """Per-row result of :func:`fit_centred`.

    It holds ``theta`` ``[R, 2]`` (``b2`` and ``b3`` less the mean of ``z``), ``b1``, the error
    ``sse``, ``status`` codes, ``iterations`` (including those spent before) and the damping ``lam``
    reached (to resume a paused row).
    """

    theta: np.ndarray
    b1: np.ndarray
    sse: np.ndarray
    status: np.ndarray
    iterations: np.ndarray
    lam: np.ndarray

    def paused(self, rule: FitRule) -> np.ndarray:
        """Rows neither converged nor out of budget (the iteration was paused)."""
        return np.asarray((self.status == NOT_CONVERGED) & (self.iterations < rule.max_iter))


@dataclass(frozen=True)
class RowFits:
    """Per-row result of :func:`fit_rows`.

    Attributes:
        params: ``[R, 5]`` ``(b1, ..., b5)`` in the units of ``z``.
        sse: ``[R]`` weighted squared error of ``params``, summed item by item.
        line_sse: ``[R]`` weighted squared error of the least-squares line.
        status: ``[R]`` outcome codes (module doc).
        iterations: ``[R]`` steps taken.
    """

    params: np.ndarray
    sse: np.ndarray
    line_sse: np.ndarray
    status: np.ndarray
    iterations: np.ndarray


def _model(st: State, corr: np.ndarray) -> np.ndarray:
    """The model matrix ``N + S`` of each row, or ``N`` where that is not positive definite.

    ``S`` is the secant correction.
    """
    m = st.normal + corr
    pd = (m[:, 0, 0] > 0) & (m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0] > 0)
    return np.where(pd[:, None, None], m, st.normal)


def _solve(m: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``m^-1 g`` for symmetric 2 x 2 ``m`` (``nan`` where singular)."""
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.stack([(m[:, 1, 1] * g[:, 0] - m[:, 0, 1] * g[:, 1]) / det,
                         (m[:, 0, 0] * g[:, 1] - m[:, 1, 0] * g[:, 0]) / det], axis=1)


def _step(st: State, model: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The damped step ``-(M + lam diag N)^-1 g`` of every row (Marquardt's scaling by ``N``)."""
    d = np.diagonal(st.normal, axis1=1, axis2=2)
    d = np.maximum(d, 1e-12 * d.max(axis=1, keepdims=True) + 1e-300)
    damped = model.copy()
    damped[:, 0, 0] += lam * d[:, 0]
    damped[:, 1, 1] += lam * d[:, 1]
    step = -_solve(damped, st.grad)
    return np.where(np.isfinite(step), step, 0.0)


def _newton_decrement(st: State, model: np.ndarray) -> np.ndarray:
    """``g' M^-1 g``: the reduction of the error the undamped model step predicts.

    It is ``inf`` where ``M`` is singular.
    """
    dec = np.einsum("ak,ak->a", st.grad, _solve(model, st.grad))
    return np.where(np.isfinite(dec) & (dec >= 0), dec, np.inf)


def _secant(corr: np.ndarray, st: State, trial: State, delta: np.ndarray, ok: np.ndarray) -> None:
    """Symmetric rank-one update of the secant correction ``S`` of the accepted rows.

    It makes ``(N_new + S) delta`` match the change of the gradient (the structured secant condition
    of Dennis, Gay & Welsch 1981): the Gauss–Newton matrix leaves out the residuals' curvature,
    which slows it on problems whose error stays large (noisy scores).
    """
    y_sharp = trial.grad - st.grad - np.einsum("akl,al->ak", trial.normal, delta)
    r = y_sharp - np.einsum("akl,al->ak", corr, delta)
    den = np.einsum("ak,ak->a", r, delta)
    use = ok & (np.abs(den) > 1e-8 * np.linalg.norm(r, axis=1) * np.linalg.norm(delta, axis=1))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        upd = r[:, :, None] * r[:, None, :] / den[:, None, None]
    use &= np.all(np.isfinite(upd), axis=(1, 2))
    corr[use] += upd[use]


def _tests(st: State, trial: State, delta: np.ndarray, pred: np.ndarray, rule: FitRule
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(accepted, converged)`` of each row's step (MINPACK's tests, module doc).

    ``pred`` is the reduction of the error the Gauss–Newton model predicts for ``delta``.
    """
    actual = st.sse - trial.sse
    ok = np.isfinite(trial.sse) & np.all(np.isfinite(trial.grad), axis=1) & (actual > 0)
    ratio = np.where(pred > 0, actual / np.where(pred > 0, pred, 1.0), 0.0)
    f_small = (np.abs(actual) <= rule.ftol * st.sse) & (pred <= rule.ftol * st.sse) & (ratio <= 2)
    x_small = np.linalg.norm(delta, axis=1) <= rule.xtol * (np.linalg.norm(st.theta, axis=1) + rule.xtol)
    return ok, f_small | x_small | np.all(st.grad == 0, axis=1)


def _lm_update(st: State, trial: State, pred: np.ndarray, ok: np.ndarray, lam: np.ndarray,
               nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nielsen's damping update: shrink ``lam`` after a good step, grow it geometrically after a bad one."""
    rho = np.where(ok, (st.sse - trial.sse) / np.maximum(pred, 1e-300), 0.0)
    lam = np.where(ok, lam * np.maximum(1 / 3, 1 - (2 * np.minimum(rho, 1.0) - 1) ** 3), np.minimum(lam * nu, 1e200))
    return lam, np.where(ok, 2.0, np.minimum(nu * 2, 1e20))


@dataclass
class _Loop:
    """The rows still iterating: their indices among all rows, rows, state and damping."""

    idx: np.ndarray
    rows: Rows
    st: State
    lam: np.ndarray
    nu: np.ndarray
    live: np.ndarray
    corr: np.ndarray

    def compact(self) -> None:
        """Keep the live rows, the ones summed exactly last (they stay that way)."""
        exact = self.st.kept < EXACT_BELOW
        plain, tail = np.flatnonzero(self.live & ~exact), np.flatnonzero(self.live & exact)
        keep = np.concatenate([plain, tail])
        self.idx, self.st, self.lam, self.nu = self.idx[keep], self.st.take(keep), self.lam[keep], self.nu[keep]
        self.corr = self.corr[keep]
        self.rows = self.rows.take(keep, plain.size)
        self.live = np.ones(keep.size, dtype=bool)


def _iterate(rows: Rows, st: State, rule: FitRule, spent: np.ndarray, lam: np.ndarray, pause: int | None,
             corr: np.ndarray) -> CentredFits:
    """Run the rule on every row (module doc), for at most ``pause`` steps."""
    total = st.sse.size
    out = CentredFits(st.theta.copy(), st.b1.copy(), st.sse.copy(), np.full(total, NOT_CONVERGED, dtype=np.int8),
                      spent.copy(), lam.copy())
    live = np.isfinite(st.sse) & np.isfinite(st.b1)
    out.status[~live] = NON_FINITE
    loop = _Loop(np.arange(total), rows, st, lam.copy(), np.full(total, 2.0), live & (spent < rule.max_iter),
                 corr.copy())
    for _ in range(rule.max_iter if pause is None else pause):
        moved = np.count_nonzero(loop.st.kept[:loop.rows.exact] < EXACT_BELOW)
        if loop.live.mean() < COMPACT_BELOW or moved > COMPACT_EXACT * loop.rows.exact:
            out.theta[loop.idx], out.b1[loop.idx], out.sse[loop.idx] = loop.st.theta, loop.st.b1, loop.st.sse
            out.lam[loop.idx] = loop.lam
            loop.compact()
        if loop.idx.size == 0:
            break
        st, live = loop.st, loop.live
        model = _model(st, loop.corr)
        flat = live & (_newton_decrement(st, model) <= rule.ftol * st.sse)
        out.status[loop.idx[flat]] = CONVERGED
        live &= ~flat & (out.iterations[loop.idx] < rule.max_iter)
        if not live.any():
            continue
        delta = np.where(live[:, None], _step(st, model, loop.lam), 0.0)
        trial = state(st.theta + delta, loop.rows)
        pred = -(2 * np.einsum("ak,ak->a", delta, st.grad) + np.einsum("ak,akl,al->a", delta, model, delta))
        ok, done = _tests(st, trial, delta, pred, rule)
        ok &= live
        loop.lam, loop.nu = _lm_update(st, trial, pred, ok, loop.lam, loop.nu)
        _secant(loop.corr, st, trial, delta, ok)
        st.put(ok, trial)
        out.iterations[loop.idx[live]] += 1
        out.status[loop.idx[live & done]] = CONVERGED
        live &= ~done
    out.theta[loop.idx], out.b1[loop.idx], out.sse[loop.idx], out.lam[loop.idx] = (
        loop.st.theta, loop.st.b1, loop.st.sse, loop.lam)
    return out


def fit_centred(zc: np.ndarray, yt: np.ndarray, w: np.ndarray, theta0: np.ndarray, rule: FitRule = FitRule(), *,
                spent: np.ndarray | None = None, lam: np.ndarray | None = None, pause: int | None = None,
                corr: np.ndarray | None = None) -> CentredFits:
    """Fit the logistic to rows already reduced to the residuals of their weighted line.

    Args:
        zc: ``[R, m]`` predictions less their weighted mean (standardised units are best conditioned).
        yt: ``[R, m]`` residuals of the weighted least-squares line of ``y`` on ``zc``.
        w: ``[R, m]`` non-negative weights, each row with a positive total and a non-constant ``zc``.
        theta0: ``[R, 2]`` start ``(b2, b3 - mean z)``.
        rule: the stopping rule (module doc).
        spent: steps each row has already taken (a resumed row keeps its budget); default 0.
        lam: each row's damping to start from; default ``rule.lam0``.
        pause: stop after this many steps; rows still iterating are :meth:`CentredFits.paused`.
        corr: ``[R, 2, 2]`` starting secant correction of each row (:func:`curvature`); default 0.

    Returns:
        :class:`CentredFits`; ``sse`` is the error the iteration computed (exact sums where needed).
    """
    buf = np.empty((6,) + zc.shape)
    buf[4], buf[5] = zc, yt
    return fit_buffer(buf, w, theta0, rule, spent=spent, lam=lam, pause=pause, corr=corr)


def fit_buffer(buf: np.ndarray, w: np.ndarray, theta0: np.ndarray, rule: FitRule = FitRule(), *,
               spent: np.ndarray | None = None, lam: np.ndarray | None = None, pause: int | None = None,
               corr: np.ndarray | None = None) -> CentredFits:
    """:func:`fit_centred` with ``zc`` and ``yt`` already in planes 4 and 5 of ``buf`` ``[6, R, m]``.

    Planes 0-3 are overwritten, 4 and 5 kept.
    """
    w = np.ascontiguousarray(w, dtype=np.float64)
    buf[3] = 1.0
    szz = np.einsum("am,am->a", w * buf[4], buf[4])
    line_sse = np.einsum("am,am->a", w * buf[5], buf[5])
    rows = Rows(w, buf, w.sum(1), szz, line_sse, buf.shape[1])
    theta = np.array(theta0, dtype=np.float64).reshape(-1, 2)
    spent = np.zeros(theta.shape[0], dtype=np.int64) if spent is None else np.asarray(spent, dtype=np.int64)
    lam = np.full(theta.shape[0], rule.lam0) if lam is None else np.asarray(lam, dtype=np.float64)
    corr = np.zeros((theta.shape[0], 2, 2)) if corr is None else np.asarray(corr, dtype=np.float64)
    # a trial step of a diverging row may overflow; every such value fails the isfinite tests of
    # the iteration (the step is rejected, the row ends NON_FINITE or keeps its last finite point)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _iterate(rows, state(theta, rows), rule, spent, lam, pause, corr)


def curvature(zc: np.ndarray, yt: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The secant correction ``S`` ``[2, 2]`` at ``theta`` of one unweighted centred row.

    It is computed by central differences of the exact gradient: the residuals' curvature that the
    Gauss–Newton matrix leaves out. Resamples of the same set, started at ``theta``, begin with it
    (``nan`` entries: 0).
    """
    theta = np.asarray(theta, dtype=np.float64)
    h = 1e-4 * (1.0 + np.abs(theta))
    at = np.stack([theta, theta + [h[0], 0], theta - [h[0], 0], theta + [0, h[1]], theta - [0, h[1]]])
    buf = np.empty((6, 5, zc.size))
    buf[3], buf[4], buf[5] = 1.0, zc, yt
    w = np.ones((5, zc.size))
    st = state(at, Rows(w, buf, w.sum(1), np.einsum("am,am->a", w * buf[4], buf[4]),
                        np.einsum("am,am->a", w * buf[5], buf[5]), 5))
    hess = np.stack([(st.grad[1] - st.grad[2]) / (2 * h[0]), (st.grad[3] - st.grad[4]) / (2 * h[1])], axis=1)
    corr = (hess + hess.T) / 2 - st.normal[0]
    return np.where(np.isfinite(corr), corr, 0.0)


def fit_rows(z: np.ndarray, y: np.ndarray, w: np.ndarray, theta0: np.ndarray, rule: FitRule = FitRule()) -> RowFits:
    """Fit the logistic to every row of ``z, y, w`` (``[R, m]``) from its start ``theta0 = (b2, b3)``.

    Args:
        z: predictions of each row (standardised units are best conditioned).
        y: subjective scores of each row.
        w: non-negative weights (bootstrap counts; 0 leaves an item out). Every row needs a
            positive total weight and a non-constant ``z`` among its weighted items.
        theta0: ``[R, 2]`` start of the nonlinear parameters ``(b2, b3)``.
        rule: the stopping rule (module doc).

    Returns:
        :class:`RowFits` with one entry per row.
    """
    z, y, w = (np.asarray(v, dtype=np.float64) for v in (z, y, w))
    n = w.sum(1)
    zm, ym = np.einsum("am,am->a", w, z) / n, np.einsum("am,am->a", w, y) / n
    zc = z - zm[:, None]
    slope = np.einsum("am,am->a", w * zc, y) / np.einsum("am,am->a", w * zc, zc)
    yt = y - ym[:, None] - slope[:, None] * zc
    theta = np.array(theta0, dtype=np.float64).reshape(-1, 2) - np.stack([np.zeros_like(zm), zm], axis=1)
    got = fit_centred(zc, yt, w, theta, rule)
    b1, b2, b3 = got.b1, got.theta[:, 0], got.theta[:, 1] + zm
    with np.errstate(invalid="ignore", over="ignore"):
        u = 0.5 * np.tanh(0.5 * b2[:, None] * (z - b3[:, None]))
        um = np.einsum("am,am->a", w, u) / n
        gamma = np.einsum("am,am->a", w * zc, u) / np.einsum("am,am->a", w * zc, zc)
        b4 = slope - b1 * gamma
        r = b1[:, None] * (u - um[:, None] - gamma[:, None] * zc) - yt
        sse = np.einsum("am,am->a", w * r, r)
    params = np.stack([b1, b2, b3, b4, ym - b1 * um - b4 * zm], axis=1)
    return RowFits(params, sse, np.einsum("am,am->a", w * yt, yt), got.status, got.iterations)
