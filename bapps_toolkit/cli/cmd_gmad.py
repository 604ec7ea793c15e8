"""``bapps gmad M1 M2 [M3 ...] --pool POOL``: a group MAD (gMAD) competition among metrics.

The competition (Ma et al., IEEE TPAMI 2020) runs on a pool of distorted images.

Every pool image is scored by every metric against its reference. For each ordered pair
(defender, attacker) and each of --levels quality levels of the defender (quantiles of its
scores), among the images whose defender score lies within half the tolerance of the level
(tolerance = --tolerance times the defender's score range over the pool), the pair of one
reference that the attacker scores farthest apart is picked.

POOL: a packed correlation benchmark (.h5 from 'bapps pack' of TID2013, KADID-10k, PIPAL, LIVE,
CSIQ or PieAPP), such a benchmark's folder, or a folder with ref/<id>.png and dist/<id>/*.png.
Output as 'bapps mad': an unjudged 2AFC set for 'bapps judge', competition.json/.csv and
pool_scores.csv.
"""
from __future__ import annotations

import argparse
import sys

from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps gmad`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser("gmad", help="gMAD competition: pick image pairs from a pool for every ordered "
                              "pair of metrics", description=__doc__, epilog=examples(
                                  "bapps gmad l2 ssim ms-ssim fsim --pool kadid10k.h5 --out gmad-kadid",
                                  "bapps gmad l2 ssim lpips-alex --backbone-weights alex=random --pool own/ "
                                  "--out gmad-own --levels 6 --tolerance 0.03"))
    p.add_argument("metrics", nargs="+", metavar="METRIC", help="two or more metrics")
    p.add_argument("--pool", required=True,
                   help="packed benchmark (.h5), benchmark folder, or folder with ref/ and dist/")
    p.add_argument("--out", required=True, help="output folder (resumable)")
    p.add_argument("--levels", type=int, default=5, help="quality levels per defender (default 5)")
    p.add_argument("--tolerance", type=float, default=0.05,
                   help="largest defender difference within a pair, as a fraction of its score range (default 0.05)")
    p.add_argument("--format", default=None, help="benchmark format of a pool folder (default: detected)")
    p.add_argument("--seed", type=int, default=0, help="seed of the p0/p1 sides (default 0)")
    p.add_argument("--batch-size", type=int, default=16, help="images scored at once (default 16)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--backbone-weights", action="extend", nargs="+", default=[], metavar="NET=PATH|NET=random",
                   help="backbone weights of a network (alex, vgg, squeeze); NET=random = UNCALIBRATED")
    p.add_argument("--metric-option", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="an option of one metric's factory (repeatable)")
    p.add_argument("--category", default=None, help="category of the written set (default gmad-METRICS)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the gMAD competition among ``args.metrics`` on the pool ``args.pool``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..competition.gmad import GmadConfig, run_gmad
    from ..metrics.plugins import parse_metric_options

    cfg = GmadConfig(metrics=tuple(args.metrics), pool=args.pool, out=args.out, levels=args.levels,
                     tolerance=args.tolerance, format=args.format, seed=args.seed, device=args.device,
                     batch_size=args.batch_size, backbone_weights=tuple(args.backbone_weights),
                     metric_options=parse_metric_options(args.metric_option, args.metrics), category=args.category)
    res = run_gmad(cfg, progress=lambda s: print(f"bapps gmad: {s}", file=sys.stderr))
    for note in res.skipped:
        print(f"bapps gmad: {note}", file=sys.stderr)
    for label in res.manifest.uncalibrated:
        print(f"NOTE: {label} is UNCALIBRATED", file=sys.stderr)
    print(f"wrote {len(res.manifest.items)} items to {args.out}; manifest {res.manifest_path}")
    return 0
