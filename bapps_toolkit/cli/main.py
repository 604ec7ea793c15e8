"""Entry point of the ``bapps`` command.

Each sub-command lives in ``bapps_toolkit/cli/cmd_<name>.py`` and exposes
``register(subparsers) -> argparse.ArgumentParser`` that sets ``func=run`` on its parser.
Each does argparse plus one library call; no library logic lives in ``cli/``. :func:`main`
imports only the module of the command it runs (:data:`COMMANDS` lists the others by name and
help), and the command modules import the library inside ``run()`` where they can, so that
``bapps --help``, ``bapps COMMAND --help`` and argument errors do not import torch or pandas. Every parser is a
:class:`~bapps_toolkit.cli._parser.BappsParser` (no abbreviated flags, plain-words help); each
sub-command's ``--help`` ends with examples (:func:`~bapps_toolkit.cli._parser.examples`), and an
argument error prints the usage of the sub-command it belongs to.

Exit status (:mod:`bapps_toolkit.errors`):

* 0 -- success.
* 1 -- an unexpected error (a bug): one line naming the exception; ``bapps --debug COMMAND …`` or
  the environment variable ``BAPPS_DEBUG=1`` prints its traceback.
* 2 -- the input was refused: an argument error, or a
  :class:`~bapps_toolkit.errors.BappsError` (usage, data, weights, checkpoint, download, lock),
  printed as one line that names the file, row, field or argument; a file that does not exist,
  already exists or cannot be opened is refused the same way.
* 130 -- interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Iterable, Sequence

from .._version import __version__
from ..errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNEXPECTED, BappsError, MissingWeightsError
from ._parser import BappsParser, parser_of

#: The environment variable that, set to 1, shows the traceback of an unexpected error.
DEBUG_ENV = "BAPPS_DEBUG"

EPILOG = """Run 'bapps COMMAND --help' for a command's options and examples.

exit status: 0 success; 1 unexpected error (a bug: --debug or BAPPS_DEBUG=1 shows the traceback);
2 the input was refused (argument, data, weights, checkpoint, lock: the message names it);
130 interrupted."""

#: Errors of the operating system on a path the user gave: refused like a BappsError.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)

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
    """The ``bapps`` parser with the sub-commands ``commands`` (None = all) registered by their modules.

    Every other sub-command is listed by name and help only, without importing its module (so
    ``bapps --help`` and a mistyped command import neither torch nor pandas).
    """
    wanted = set(COMMANDS) if commands is None else set(commands)
    parser = BappsParser(
        prog="bapps",
        description="Train and evaluate perceptual image-similarity metrics against BAPPS human judgments.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"bapps-toolkit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an unexpected error (also: {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # sub-parsers are BappsParsers too
    for name, (module, text) in COMMANDS.items():
        if name in wanted:
            importlib.import_module(f".{module}", __package__).register(sub)
        else:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names: its first word that is not an option.

    The top-level parser has only ``--help``, ``--version`` and ``--debug``, which take no value.
    """
    return next((a for a in argv if not a.startswith("-")), None)


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _refused(command: str, exc: BaseException) -> str:
    """The one line that reports a refused input."""
    text = exc.cli_message() if isinstance(exc, MissingWeightsError) else str(exc)
    return f"bapps {command}: error: {text}"


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; map its errors to a message and an exit status."""
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("bapps: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BappsError as exc:
        if _debug(args):
            traceback.print_exc()
        print(_refused(args.command, exc), file=sys.stderr)
        return exc.exit_code
    except PATH_ERRORS as exc:
        if _debug(args):
            traceback.print_exc()
        print(_refused(args.command, exc), file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # a bug: say so, and keep the traceback for --debug
        if _debug(args):
            traceback.print_exc()
            hint = ""
        else:
            hint = f" (run 'bapps --debug {args.command} ...' or set {DEBUG_ENV}=1 for the traceback)"
        print(f"bapps {args.command}: unexpected error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_UNEXPECTED
    return int(rc or EXIT_OK)


def main(argv: list[str] | None = None) -> int:
    """Run ``bapps`` with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: the command line after ``bapps``.

    Returns:
        The exit status (see the module doc).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    parser = build_parser([command] if command in COMMANDS else [])
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the (sub-)command they were given to, with its usage
        parser_of(args, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    return _run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
