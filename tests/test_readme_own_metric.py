"""The README's "Your own metric" example, run as written (on the session's mini set)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from bapps_toolkit.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> tuple[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Your own metric\n", 1)[1].split("\n## ", 1)[0]
    py = re.search(r"```python\n(.*?)```", section, re.S)
    sh = re.search(r"```bash\n(.*?)```", section, re.S)
    assert py and sh
    return py.group(1), [c for c in sh.group(1).replace("\\\n", " ").splitlines() if c.strip()]


def test_readme_own_metric(tmp_path, mini_root, monkeypatch, capsys):
    code, commands = _blocks()
    assert code.startswith("# my_metric.py\n")
    (tmp_path / "my_metric.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    make_mini, evaluate = commands
    assert shlex.split(make_mini) == ["bapps", "make-mini", "mini"]
    (tmp_path / "mini").symlink_to(mini_root)  # the session's mini set = `bapps make-mini mini`
    argv = shlex.split(evaluate)
    assert argv[0] == "bapps"
    assert main(argv[1:] + ["--no-progress"]) == 0
    out = capsys.readouterr().out
    table = (tmp_path / "table.md").read_text()
    for name in ("l2", "ssim", "my_metric.py:l1", "my_metric.py:scaled_l1"):
        assert name in table and name in out
    print(table)


def _net_blocks() -> tuple[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Training LPIPS layers on your own network\n", 1)[1].split("\n### ", 1)[0]
    py = re.search(r"```python\n(.*?)```", section, re.S)
    sh = re.search(r"```bash\n(.*?)```", section, re.S)
    assert py and sh
    return py.group(1), [c for c in sh.group(1).replace("\\\n", " ").splitlines() if c.strip()]


def test_readme_own_network(tmp_path, mini_root, monkeypatch, capsys):
    """The "Training LPIPS layers on your own network" example: train on the plugin, evaluate the run."""
    code, commands = _net_blocks()
    assert code.startswith("# my_net.py\n")
    (tmp_path / "my_net.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    make_mini, train_cmd, evaluate = commands
    assert shlex.split(make_mini) == ["bapps", "make-mini", "mini"]
    (tmp_path / "mini").symlink_to(mini_root)
    for cmd in (train_cmd, evaluate):
        argv = shlex.split(cmd)
        assert argv[0] == "bapps"
        assert main(argv[1:] + ["--no-progress"]) == 0
    out = capsys.readouterr().out
    table = (tmp_path / "my_net.md").read_text()
    for name in ("l2", "lpips[my_net.py:Net]", "UNCALIBRATED"):
        assert name in table and name in out
    print(table)
