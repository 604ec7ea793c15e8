"""CONTRIBUTING.md's recipes, run as written: the metric (its module, a first use of it, the same
file as a plugin through the CLI) and the command (its module, its COMMANDS entry, its use).

The metric runs in subprocesses, so that registering ``charbonnier`` does not change this test
process's metric registry; the command runs in this process with the module found through an
extra entry on ``bapps_toolkit.cli.__path__`` and its ``COMMANDS`` entry patched in.
"""
from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bapps_toolkit.cli as cli_package
from bapps_toolkit.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


def _section(heading: str) -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert heading + "\n" in text, f"CONTRIBUTING.md lost {heading!r}"
    return text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, re.S)


def _commands(block: str) -> list[list[str]]:
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _ruff(path: Path) -> None:
    """The example meets the package's lint gates, docstring rules (Google convention) included."""
    pytest.importorskip("ruff")
    cmd = [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
           "--extend-select", "D", "--config", 'lint.pydocstyle.convention="google"', str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_metric_recipe(tmp_path, mini_root):
    section = _section("## Adding a metric")
    module, registration, first_use = _blocks(section, "python")
    (shell,) = _blocks(section, "bash")
    assert module.startswith("# charbonnier.py\n")
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "charbonnier.py").write_text(module)
    _ruff(plugin_dir / "charbonnier.py")
    # 1. the file as a plugin, from the folder that holds it, through the CLI
    make_mini, evaluate = _commands(shell)
    assert make_mini == ["bapps", "make-mini", "mini"]
    (plugin_dir / "mini").symlink_to(mini_root)  # the session's mini set = `bapps make-mini mini`
    assert evaluate[0] == "bapps"
    res = subprocess.run([sys.executable, "-m", "bapps_toolkit", *evaluate[1:], "--no-progress"],
                         cwd=plugin_dir, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "charbonnier.py:Charbonnier" in res.stdout and "l2" in res.stdout
    # 2. the same file moved into the package and registered there, then its first test
    package_dir = tmp_path / "package"
    package_dir.mkdir()
    (package_dir / "charbonnier.py").write_text(module)
    register = textwrap.dedent(registration).replace("from .charbonnier", "from bapps_toolkit.metrics.charbonnier")
    script = tmp_path / "first_use.py"
    script.write_text("import bapps_toolkit.metrics as _metrics\n"
                      "from bapps_toolkit.metrics import register_metric\n"
                      f"_metrics.__path__.append({str(package_dir)!r})\n" + register + first_use)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("charbonnier [")


def test_command_recipe(tmp_path, mini_root, monkeypatch, capsys):
    section = _section("## Adding a command")
    module, entry = _blocks(section, "python")
    (shell,) = _blocks(section, "bash")
    assert module.startswith("# bapps_toolkit/cli/cmd_sets.py\n")
    extra = tmp_path / "cli_extra"
    extra.mkdir()
    (extra / "cmd_sets.py").write_text(module)
    _ruff(extra / "cmd_sets.py")
    ((name, spec),) = ast.literal_eval("{" + entry.strip() + "}").items()
    monkeypatch.setattr(cli_package, "__path__", [*cli_package.__path__, str(extra)])
    monkeypatch.setitem(cli_main.COMMANDS, name, spec)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mini").symlink_to(mini_root)
    try:
        make_mini, *uses = _commands(shell)
        assert make_mini == ["bapps", "make-mini", "mini"]
        assert uses[0] == ["bapps", "sets", "mini"]
        assert cli_main.main(uses[0][1:]) == 0
        printed = capsys.readouterr().out.split()
        from bapps_toolkit.data import find_sets
        assert printed == find_sets(mini_root) and "2afc/val/cnn" in printed
        assert uses[1] == ["bapps", "sets", "--help"]
        with pytest.raises(SystemExit) as stop:
            cli_main.main(uses[1][1:])
        assert stop.value.code == 0
        help_text = capsys.readouterr().out
        assert spec[1] in cli_main.build_parser().format_help()  # listed under `bapps --help`
        assert "examples:" in help_text and "bapps sets bapps.h5" in help_text
    finally:
        sys.modules.pop("bapps_toolkit.cli.cmd_sets", None)
