"""The "Your own judgments" example of docs/tasks/own-data.md, run as written (in a temporary folder)."""
from __future__ import annotations

import runpy
import shlex

import pytest
from readme_blocks import section_blocks

from bapps_toolkit.cli.main import main


def test_readme_own_judgments(tmp_path, monkeypatch, capsys):
    code, commands = section_blocks("tasks/own-data.md", "## Your own judgments")
    assert code.startswith("# own_set.py\n")
    (tmp_path / "own_set.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    assert commands[0] == "python own_set.py"
    runpy.run_path(str(tmp_path / "own_set.py"), run_name="__main__")
    for line in commands[1:]:
        argv = shlex.split(line)
        assert argv[0] == "bapps"
        with pytest.warns(UserWarning) if "random" in argv else _nothing():
            assert main(argv[1:] + ["--no-progress"]) == 0, line
    out = capsys.readouterr().out
    assert "2afc/train/blur" in out and "128x128" in out
    table = (tmp_path / "own.md").read_text()
    for text in ("SYNTHETIC", "2AFC blur", "JND blur", "l2", "ssim", "UNCALIBRATED"):
        assert text in table
    trained = (tmp_path / "own-lin.md").read_text()
    assert "2AFC blur" in trained and "UNCALIBRATED" in trained
    print(table)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
