"""Fixtures of the judge tests: a small unjudged set built from scikit-image photos, a study
database made from it, and a live waitress server on 127.0.0.1 (ephemeral port).

The set is in the BAPPS layout without ``judge/`` and ``same/`` — the layout ``bapps
loss-study`` writes. Each 2AFC item records the distortion strengths of p0 and p1 (``truth``),
so simulated raters can answer like an observer who prefers the weaker distortion.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from .helpers import build_unjudged


@pytest.fixture()
def unjudged(tmp_path):
    root = tmp_path / "set"
    truth = build_unjudged(root)
    return root, truth


@pytest.fixture()
def make_study(tmp_path, unjudged):
    from bapps_toolkit.judge import create_from_set

    def make(name: str = "study.sqlite", **settings) -> Path:
        return create_from_set(unjudged[0], tmp_path / name, **settings)
    return make


class LiveServer:
    def __init__(self, db: Path, **kw) -> None:
        from bapps_toolkit.judge.app import serve
        ready = threading.Event()
        self.server = None

        def on_ready(server) -> None:
            self.server = server
            ready.set()

        self.closing = False

        def run() -> None:
            try:
                serve(db, port=0, on_ready=on_ready, **kw)
            except (OSError, ValueError):
                if not self.closing:  # closing the sockets from this thread ends waitress' select loop
                    raise

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(20):
            raise RuntimeError("judge server did not start")
        self.url = f"http://127.0.0.1:{self.server.effective_port}"

    def close(self) -> None:
        self.closing = True
        self.server.close()
        self.thread.join(10)


@pytest.fixture()
def live():
    pytest.importorskip("flask")
    pytest.importorskip("waitress")
    servers: list[LiveServer] = []

    def start(db: Path, **kw) -> LiveServer:
        s = LiveServer(db, **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()
