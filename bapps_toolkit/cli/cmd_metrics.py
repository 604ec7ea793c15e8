"""``bapps metrics``: list the metric names ``create_metric`` / ``--metric`` accept.

Each name comes with a one-line description.
"""
from __future__ import annotations

import argparse

from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps metrics`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser("metrics", help="list the available metrics with descriptions",
                              description=__doc__,
                              epilog=examples("bapps metrics", "bapps metrics --names-only"))
    p.add_argument("--names-only", action="store_true", help="print the names only, one per line")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Print the metric names, with their descriptions unless ``--names-only``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..metrics import describe_metrics  # imports torch: not at `bapps metrics --help`
    from ..metrics.presets import PRESET_DESCRIPTIONS

    described = describe_metrics()
    if args.names_only:
        for name in described:
            print(name)
        return 0
    width = max((len(n) for n in [*described, *PRESET_DESCRIPTIONS]), default=0)
    for name, text in described.items():
        print(f"{name:<{width}}  {text}")
    for name, text in PRESET_DESCRIPTIONS.items():
        print(f"{name:<{width}}  {text}")
    return 0
