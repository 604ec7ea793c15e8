"""Error, gradient and Gauss–Newton matrix of the variable-projection logistic fit, for many rows.

The item-wise part of :mod:`._varpro`: at ``theta = (b2, b3 - mean z)`` each row needs the weighted
sums of ``v = (tanh, tanh^2, tanh^2 zc)`` (``tanh`` of ``b2 (z - b3) / 2``) against themselves and
``1, zc, yt``, after projecting out the weighted line on ``(1, zc)``. They are formed a cache-sized
sub-block of rows at a time, one ``tanh`` per item, from plain sums — or, for rows where the plain
sums would cancel (the logistic nearly constant or nearly linear over the data), from residuals
formed item by item (:func:`_exact_gram`). Rows must be centred: ``sum w zc = 0`` and ``yt``
orthogonal to ``1`` and ``zc`` under the weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EXACT_BELOW", "SUB_ELEMENTS", "Rows", "State", "state"]

#: Rows whose plain sums keep less than this share of ``tanh``'s second moment are summed exactly.
EXACT_BELOW = 1e-4
#: Items per sub-block of the item-wise work (small enough to stay in the CPU caches).
SUB_ELEMENTS = 1 << 14

@dataclass
class Rows:
    """Rows in iteration, with their weights, buffer, sums and the line's error.

    That is: weights ``w`` ``[A, m]``, a plane-major buffer ``[6, A, m]`` (planes 3-5:
    ``1, zc, yt``; planes 0-2 receive ``v`` at each evaluation), the sums ``n``, ``szz`` and the
    line's error; rows from ``exact`` on are summed exactly.
    """

    w: np.ndarray
    buf: np.ndarray
    n: np.ndarray
    szz: np.ndarray
    line_sse: np.ndarray
    exact: int

    def take(self, keep: np.ndarray, exact: int) -> Rows:
        """The rows ``keep`` (indices), of which those from position ``exact`` on are summed exactly."""
        buf = np.empty((6, keep.size, self.w.shape[1]))
        buf[3] = 1.0
        buf[4:] = self.buf[4:, keep]
        return Rows(self.w[keep], buf, self.n[keep], self.szz[keep], self.line_sse[keep], exact)


@dataclass
class State:
    """Error, gradient and Gauss–Newton matrix of rows at ``theta = (b2, b3 - mean z)``."""

    theta: np.ndarray
    sse: np.ndarray
    grad: np.ndarray
    normal: np.ndarray
    b1: np.ndarray
    kept: np.ndarray

    def take(self, keep: np.ndarray) -> State:
        return State(self.theta[keep], self.sse[keep], self.grad[keep], self.normal[keep], self.b1[keep],
                      self.kept[keep])

    def put(self, ok: np.ndarray, other: State) -> None:
        for name in ("theta", "sse", "grad", "normal", "b1", "kept"):
            getattr(self, name)[ok] = getattr(other, name)[ok]


def _basis(theta: np.ndarray, rows: Rows, sl: slice) -> None:
    """Write ``v = (tanh, tanh^2, tanh^2 zc)`` at ``theta`` into planes 0-2 of the rows ``sl``.

    ``sech^2 = 1 - tanh^2`` and ``sech^2 zc`` differ from ``-tanh^2`` and ``-tanh^2 zc`` by ``1`` and
    ``zc``, which the projection on ``(1, zc)`` removes: their residuals are the negated ones.
    """
    tau, sq, sqz, zc = rows.buf[0, sl], rows.buf[1, sl], rows.buf[2, sl], rows.buf[4, sl]
    np.subtract(zc, theta[sl, 1, None], out=tau)
    tau *= 0.5 * theta[sl, 0, None]
    np.tanh(tau, out=tau)
    np.multiply(tau, tau, out=sq)
    np.multiply(sq, zc, out=sqz)


def _gram(theta: np.ndarray, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """``[A, 3, 4]`` Gram matrix of the residuals ``v~`` against ``v~`` and ``yt``, and a share.

    ``v~`` are the residuals of ``v`` after the weighted line on ``(1, zc)``; the share is that of
    ``tanh``'s second moment the plain sums keep (0 where the rows were summed exactly).
    """
    a, m = rows.w.shape
    gram, kept = np.empty((a, 3, 4)), np.ones(a)
    step = max(1, SUB_ELEMENTS // m)
    scratch = np.empty((3, min(step, a), m))
    for lo in range(0, a, step):
        sl = slice(lo, min(lo + step, a))
        _basis(theta, rows, sl)
        if lo >= rows.exact:
            gram[sl], kept[sl] = _exact_gram(rows, sl), 0.0
            continue
        if sl.stop > rows.exact:  # a sub-block across the boundary: its exact rows are redone below
            sl = slice(lo, rows.exact)
        weighted = np.multiply(rows.buf[:3, sl], rows.w[sl], out=scratch[:, :sl.stop - lo])
        sums = weighted.transpose(1, 0, 2) @ rows.buf[:, sl].transpose(1, 2, 0)
        ones, along = sums[:, :, 3], sums[:, :, 4]
        g = sums[:, :, :3] - ones[:, :, None] * ones[:, None, :] / rows.n[sl, None, None]
        g -= along[:, :, None] * along[:, None, :] / rows.szz[sl, None, None]
        gram[sl, :, :3], gram[sl, :, 3] = g, sums[:, :, 5]
        with np.errstate(divide="ignore", invalid="ignore"):
            kept[sl] = g[:, 0, 0] / sums[:, 0, 0]
    if rows.exact < a and rows.exact % step:
        sl = slice(rows.exact, min(a, (rows.exact // step + 1) * step))
        gram[sl], kept[sl] = _exact_gram(rows, sl), 0.0
    redo = np.flatnonzero(~(kept[:rows.exact] >= EXACT_BELOW))
    if redo.size:
        gram[redo] = _exact_gram(rows, redo)
        kept[redo] = 0.0
    return gram, kept


def _exact_gram(rows: Rows, sel: slice | np.ndarray) -> np.ndarray:
    """As the plain sums of :func:`_gram` for the rows ``sel``, computed so that nothing cancels.

    ``v~`` is formed item by item, with residuals on both sides of every sum.
    """
    buf, w = rows.buf[:, sel].transpose(1, 0, 2), rows.w[sel]
    var, fix = buf[:, :3], buf[:, 3:]
    wfix = fix[:, :2] * w[:, None, :]
    ones_along = var @ wfix.transpose(0, 2, 1)
    coef = np.stack([ones_along[:, :, 0] / rows.n[sel, None], ones_along[:, :, 1] / rows.szz[sel, None]], axis=2)
    res = var - coef @ fix[:, :2]
    weighted = res * w[:, None, :]
    gram = np.concatenate([weighted @ res.transpose(0, 2, 1), weighted @ fix[:, 2:].transpose(0, 2, 1)], axis=2)
    gram[:, :, :3] = (gram[:, :, :3] + gram[:, :, :3].transpose(0, 2, 1)) / 2
    return gram


def state(theta: np.ndarray, rows: Rows) -> State:
    """:class:`State` at ``theta`` (Kaufman's Gauss–Newton matrix; the gradient is exact)."""
    proj, kept = _gram(theta, rows)
    uu, uy = proj[:, 0, 0] / 4, proj[:, 0, 3] / 2  # u = tanh / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        b1 = uy / uu
    sse = rows.line_sse - uy * b1
    # d u / d b2 = (sech2 zc - c3 sech2) / 4 and d u / d b3 = -b2 sech2 / 4: project on (sech2, sech2 zc),
    # whose residuals are those of -tanh^2 and -tanh^2 zc
    c3, b2 = theta[:, 1], theta[:, 0]
    e_u, f_u = -proj[:, 1, 0] / 2, -proj[:, 2, 0] / 2  # <sech2~, u~>, <(sech2 zc)~, u~>
    e_y, f_y = -proj[:, 1, 3], -proj[:, 2, 3]
    ee, ef, ff = proj[:, 1, 1], proj[:, 1, 2], proj[:, 2, 2]
    du = np.stack([f_u - c3 * e_u, -b2 * e_u], axis=1) / 4
    dy = np.stack([f_y - c3 * e_y, -b2 * e_y], axis=1) / 4
    dd = np.empty((theta.shape[0], 2, 2))
    dd[:, 0, 0] = ff - 2 * c3 * ef + c3 * c3 * ee
    dd[:, 0, 1] = dd[:, 1, 0] = -b2 * (ef - c3 * ee)
    dd[:, 1, 1] = b2 * b2 * ee
    dd /= 16
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        normal = b1[:, None, None] ** 2 * (dd - du[:, :, None] * du[:, None, :] / uu[:, None, None])
        grad = b1[:, None] * (b1[:, None] * du - dy)
    return State(theta, sse, grad, normal, b1, kept)
