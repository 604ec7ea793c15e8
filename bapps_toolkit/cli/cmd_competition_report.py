"""``bapps competition-report JUDGED --manifest M``: the verdict of a judged MAD or gMAD competition.

JUDGED is the judged set ('bapps judge export --out JUDGED', BAPPS layout with judge/) or the
study database itself; M is the competition.json of the unjudged set (or its folder). Per metric
pair: the metric people sided with, its share of judgments with a percentile-bootstrap interval
over items and the bootstrap test against chance (0.5), which agree by construction; for gMAD
the aggressiveness and resistance matrices. Printed, and written to --out (verdict.md,
verdict.json, pairs.csv, items.csv, and for gMAD aggressiveness.csv, resistance.csv, cells.csv,
matrices.png).
"""
from __future__ import annotations

import argparse

from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps competition-report`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser("competition-report", help="verdict of a judged MAD/gMAD competition",
                              description=__doc__, epilog=examples(
                                  "bapps competition-report judged --manifest mad-l2-ssim/competition.json "
                                  "--out verdict",
                                  "bapps competition-report study.sqlite --manifest gmad-kadid "
                                  "--min-sentinel-accuracy 0.8"))
    p.add_argument("judged", metavar="JUDGED", help="judged folder (bapps judge export) or study database")
    p.add_argument("--manifest", required=True, help="competition.json of the competition (or its folder)")
    p.add_argument("--out", default=None, help="folder for the report files (default: print only)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples over items (default 2000)")
    p.add_argument("--alpha", type=float, default=0.05, help="test level; the interval is 1 - alpha (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--min-sentinel-accuracy", type=float, default=None,
                   help="study database only: keep raters whose sentinel accuracy reaches this (0..1)")
    p.add_argument("--no-figure", action="store_true", help="do not draw the gMAD matrices' figure")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Write or print the verdict of the judged competition ``args.judged``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..report.competition import competition_report

    rep = competition_report(args.judged, args.manifest, out=args.out, n_boot=args.n_boot, alpha=args.alpha,
                             seed=args.seed, min_sentinel_accuracy=args.min_sentinel_accuracy,
                             figure=not args.no_figure)
    print(rep.text, end="")
    for name, path in rep.files.items():
        print(f"{name}: {path}")
    return 0
