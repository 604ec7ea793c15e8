"""Correlation statistics of a KADID-10k-size set: the per-resample scipy loop (the code before the
batched engine, kept as ``tests/iqa/scipy_bootstrap.py``) against the batched engine, in one run.

SYNTHETIC set (10 125 items, 81 references, 25 types x 5 levels; PSNR-like predictions, a
logistic MOS with noise, rounded to 2 decimals so that ties occur). The new path runs the full
``--n-boot`` resamples, overall and per type, all four figures. The old path is too slow for that;
it runs ``--old-boot`` resamples overall and ``--old-boot-type`` per type, and its time is scaled
linearly to ``--n-boot`` (stated as such). Agreement: the old path's resamples are the first ones
of the new run (same draws), so their figures are compared one by one. Figures depend on the load:
it is printed.

    python benchmarks/bench_correlation.py [--n-boot 1000] [--old-boot 20] [--old-boot-type 4]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "iqa"))
from scipy_bootstrap import reference_samples  # noqa: E402

from bapps_toolkit import correlation as C  # noqa: E402


def kadid_like(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = np.repeat(np.arange(81), 125)
    typ = np.tile(np.repeat(np.arange(25), 5), 81)
    lev = np.tile(np.arange(1, 6), 81 * 25)
    psnr = 40 - rng.uniform(2, 6, 25)[typ] * lev + rng.normal(0, 2.0, 81)[ref] + rng.normal(0, 1.5, ref.size)
    mos = 1 + 4 / (1 + np.exp(-(psnr - 25) / 4)) + rng.normal(0, 0.3, ref.size)
    return np.round(psnr, 2), np.round(mos, 2), ref, np.array([f"t{t:02d}" for t in typ])


def _timed(f):
    t0, c0 = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _agree(new: C.BootstrapResult, old: dict, k: int) -> tuple[float, float, int, int]:
    """(max |SRCC/KRCC diff|, max |PLCC/RMSE diff| on the unexcepted, #excepted, #over 1e-6 unexcepted)."""
    rank = max(float(np.nanmax(np.abs(new.samples[f][:k] - old[f]))) for f in ("srcc", "krcc"))
    exc = new.not_converged[:k] | old["failed"]
    d = np.maximum(np.abs(new.samples["plcc"][:k] - old["plcc"]), np.abs(new.samples["rmse"][:k] - old["rmse"]))
    ok = d[~exc]
    return rank, float(ok.max()) if ok.size else 0.0, int(exc.sum()), int((ok > 1e-6).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--old-boot", type=int, default=20)
    ap.add_argument("--old-boot-type", type=int, default=4)
    a = ap.parse_args()
    s, y, ref, typ = kadid_like()
    print(f"load average at start {os.getloadavg()}; SYNTHETIC KADID-size set: {s.size} items, 81 refs, 25 types")
    new, w1, c1 = _timed(lambda: C.bootstrap_correlation(s, y, ref, n_boot=a.n_boot, seed=0))
    per, w2, c2 = _timed(lambda: C.per_type_bootstrap(s, y, typ, ref, n_boot=a.n_boot, seed=0))
    old, w3, c3 = _timed(lambda: reference_samples(s, y, ref, n_boot=a.old_boot, seed=0))
    olds = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for k, name in enumerate(sorted(per)):
        m = typ == name
        seq = int(np.random.SeedSequence([0, k]).generate_state(1)[0])
        olds[name] = reference_samples(s[m], y[m], ref[m], n_boot=a.old_boot_type, seed=seq)
    w4, c4 = time.perf_counter() - t0, time.process_time() - c0
    old_all = w3 * a.n_boot / a.old_boot
    old_type = w4 * a.n_boot / a.old_boot_type
    print("| path | overall s (wall / CPU) | per type s (wall / CPU) | total wall s |")
    print("|:---|---:|---:|---:|")
    print(f"| old scipy loop, measured ({a.old_boot} / {a.old_boot_type} resamples) | {w3:.1f} / {c3:.1f} "
          f"| {w4:.1f} / {c4:.1f} | {w3 + w4:.1f} |")
    print(f"| old scipy loop, scaled to {a.n_boot} | {old_all:.0f} | {old_type:.0f} | {old_all + old_type:.0f} |")
    print(f"| batched, {a.n_boot} resamples | {w1:.2f} / {c1:.2f} | {w2:.2f} / {c2:.2f} | {w1 + w2:.2f} |")
    print(f"speed-up (scaled old / new, wall): {(old_all + old_type) / (w1 + w2):.0f}x")
    print(f"non-converged resample fits: overall {new.n_not_converged}/{new.n_fitted}, per type "
          f"{sum(r.n_not_converged for _, r in per.values())}/{sum(r.n_fitted for _, r in per.values())}")
    rows = [("overall", _agree(new, old, a.old_boot))]
    rows += [(n, _agree(per[n][1], olds[n], a.old_boot_type)) for n in sorted(per)]
    print("agreement on the same resamples (first resamples of the new run vs the old loop):")
    print(f"  max |SRCC/KRCC diff| {max(r[1][0] for r in rows):.1e}; max |PLCC/RMSE diff| where the new fit "
          f"converged and scipy did not fail {max(r[1][1] for r in rows):.1e}; resamples excepted "
          f"{sum(r[1][2] for r in rows)}; unexcepted over 1e-6: {sum(r[1][3] for r in rows)}")
    for f in C.FIGURES:
        print(f"  overall {f}: point {new.point[f]:.6f} [{new.low[f]:.4f}, {new.high[f]:.4f}]")
    print(f"load average at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
