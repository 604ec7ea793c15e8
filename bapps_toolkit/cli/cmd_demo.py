"""``bapps demo``: argparse over :func:`bapps_toolkit.report.demo.run_demo` (its module docstring is the help)."""
from __future__ import annotations

import argparse

from ..report import demo as demo_lib  # torch-free at import: keeps `bapps demo --help` fast
from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps demo`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser("demo", help="build the mini set, evaluate and train metrics, print the table",
                              description=demo_lib.__doc__,
                              epilog=examples("bapps demo", "bapps demo --out /tmp/bapps_demo --no-train",
                                              "bapps demo --backbone-weights alex=random --n-boot 200"))
    p.add_argument("--out", default="bapps_demo", help="working folder (default ./bapps_demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mini set and of training (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--no-train", action="store_true", help="skip the short training run")
    p.add_argument("--backbone-weights", action="extend", nargs="+", default=[], metavar="NET=PATH|NET=random",
                   help="AlexNet backbone of lpips-alex and of the training run: alex=PATH (torchvision-layout "
                        "weights file) or alex=random (UNCALIBRATED); default: the ImageNet weights when cached "
                        "or downloadable, else a random backbone")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars (shown by default)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the demo: mini set, evaluation, optional short training, the table.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    demo_lib.run_demo(args.out, seed=args.seed, n_boot=args.n_boot, device=args.device, train_lpips=not args.no_train,
                      progress=args.progress, backbone_weights=args.backbone_weights)
    return 0
