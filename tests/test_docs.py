"""The README and the docs site stay what a newcomer needs: a short README whose links, commands
and test command hold, and a CLI reference that covers every sub-command of the real parser."""
from __future__ import annotations

import importlib.util
import re
import shlex

from readme_blocks import DOCS, README, ROOT

from bapps_toolkit.cli.main import COMMANDS, build_parser


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_is_short():
    assert len(_readme().splitlines()) <= 250


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", _readme())
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local, "the README links no page"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_commands_parse():
    blocks = re.findall(r"```bash\n(.*?)```", _readme(), re.S)
    commands = [line for b in blocks for line in b.replace("\\\n", " ").splitlines()
                if line.strip().startswith("bapps ")]
    assert len(commands) >= 8
    for line in commands:
        args = build_parser().parse_args(shlex.split(line, comments=True)[1:])
        assert callable(args.func), line


def test_ci_runs_the_readme_test_command():
    setup = re.findall(r"```bash\n(python3 -m venv .*?)\n```", _readme())
    assert len(setup) == 2 and setup[1].endswith("&& python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = setup[1].split(" && python -m pytest")[0]
    assert install.replace('-e ".[test,plot,notebooks]"', '-e ".[test,plot,notebooks,docs]"') in ci
    assert re.search(r"^python -m pytest$", ci, re.M)


def _hook():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks" / "cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_covers_every_command():
    text = _hook().render()
    headings = re.findall(r"^#+ `(bapps[^`]*)`$", text, re.M)
    assert headings[0] == "bapps"
    for name in COMMANDS:
        assert f"bapps {name}" in headings, name
    assert "bapps judge serve" in headings and "bapps judge export" in headings
    assert text.count("```text\nusage: bapps") == len(headings)


def test_cli_reference_page_is_filled():
    hook = _hook()
    page = (DOCS / hook.PAGE).read_text(encoding="utf-8")

    class File:
        src_uri = hook.PAGE

    class Page:
        file = File()

    out = hook.on_page_markdown(page, Page(), None, None)
    assert hook.MARKER not in out and "## `bapps evaluate`" in out
