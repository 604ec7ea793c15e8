"""``bapps mad A B``: a maximum differentiation (MAD) competition between metrics A and B.

MAD was introduced by Wang & Simoncelli, Journal of Vision 2008.

For each reference image (the mini set's scikit-image photos, or --references DIR) and its
start image (the reference plus white noise of --noise-mse on the 0-255 scale, or the user's
distorted images in --start DIR with the references' file stems), two 2AFC items: A held at its
start value while B is driven to its minimum and its maximum, and the reverse. Each step moves
along B's gradient with its component along A's gradient removed, then a 1-D search along A's
gradient returns to A's start value, pixels kept in [0, 1].

Output under --out: an unjudged 2AFC set in the BAPPS layout (2afc/val/CATEGORY/{ref,p0,p1}) that
'bapps judge' reads as it is, competition.json / competition.csv (per item: which metric was held,
which pushed, both metrics' distances, the side each prefers, the held metric's drift, the steps,
convergence) and, with --grid, a figure. A rerun with the same settings resumes.
"""
from __future__ import annotations

import argparse
import sys

from ._parser import examples, in_range


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps mad`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser("mad",
                              help="MAD competition: synthesise image pairs that hold one metric and push the other",
                              description=__doc__, epilog=examples(
                                  "bapps mad l2 ssim --out mad-l2-ssim --size 128 --grid mad-l2-ssim/grid.png",
                                  "bapps mad ssim lpips-alex --backbone-weights alex=random --out mad-ssim-lpips",
                                  "bapps mad l2 ms-ssim --references photos/ --start distorted/ --out mad-own"))
    p.add_argument("metric_a", metavar="A", help="first metric (a name from 'bapps metrics', or a plugin spec)")
    p.add_argument("metric_b", metavar="B", help="second metric")
    p.add_argument("--out", required=True, help="output folder (resumable)")
    p.add_argument("--references", default=None, help="folder of reference images (default: the mini set's photos)")
    p.add_argument("--start", default=None, help="folder of distorted start images named like the references "
                   "(default: white noise of --noise-mse)")
    p.add_argument("--noise-mse", type=in_range(0, 65025), default=256.0,
                   help="MSE of the start noise on the 0-255 scale (default 256; the paper used 8 to 1024)")
    p.add_argument("--size", type=int, default=128, metavar="N",
                   help="side of the square images in pixels (default 128)")
    p.add_argument("--steps", type=int, default=200, help="iteration budget per image (default 200)")
    p.add_argument("--step", type=float, default=0.1,
                   help="first step as a fraction of the start noise's RMS (default 0.1)")
    p.add_argument("--held-tolerance", type=float, default=1e-3,
                   help="relative deviation of the held metric accepted per step (default 0.001)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and of the p0/p1 sides (default 0)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N references")
    p.add_argument("--batch-size", type=int, default=4, help="references synthesised together (default 4)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--backbone-weights", action="extend", nargs="+", default=[], metavar="NET=PATH|NET=random",
                   help="backbone weights of a network (alex, vgg, squeeze); NET=random = UNCALIBRATED")
    p.add_argument("--metric-option", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="an option of one metric's factory (repeatable)")
    p.add_argument("--category", default=None, help="category of the written set (default mad-A-B)")
    p.add_argument("--grid", default=None, metavar="PNG", help="write the grid figure here (needs matplotlib)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the MAD competition between ``args.metric_a`` and ``args.metric_b``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..competition.mad_run import MadConfig, run_mad
    from ..metrics.plugins import parse_metric_options

    cfg = MadConfig(metric_a=args.metric_a, metric_b=args.metric_b, out=args.out, references=args.references,
                    start=args.start, noise_mse=args.noise_mse, size=args.size, max_steps=args.steps,
                    step=args.step, held_tolerance=args.held_tolerance, seed=args.seed, device=args.device,
                    batch_size=args.batch_size, limit=args.limit, backbone_weights=tuple(args.backbone_weights),
                    metric_options=parse_metric_options(args.metric_option, [args.metric_a, args.metric_b]),
                    category=args.category, grid=args.grid)
    res = run_mad(cfg, progress=lambda s: print(f"bapps mad: {s}", file=sys.stderr))
    for label in res.manifest.uncalibrated:
        print(f"NOTE: {label} is UNCALIBRATED", file=sys.stderr)
    worst = max((it.max_drift for it in res.manifest.items), default=float("nan"))
    print(f"wrote {len(res.manifest.items)} items to {args.out} ({res.made} made now, "
          f"{res.seconds_per_item:.2f} s per item); largest held-metric drift {100 * worst:.3f}%; "
          f"manifest {res.manifest_path}")
    return 0
