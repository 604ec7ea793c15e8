"""Fixtures of the hostile-input tests: a small unjudged set (scikit-image photos, built once per
session), a study made from it, and a live waitress server on 127.0.0.1."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def hostile_set(tmp_path_factory) -> Path:
    from judge.helpers import build_unjudged

    root = tmp_path_factory.mktemp("hostile") / "set"
    build_unjudged(root, n_2afc=6, n_jnd=3, seed=7)
    return root


@pytest.fixture()
def study(hostile_set, tmp_path) -> Path:
    """A study of 9 items, 4 per rater, up to 50 raters per item, no sentinels."""
    from bapps_toolkit.judge import create_from_set

    return create_from_set(hostile_set, tmp_path / "study.sqlite", sentinel_share=0.0, items_per_rater=4,
                           judgments_per_item=50)


@pytest.fixture()
def live_server():
    """Start the real waitress server on an ephemeral loopback port (``.url``, ``.port``)."""
    pytest.importorskip("flask")
    pytest.importorskip("waitress")
    from judge.conftest import LiveServer

    servers: list = []

    def start(db: Path, **kw):
        s = LiveServer(db, **kw)
        s.port = int(s.url.rsplit(":", 1)[1])
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()
