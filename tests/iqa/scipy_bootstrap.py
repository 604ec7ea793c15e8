"""The per-resample bootstrap of the correlation figures as it was before the batched engine:
one ``scipy`` call per resample and figure (``srcc``, ``krcc``, ``fit_logistic`` warm-started from
the full-sample fit, ``plcc_rmse``). A reference for tests and ``benchmarks/bench_correlation.py``;
it draws the same resamples as :func:`bapps_toolkit.correlation.bootstrap_correlation`."""
from __future__ import annotations

import warnings

import numpy as np

from bapps_toolkit.correlation import _fit as F


def reference_samples(s, y, groups, *, n_boot: int, seed: int, warm: bool = True) -> dict[str, np.ndarray]:
    """Per-resample ``srcc, krcc, plcc, rmse`` and ``failed`` (every curve_fit start raised or gave
    non-finite parameters, so the line was used) of the old loop; ``warm=False``: cold starts."""
    s, y = np.asarray(s, float), np.asarray(y, float)
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(int(inv.max()) + 1)]
    full = F.fit_logistic(s, y) if warm else None
    rng = np.random.default_rng(seed)
    out = {k: np.full(n_boot, np.nan) for k in ("srcc", "krcc", "plcc", "rmse")}
    out["failed"] = np.zeros(n_boot, dtype=bool)
    out["sse"] = np.full(n_boot, np.nan)
    for b in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(members), size=len(members))])
        if idx.size < 3:
            continue
        si, yi = s[idx], y[idx]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["srcc"][b], out["krcc"][b] = F.srcc(si, yi), F.krcc(si, yi)
            fit = None
            if full is not None and full.method == "logistic":
                fit = F.fit_logistic(si, yi, start=full.z_params, scale=full.z_scale)
                eligible = idx.size >= 6 and np.ptp(si) > 0 and np.ptp(yi) > 0
                z = (si - full.z_scale[0]) / full.z_scale[1]
                out["failed"][b] = eligible and F._fit_z(z, yi, [list(full.z_params)], 2000) is None
            out["plcc"][b], out["rmse"][b], used = F.plcc_rmse(si, yi, fit)
            out["sse"][b] = idx.size * out["rmse"][b] ** 2
    return out


def compare_samples(new, old: dict[str, np.ndarray]) -> dict[str, float]:
    """Resample-by-resample comparison of a :class:`~bapps_toolkit.correlation.BootstrapResult`
    with :func:`reference_samples` on the same resamples.

    ``rank_diff``: largest SRCC/KRCC difference (``nan`` patterns must match). PLCC/RMSE: ``same``
    counts the resamples where both paths used the same curve (the error agrees to 1e-6 relative)
    and ``fit_diff`` is their largest PLCC/RMSE difference; the others are sorted into
    ``scipy_failed`` (the old fit fell back to the line, the new one converged), ``not_converged``
    (the reverse), ``point_line`` (the point estimate is the line, which the new path then uses for
    every resample, while the old one refitted) and, where both fitted the logistic and stopped at
    different points, ``new_lower`` (the new fit found the smaller error: scipy stopped short) and
    ``new_higher``.
    """
    from bapps_toolkit.correlation._engine import FIT_POINT_LINE

    rank = 0.0
    for f in ("srcc", "krcc"):
        if not np.array_equal(np.isnan(new.samples[f]), np.isnan(old[f])):
            rank = np.inf
        else:
            rank = max(rank, float(np.nanmax(np.abs(new.samples[f] - old[f]), initial=0.0)))
    n_items = old["sse"] / np.where(old["rmse"] > 0, old["rmse"] ** 2, np.nan)
    new_sse = n_items * new.samples["rmse"] ** 2
    same = np.isclose(new_sse, old["sse"], rtol=1e-6, atol=0) | (np.isnan(new_sse) & np.isnan(old["sse"]))
    point_line = new.fit_outcome == FIT_POINT_LINE
    both = ~same & ~point_line & (new.not_converged == old["failed"])
    diff = np.maximum(np.abs(new.samples["plcc"] - old["plcc"]), np.abs(new.samples["rmse"] - old["rmse"]))
    return {"rank_diff": rank, "same": int(same.sum()), "fit_diff": float(np.nanmax(diff[same], initial=0.0)),
            "scipy_failed": int((old["failed"] & ~new.not_converged & ~point_line).sum()),
            "not_converged": int((new.not_converged & ~old["failed"]).sum()),
            "point_line": int((point_line & ~same).sum()),
            "new_lower": int((both & (new_sse < old["sse"])).sum()),
            "new_higher": int((both & (new_sse > old["sse"])).sum())}
