"""CONTRIBUTING.md's "Adding a benchmark" runs as written: its toy.py and its commands."""
from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

import pytest
from iqa.toy_benchmark import build_toy

from bapps_toolkit.cli.main import main
from bapps_toolkit.data.iqa import registry

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def _section() -> tuple[str, list[str]]:
    text = CONTRIBUTING.read_text(encoding="utf-8").split("## Adding a benchmark\n", 1)[1].split("\n## ", 1)[0]
    py = re.search(r"```python\n(.*?)```", text, re.S)
    sh = re.search(r"```bash\n(.*?)```", text, re.S)
    assert py and sh, "CONTRIBUTING.md's benchmark section lost its python or bash block"
    return py.group(1), [c for c in sh.group(1).splitlines() if c.strip()]


@pytest.fixture
def toy_registered_once():
    yield
    if "toy" in registry.benchmarks():
        registry.unregister_benchmark("toy")


def test_the_worked_example_runs(tmp_path, monkeypatch, capsys, toy_registered_once):
    code, commands = _section()
    monkeypatch.chdir(tmp_path)
    Path("toy.py").write_text(code, encoding="utf-8")
    build_toy(tmp_path / "toyset")
    assert len(commands) == 4 and all(c.startswith("bapps ") for c in commands)
    for i, command in enumerate(commands):
        argv = shlex.split(command)[1:]
        if argv[0] == "evaluate":
            argv += ["--device", "cpu", "--quiet", "--out", f"rows{i}.csv"]
        assert main(argv) == 0, command
    out = capsys.readouterr().out
    assert "packed toy (9 items" in out and "toy: 9 items" in out
    for i, metrics in ((0, {"l2", "ssim"}), (3, {"l2"})):
        with open(f"rows{i}.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["benchmark"] == "toy" and r["figure"] == "srcc"]
        assert {r["metric"] for r in rows} == metrics and all(r["synthetic"] == "True" for r in rows)
    assert "toy" in registry.benchmark_names("correlation")
