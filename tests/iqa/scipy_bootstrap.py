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
