"""``bapps metrics``: list the metric names ``create_metric`` / ``--metric`` accept, with a
one-line description of each."""
from __future__ import annotations

import argparse
from typing import Any

from ._parser import examples


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("metrics", help="list the available metrics with descriptions",
                              description=__doc__,
                              epilog=examples("bapps metrics", "bapps metrics --names-only"))
    p.add_argument("--names-only", action="store_true", help="print the names only, one per line")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
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
