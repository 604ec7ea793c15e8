"""Entry point of the ``bapps`` command.

Each sub-command lives in ``bapps_toolkit/cli/cmd_<name>.py`` and exposes
``register(subparsers) -> argparse.ArgumentParser`` that sets ``func=run`` on its parser.
Each does argparse plus one library call; no library logic lives in ``cli/``. Every parser is a
:class:`~bapps_toolkit.cli._parser.BappsParser` (no abbreviated flags, plain-words help); each
sub-command's ``--help`` ends with examples (:func:`~bapps_toolkit.cli._parser.examples`).
Errors derived from :class:`~bapps_toolkit.errors.BappsError` (and ``ValueError`` /
``FileNotFoundError`` raised on user input) are printed as one line, exit status 2. Library
messages name parameters (``chunk_size must be >= 1``); a message that starts with the parameter
of an option of the command is shown with the option's flag (``--chunk-size must be >= 1``).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .._version import __version__
from ..errors import BappsError
from ._parser import BappsParser

#: Sub-command modules, in the order ``bapps --help`` lists them.
COMMANDS = [
    "cmd_demo", "cmd_make_mini", "cmd_download", "cmd_pack", "cmd_verify",
    "cmd_evaluate", "cmd_score", "cmd_train", "cmd_metrics", "cmd_loss_study", "cmd_judge",
]


def build_parser() -> argparse.ArgumentParser:
    parser = BappsParser(
        prog="bapps",
        description="Train and evaluate perceptual image-similarity metrics against BAPPS human judgments.",
        epilog="Run 'bapps COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"bapps-toolkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # sub-parsers are BappsParsers too
    for name in COMMANDS:
        importlib.import_module(f".{name}", __package__).register(sub)
    return parser


def _flag_message(parser: argparse.ArgumentParser, command: str, message: str) -> str:
    """``message`` with a leading parameter name of ``command``'s options replaced by its flag."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    cmd = sub.choices.get(command) if sub is not None else None
    head = message.split(" ", 1)[0]
    for action in cmd._actions if cmd is not None else []:
        flags = [o for o in action.option_strings if o.startswith("--")]
        if flags and action.dest == head:
            return flags[0] + message[len(head):]
    return message


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("bapps: interrupted", file=sys.stderr)
        return 130
    except (BappsError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"bapps {args.command}: error: {_flag_message(parser, args.command, str(exc))}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
