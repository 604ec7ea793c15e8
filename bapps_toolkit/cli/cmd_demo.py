"""``bapps demo``: the whole pipeline in a few minutes on a laptop CPU, offline
(:func:`bapps_toolkit.report.demo.run_demo`).

1. builds the synthetic mini set (``make-mini``) in ``OUT/mini`` if it is missing, and packs it to
   ``OUT/mini.h5``;
2. scores the pixel and structural metrics (l2, l2-lab, ssim, ssim-lab, ms-ssim, fsim, psnr —
   those registered) and ``lpips-alex`` on every val 2AFC and JND set. LPIPS uses torchvision's
   ImageNet AlexNet weights when they are cached or can be downloaded; otherwise (and only then)
   an explicitly random backbone, and every line that names it says UNCALIBRATED;
3. trains the LPIPS linear layers briefly (1 + 1 epochs, cached-feature fast path) on the mini
   train sets and scores the trained checkpoint too;
4. prints the Table-5-style table, writes ``OUT/results.csv``, ``OUT/results.md`` and the figure
   ``OUT/results.png`` (when matplotlib is installed; otherwise it says so).

The mini set's judgments come from a simulated observer, not from people: the numbers show that
the pipeline works, not how good the metrics are (the table says so).
"""
from __future__ import annotations

import argparse

from ..report.demo import run_demo


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="build the mini set, evaluate and train metrics, print the table",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bapps_demo", help="working folder (default ./bapps_demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mini set and of training (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--no-train", action="store_true", help="skip the short training run")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars (shown by default)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    run_demo(args.out, seed=args.seed, n_boot=args.n_boot, device=args.device, train_lpips=not args.no_train,
             progress=args.progress)
    return 0
