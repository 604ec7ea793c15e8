"""Correlation statistics of a KADID-10k-size set: the per-resample scipy loop (the code before the
batched engine, kept as ``tests/iqa/scipy_bootstrap.py``) against the batched engine, in one run.

SYNTHETIC set (10 125 items, 81 references, 25 types x 5 levels; PSNR-like predictions, a
logistic MOS with noise, rounded to 2 decimals so that ties occur). The new path runs the full
``--n-boot`` resamples, overall and per type, all four figures, ``--repeat`` times (point
estimates included: they are computed by ``scipy`` as before). The old path is too slow for that;
it runs ``--old-boot`` resamples overall and ``--old-boot-type`` per type, and its time is scaled
linearly to ``--n-boot`` (stated as such). CPU time is ``time.process_time()`` (all threads of the
process), wall time ``time.perf_counter()``; the machine is shared, so the load average is printed
with them.

Agreement: the old path's resamples are the first ones of the new run (the same draws), so their
figures are compared one by one (``compare_samples``). With ``--old-boot-type`` equal to
``--n-boot`` the per-type percentile intervals of both paths are compared too, in units of the
Monte-Carlo standard error of the old path's interval ends (a bootstrap of its resamples).

    python benchmarks/bench_correlation.py [--n-boot 1000] [--old-boot 20] [--old-boot-type 4] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "iqa"))
from scipy_bootstrap import compare_samples, reference_samples  # noqa: E402

from bapps_toolkit import correlation as C  # noqa: E402
from bapps_toolkit.correlation import _engine  # noqa: E402


def kadid_like(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A SYNTHETIC KADID-10k-size set: ``(psnr-like prediction, mos, reference, type)``."""
    rng = np.random.default_rng(seed)
    ref = np.repeat(np.arange(81), 125)
    typ = np.tile(np.repeat(np.arange(25), 5), 81)
    lev = np.tile(np.arange(1, 6), 81 * 25)
    psnr = 40 - rng.uniform(2, 6, 25)[typ] * lev + rng.normal(0, 2.0, 81)[ref] + rng.normal(0, 1.5, ref.size)
    mos = 1 + 4 / (1 + np.exp(-(psnr - 25) / 4)) + rng.normal(0, 0.3, ref.size)
    return np.round(psnr, 2), np.round(mos, 2), ref, np.array([f"t{t:02d}" for t in typ])


def _timed(f: Callable[[], Any]) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = f()
    return out, time.process_time() - c0, time.perf_counter() - t0


def _type_seed(k: int, seed: int = 0) -> int:
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def _old_per_type(s: np.ndarray, y: np.ndarray, ref: np.ndarray, typ: np.ndarray, n: int) -> dict[str, dict]:
    return {name: reference_samples(s[typ == name], y[typ == name], ref[typ == name], n_boot=n, seed=_type_seed(k))
            for k, name in enumerate(sorted(set(typ.tolist())))}


def _first(r: C.BootstrapResult, k: int) -> C.BootstrapResult:
    """The first ``k`` resamples of a result (to compare with a shorter old run)."""
    return C.BootstrapResult(r.point, r.low, r.high, {f: v[:k] for f, v in r.samples.items()}, r.n_groups,
                             r.fit_outcome[:k])


def _outcomes(results: list[C.BootstrapResult]) -> str:
    codes = np.concatenate([r.fit_outcome for r in results])
    return "; ".join(f"{C.FIT_OUTCOMES[c]}: {int((codes == c).sum())}" for c in sorted(C.FIT_OUTCOMES)
                     if (codes == c).any())


def _agreement(new: C.BootstrapResult, per: dict[str, tuple[int, C.BootstrapResult]], old: dict,
               olds: dict[str, dict], k_all: int, k_type: int) -> None:
    rows = [("overall", compare_samples(_first(new, k_all), old))]
    rows += [(n, compare_samples(_first(per[n][1], k_type), olds[n])) for n in sorted(per)]
    total = {key: sum(r[key] for _, r in rows) for key in rows[0][1] if key not in ("rank_diff", "fit_diff")}
    print(f"agreement on the same resamples ({k_all} overall, {k_type} per type x {len(per)} types):")
    print(f"  max |SRCC/KRCC diff| {max(r['rank_diff'] for _, r in rows):.1e}; PLCC/RMSE: {total['same']} "
          f"resamples on the same curve, max |diff| {max(r['fit_diff'] for _, r in rows):.1e}")
    print(f"  on different curves: old fit failed (line), new converged {total['scipy_failed']}; new did not "
          f"converge (line), old converged {total['not_converged']}; point estimate on the line "
          f"{total['point_line']}; both fitted, new error lower (scipy stopped short) {total['new_lower']}, "
          f"new error higher {total['new_higher']}")
    odd = [f"{n}: {r['scipy_failed']}/{r['not_converged']}/{r['new_lower']}/{r['new_higher']}" for n, r in rows
           if r["same"] < (k_all if n == "overall" else k_type)]
    if odd:
        print("  parts with differences (old failed / new not converged / new lower / new higher): " + ", ".join(odd))


def _intervals(per: dict[str, tuple[int, C.BootstrapResult]], olds: dict[str, dict], n_boot: int) -> None:
    """Per type: old and new percentile interval ends, in Monte-Carlo standard errors of the old ends."""
    rng = np.random.default_rng(0)
    print("per-type intervals, new vs old on the same resamples, |difference| / MC s.e. of the old end:")
    worst = []
    for name in sorted(per):
        new, old, parts = per[name][1], olds[name], []
        for f in C.FIGURES:
            ends = np.quantile(old[f], [0.025, 0.975])
            boot = np.array([np.quantile(old[f][rng.integers(0, n_boot, n_boot)], [0.025, 0.975]) for _ in range(200)])
            dz = np.abs(np.array([new.low[f], new.high[f]]) - ends) / np.maximum(boot.std(0), 1e-12)
            worst.append(float(dz.max()))
            parts.append(f"{f} [{ends[0]:.4f}, {ends[1]:.4f}] -> [{new.low[f]:.4f}, {new.high[f]:.4f}] "
                         f"({dz[0]:.1f}, {dz[1]:.1f})")
        lines = int(old["failed"].sum())
        print(f"  {name} (old: {lines} resamples on the line after curve_fit failed; new: "
              f"{new.n_not_converged} not converged): " + "; ".join(parts))
    print(f"  ends within 2 MC s.e.: {sum(w <= 2 for w in worst)} of {len(worst)}")


def _contains_point(results: list[C.BootstrapResult]) -> str:
    inside = sum(r.low[f] <= r.point[f] <= r.high[f] for r in results for f in C.FIGURES)
    return f"{inside} of {4 * len(results)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--old-boot", type=int, default=20)
    ap.add_argument("--old-boot-type", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    s, y, ref, typ = kadid_like()
    print(f"load average at start {os.getloadavg()}; SYNTHETIC KADID-size set: {s.size} items, 81 refs, 25 types; "
          f"{os.cpu_count()} CPUs")
    times = []
    for _ in range(a.repeat):
        new, c1, w1 = _timed(lambda: C.bootstrap_correlation(s, y, ref, n_boot=a.n_boot, seed=0))
        per, c2, w2 = _timed(lambda: C.per_type_bootstrap(s, y, typ, ref, n_boot=a.n_boot, seed=0))
        times.append((c1, w1, c2, w2))
    best = min(times, key=lambda t: t[0] + t[2])
    old, c3, w3 = _timed(lambda: reference_samples(s, y, ref, n_boot=a.old_boot, seed=0))
    olds, c4, w4 = _timed(lambda: _old_per_type(s, y, ref, typ, a.old_boot_type))
    old_all, old_type = (c3 * a.n_boot / a.old_boot, w3 * a.n_boot / a.old_boot), (
        c4 * a.n_boot / a.old_boot_type, w4 * a.n_boot / a.old_boot_type)
    print(f"load average after timing {os.getloadavg()}")
    print("| path | overall s (CPU / wall) | per type s (CPU / wall) | total s (CPU / wall) |")
    print("|:---|---:|---:|---:|")
    print(f"| old scipy loop, measured ({a.old_boot} / {a.old_boot_type} resamples) | {c3:.1f} / {w3:.1f} "
          f"| {c4:.1f} / {w4:.1f} | {c3 + c4:.1f} / {w3 + w4:.1f} |")
    print(f"| old scipy loop, scaled to {a.n_boot} | {old_all[0]:.0f} / {old_all[1]:.0f} | {old_type[0]:.0f} / "
          f"{old_type[1]:.0f} | {old_all[0] + old_type[0]:.0f} / {old_all[1] + old_type[1]:.0f} |")
    for i, (c1, w1, c2, w2) in enumerate(times):
        print(f"| batched, {a.n_boot} resamples, run {i + 1} | {c1:.2f} / {w1:.2f} | {c2:.2f} / {w2:.2f} "
              f"| {c1 + c2:.2f} / {w1 + w2:.2f} |")
    print(f"speed-up, scaled old / best new: CPU {(old_all[0] + old_type[0]) / (best[0] + best[2]):.0f}x, "
          f"wall {(old_all[1] + old_type[1]) / (best[1] + best[3]):.0f}x")
    results = [new] + [r for _, r in per.values()]
    print(f"fit rule: {_engine.RULE}; outcomes overall: {_outcomes([new])}")
    print(f"outcomes per type (all types): {_outcomes([r for _, r in per.values()])}")
    parts = [("overall", new)] + [(n, per[n][1]) for n in sorted(per)]
    print("non-converged per part: " + (", ".join(f"{n} {r.n_not_converged}/{r.n_fitted}" for n, r in parts
                                                   if r.n_not_converged) or "none"))
    _agreement(new, per, old, olds, a.old_boot, a.old_boot_type)
    if a.old_boot_type == a.n_boot:
        _intervals(per, olds, a.n_boot)
    print(f"point estimate inside its interval: {_contains_point(results)} (figure x part)")
    for f in C.FIGURES:
        print(f"  overall {f}: point {new.point[f]:.6f} [{new.low[f]:.4f}, {new.high[f]:.4f}]")
    print(f"load average at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
