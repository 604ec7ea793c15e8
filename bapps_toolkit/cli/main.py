"""Entry point of the ``bapps`` command.

Each sub-command lives in ``bapps_toolkit/cli/cmd_<name>.py`` and exposes
``register(subparsers) -> argparse.ArgumentParser`` that sets ``func=run`` on its parser.
Each does argparse plus one library call; no library logic lives in ``cli/``. :func:`main`
imports only the module of the command it runs (:data:`COMMANDS` lists the others by name and
help), and the command modules import the library inside ``run()`` where they can, so that
``bapps --help``, ``bapps COMMAND --help`` and argument errors do not import torch or pandas. Every parser is a
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
from collections.abc import Iterable, Sequence

from .._version import __version__
from ..errors import BappsError
from ._parser import BappsParser

#: Sub-commands, in the order ``bapps --help`` lists them: name -> (module, the one-line help its
#: ``register`` gives; tests/test_cli_imports.py checks that the two agree).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("cmd_demo", "build the mini set, evaluate and train metrics, print the table"),
    "make-mini": ("cmd_make_mini", "build the synthetic BAPPS-layout mini set (offline, deterministic)"),
    "download": ("cmd_download", "download and unpack the BAPPS archives (jnd, 2AFC val, 2AFC train)"),
    "pack": ("cmd_pack", "pack a BAPPS folder tree or CSV manifests into one HDF5 file"),
    "verify": ("cmd_verify", "re-check a packed HDF5 file (schema, counts, SHA-256 of every array)"),
    "evaluate": ("cmd_evaluate", "score metrics against the human judgments (2AFC, JND)"),
    "score": ("cmd_score", "distance between two images, two folders of images, or all pairs of a folder"),
    "train": ("cmd_train", "train calibrated LPIPS linear layers (lin), a tuned (tune) or scratch network"),
    "metrics": ("cmd_metrics", "list the available metrics with descriptions"),
    "loss-study": ("cmd_loss_study", "train one network per loss and cross-evaluate them"),
    "judge": ("cmd_judge", "collect human 2AFC/JND judgments in a browser"),
    "mad": ("cmd_mad", "MAD competition: synthesise image pairs that hold one metric and push the other"),
    "gmad": ("cmd_gmad", "gMAD competition: pick image pairs from a pool for every ordered pair of metrics"),
    "competition-report": ("cmd_competition_report", "verdict of a judged MAD/gMAD competition"),
}


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``bapps`` parser with the sub-commands ``commands`` (None = all) registered by their
    modules; every other sub-command is listed by name and help only, without importing its module
    (so ``bapps --help`` and a mistyped command import neither torch nor pandas)."""
    wanted = set(COMMANDS) if commands is None else set(commands)
    parser = BappsParser(
        prog="bapps",
        description="Train and evaluate perceptual image-similarity metrics against BAPPS human judgments.",
        epilog="Run 'bapps COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"bapps-toolkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # sub-parsers are BappsParsers too
    for name, (module, text) in COMMANDS.items():
        if name in wanted:
            importlib.import_module(f".{module}", __package__).register(sub)
        else:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names: its first word that is not an option (the top-level parser
    has only ``--help`` and ``--version``, which take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


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
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    parser = build_parser([command] if command in COMMANDS else [])
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
