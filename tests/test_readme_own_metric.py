"""The "Your own metric" examples of docs/tasks/own-metric.md, run as written (on the session's mini set)."""
from __future__ import annotations

import shlex

from readme_blocks import section_blocks

from bapps_toolkit.cli.main import main


def test_readme_own_metric(tmp_path, mini_root, monkeypatch, capsys):
    code, commands = section_blocks("tasks/own-metric.md", "## Your own metric")
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


def test_readme_own_network(tmp_path, mini_root, monkeypatch, capsys):
    """The "Training LPIPS layers on your own network" example: train on the plugin, evaluate the run."""
    code, commands = section_blocks("tasks/own-metric.md", "## Training LPIPS layers on your own network")
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
