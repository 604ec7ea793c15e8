"""Issue 15: ``bapps --help``, every sub-command's ``--help`` and argument errors import neither
torch nor pandas (each case runs in a fresh interpreter and inspects ``sys.modules``)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bapps_toolkit.cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from bapps_toolkit.cli.main import main
try:
    rc = main(json.loads(sys.argv[1]))
except SystemExit as exc:
    rc = exc.code
print(json.dumps({"rc": rc, "heavy": sorted(m for m in ("torch", "pandas") if m in sys.modules)}), file=sys.stderr)
"""


def _commands() -> list[str]:
    """Every sub-command the parser lists (a new command is covered without editing this file)."""
    act = next(a for a in build_parser([])._actions if isinstance(a, argparse._SubParsersAction))
    return list(act.choices)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _probe(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True,
                          env=_env(), cwd=ROOT, timeout=300)
    return json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], [], ["--version"], ["no-such-command"], ["--no-such-flag"],
                                  ["evaluate", "--no-such-flag"], ["evaluate"],
                                  ["evaluate", "x.h5", "--precision", "fp64"]],
                         ids=lambda a: " ".join(a) or "bare")
def test_help_and_argument_errors_import_neither_torch_nor_pandas(argv):
    got = _probe(argv)
    assert got["heavy"] == [], f"bapps {' '.join(argv)} imported {got['heavy']}"
    assert got["rc"] in (0, 2)


@pytest.mark.parametrize("command", _commands())
def test_command_help_imports_neither_torch_nor_pandas(command):
    got = _probe([command, "--help"])
    assert got == {"rc": 0, "heavy": []}


@pytest.mark.parametrize("command", _commands())
def test_command_argument_error_imports_neither_torch_nor_pandas(command):
    got = _probe([command, "--no-such-flag"])
    assert got == {"rc": 2, "heavy": []}


def test_every_command_is_probed():
    assert len(_commands()) == len(COMMANDS) >= 11 and {"demo", "train", "loss-study", "score"} <= set(_commands())


def test_python_m_bapps_toolkit_help_does_not_import_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "bapps_toolkit", "--help"],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: bapps")
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "bapps_toolkit.cli.main" in imported  # the probe sees the imports
    assert not imported & {"torch", "pandas"}


def test_the_probe_sees_torch_when_a_command_runs():
    assert "torch" in _probe(["metrics", "--names-only"])["heavy"]


def test_listed_help_agrees_with_each_command_module():
    act = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    registered = {a.dest: a.help for a in act._choices_actions}
    assert registered == {name: text for name, (_, text) in COMMANDS.items()}
    assert list(act.choices) == list(COMMANDS)


def test_lazy_functions_stay_functions_when_their_submodules_load():
    """``bapps_toolkit.evaluate`` / ``bapps_toolkit.data.pack`` are functions that share their
    names with a subpackage / submodule: importing those must not rebind the name to the module."""
    code = ("import bapps_toolkit as bt, bapps_toolkit.data as d\n"
            "import bapps_toolkit.evaluate.runner, bapps_toolkit.data.pack\n"
            "assert callable(bt.evaluate) and bt.evaluate.__name__ == 'evaluate', bt.evaluate\n"
            "assert callable(d.pack) and d.pack.__name__ == 'pack', d.pack\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
