"""docs/guides/competitions.md runs as written: its ``bash`` blocks (bapps commands) and
``python`` blocks, in order, in an empty folder (``sh`` blocks — installing, serving — are shown,
not run). The dry run's judgments are the simulated observer's."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bapps_toolkit.cli.main import main

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "competitions.md"


def _blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(bash|python|sh)\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)


def test_the_guide_has_runnable_blocks_of_each_step():
    kinds = [k for k, _ in _blocks()]
    assert kinds.count("bash") >= 4 and kinds.count("python") >= 3
    text = GUIDE.read_text(encoding="utf-8")
    for needle in ("Wang & Simoncelli", "IEEE TPAMI", "UNCALIBRATED", "SIMULATED", "aggressiveness", "resistance"):
        assert needle in text


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_guide_runs_end_to_end(tmp_path, monkeypatch, capsys):
    pytest.importorskip("flask")
    monkeypatch.chdir(tmp_path)
    for kind, body in _blocks():
        if kind == "sh":
            continue
        if kind == "python":
            exec(compile(body, str(GUIDE), "exec"), {"__name__": "guide"})
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if line.strip():
                argv = shlex.split(line)
                assert argv[0] == "bapps", line
                assert main(argv[1:]) == 0, line
    out = capsys.readouterr().out
    assert "people sided with" in out and (tmp_path / "verdict" / "pairs.csv").is_file()
    assert (tmp_path / "mad-l2-ssim" / "grid.png").is_file() and (tmp_path / "gmad" / "competition.json").is_file()


def test_the_readme_commands_parse():
    from bapps_toolkit.cli.main import build_parser

    page = GUIDE.parents[1] / "tasks" / "collect.md"  # the short form that used to be in the README
    text = page.read_text(encoding="utf-8")
    section = text.split("## Metric competitions (MAD, gMAD)\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    for line in block.strip().splitlines():
        args = build_parser().parse_args(shlex.split(line)[1:])
        assert callable(args.func), line
