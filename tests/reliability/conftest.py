"""Fixtures of the reliability tests: a 40-items-per-set copy of the mini set and its packed
file; the kill -9 trial summary printed at the end of the session (see :mod:`.harness`)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from .harness import TRIALS, Trial, copy_subset


@pytest.fixture(scope="session")
def rel_root(mini_root, tmp_path_factory) -> Path:
    """A 40-items-per-set copy of the mini set (all 11 sets). Read-only by convention."""
    return copy_subset(mini_root, tmp_path_factory.mktemp("rel_subset") / "bapps")


@pytest.fixture(scope="session")
def rel_h5(rel_root, tmp_path_factory) -> Path:
    from bapps_toolkit.data import pack

    return pack(rel_root, tmp_path_factory.mktemp("rel_h5") / "subset.h5", progress=False)


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pragma: no cover - reporting
    if not TRIALS:
        return
    terminalreporter.write_line("reliability: kill -9 trials")
    by_cmd: dict[str, list[Trial]] = {}
    for t in TRIALS:
        by_cmd.setdefault(t.command, []).append(t)
    for cmd, ts in by_cmd.items():
        kinds: dict[str, int] = {}
        for t in ts:
            kinds[t.outcome] = kinds.get(t.outcome, 0) + 1
        terminalreporter.write_line(
            f"  {cmd}: {len(ts)} trials, {sum(t.killed for t in ts)} killed mid-run; "
            + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())))
    path = os.environ.get("BAPPS_RELIABILITY_LOG")
    if path:
        Path(path).write_text(json.dumps([asdict(t) for t in TRIALS], indent=1))
