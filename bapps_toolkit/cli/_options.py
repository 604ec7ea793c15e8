"""The options several ``bapps`` commands share, declared once so that they read the same everywhere.

Lists are space-separated (``--metrics ssim psnr``); weights are ``NET=PATH`` or ``NET=random``;
``--precision`` has the same choices on every command (a command that cannot run one says so
when it runs). tests/test_grammar_audit.py checks every parser against these rules.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

#: ``--precision`` choices (as :data:`bapps_toolkit.metrics.speed.PRECISIONS`, which imports torch).
PRECISIONS = ("fp32", "bf16", "fp16")
#: Metavar of ``--backbone-weights``.
BACKBONE_METAVAR = "NET=PATH|NET=random"


def add_metrics(p: argparse.ArgumentParser, default: Sequence[str] | None, help: str) -> None:
    """``--metrics NAME...`` (one or several), with ``--metric`` as the same option.

    Args:
        p: the command's parser.
        default: the metrics used when the option is not given (None: required by the command).
        help: the help text.
    """
    p.add_argument("--metrics", "--metric", dest="metrics", nargs="+", default=list(default or []), metavar="NAME",
                   help=help)


def add_metric_option(p: argparse.ArgumentParser) -> None:
    """``--metric-option NAME.KEY=VALUE`` (repeatable)."""
    p.add_argument("--metric-option", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="an option of a metric's factory, typed by its signature (repeatable)")


def add_backbone_weights(p: argparse.ArgumentParser, help: str, default: list[str] | None = None) -> None:
    """``--backbone-weights NET=PATH|NET=random ...`` (several in one flag, or the flag repeated).

    Args:
        p: the command's parser.
        help: the help text.
        default: the value when the flag is not given ([] unless the command tells "not given" apart).
    """
    p.add_argument("--backbone-weights", action="extend", nargs="+", default=[] if default is None else default,
                   metavar=BACKBONE_METAVAR, help=help)


def add_precision(p: argparse.ArgumentParser, help: str, default: str | None = "fp32") -> None:
    """``--precision {fp32,bf16,fp16}``.

    Args:
        p: the command's parser.
        help: the help text.
        default: the precision when the flag is not given.
    """
    p.add_argument("--precision", default=default, choices=PRECISIONS, help=help)


def space_list(values: Sequence[str], flag: str, command: str) -> list[str]:
    """The items of a space-separated list option.

    An item holding commas (the old spelling) is split, with a deprecation note on stderr.

    Args:
        values: the option's values as argparse collected them.
        flag: the option (for the note).
        command: the sub-command (for the note).

    Returns:
        The items, in order, empty ones dropped.
    """
    items: list[str] = []
    for value in values:
        if "," in value:
            print(f"bapps {command}: note: {flag} takes a space-separated list; commas are deprecated "
                  f"({flag} {' '.join(v for v in value.split(',') if v.strip())})", file=sys.stderr)
        items += [v.strip() for v in value.split(",") if v.strip()]
    return items


__all__ = ["BACKBONE_METAVAR", "PRECISIONS", "add_backbone_weights", "add_metric_option", "add_metrics",
           "add_precision", "space_list"]
