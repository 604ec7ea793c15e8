"""``bapps make-mini OUT_DIR [--seed N]``: build the synthetic BAPPS-layout mini set."""
from __future__ import annotations

import argparse

from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps make-mini`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser(
        "make-mini", help="build the synthetic BAPPS-layout mini set (offline, deterministic)",
        description="Build a small BAPPS-layout data set from photos shipped with scikit-image, "
                    "with synthetic distortions and judgments from a simulated observer (NOT human "
                    "data). Same seed -> byte-identical files.",
        epilog=examples("bapps make-mini mini", "bapps make-mini mini --seed 1 --force"))
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to create (must be absent or empty)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the synthetic mini set in ``args.out_dir`` and print what it holds.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..data.mini import MINI_COUNTS, make_mini

    out = make_mini(args.out_dir, seed=args.seed, force=args.force, workers=args.workers,
                    progress=not args.no_progress)
    n2 = sum(v for k, v in MINI_COUNTS.items() if k.startswith("2afc/"))
    nj = sum(v for k, v in MINI_COUNTS.items() if k.startswith("jnd/"))
    print(f"mini set (SYNTHETIC, seed {args.seed}) in {out}: {n2} 2AFC triplets, {nj} JND pairs "
          f"in {len(MINI_COUNTS)} sets; see {out / 'SYNTHETIC.txt'}")
    return 0
