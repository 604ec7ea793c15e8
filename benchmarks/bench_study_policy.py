"""Balanced against adaptive assignment with the mini set's simulated observer (SYNTHETIC raters).

Prints (nothing is asserted) the table of :func:`bapps_toolkit.judge.simulate.comparison_table`:
per seed, each policy's answers on real items, the error of the per-item judge fractions it ended
with (RMSE and 90th percentile of |k/n − p| against the observer's true probability, the widest
credible interval, the coverage of the intervals), and how many answers balanced assignment
needed to reach adaptive's error; then the mean saving per target width. The simulated raters
answer through the real study store (``next_trial``/``record_answer``), so the policy measured
is the one the server runs. Wall time and ``/proc/loadavg`` are printed: the run is CPU-bound.

    python benchmarks/bench_study_policy.py [--mini DIR] [--seeds 0 1 2 3 4] [--items 300]
        [--widths 0.25 0.3 0.4] [--per-rater 20] [--cap 40] [--prior 1 1] [--level 0.9]

The mini set is built into ``--mini`` (default a folder under the system's temp dir) when absent.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mini", default=str(Path(tempfile.gettempdir()) / "bapps-mini-bench"),
                   help="mini set folder (built with seed 0 when absent)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="simulation seeds")
    p.add_argument("--items", type=int, default=300, help="items per simulated study")
    p.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.3, 0.4], help="adaptive target widths")
    p.add_argument("--per-rater", type=int, default=20, help="items per rater")
    p.add_argument("--cap", type=int, default=40, help="judgments per item (balanced) / the cap (adaptive)")
    p.add_argument("--prior", type=float, nargs=2, default=[1.0, 1.0], help="Beta prior a b")
    p.add_argument("--level", type=float, default=0.9, help="credible level")
    p.add_argument("--concurrent", type=int, default=10, help="raters answering at once")
    args = p.parse_args()

    from bapps_toolkit.data import make_mini
    from bapps_toolkit.judge.simulate import compare, comparison_table

    mini = make_mini(args.mini, seed=0, workers=2, progress=False)
    print(f"load before: {loadavg()}")
    t0 = time.perf_counter()
    settings = {"items_per_rater": args.per_rater, "judgments_per_item": args.cap, "prior": list(args.prior),
                "credible_level": args.level}
    rows = compare(mini, args.seeds, n_items=args.items, widths=tuple(args.widths), settings=settings,
                   concurrent=args.concurrent)
    print(f"{args.items} items per study (drawn from the mini set's val 2AFC and JND sets), {args.per_rater} per "
          f"rater, cap {args.cap}, 10% sentinels answered right with p=0.95, {args.concurrent} raters at once, "
          f"prior Beta({args.prior[0]:g}, {args.prior[1]:g}), level {args.level}, seeds {args.seeds}")
    print(comparison_table(rows))
    print(f"wall {time.perf_counter() - t0:.0f} s; load after: {loadavg()}")


if __name__ == "__main__":
    main()
