"""Fixtures of the hostile-input tests: a small unjudged set (scikit-image photos, built once per
session), a study made from it, and a live waitress server on 127.0.0.1."""
from __future__ import annotations

import contextlib
import threading
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


class ServerThread:
    """``bapps_toolkit.judge.app.serve`` in a thread of the test process, on 127.0.0.1:``port``
    (0 = ephemeral); ``.url``, ``.port``; ``close()`` stops it (it can be started again on its port)."""

    def __init__(self, db: Path, port: int = 0, **kw) -> None:
        from bapps_toolkit.judge.app import serve
        from bapps_toolkit.judge.transport import served_port

        ready = threading.Event()
        self.server = None
        self.closing = False

        def on_ready(server) -> None:
            self.server = server
            ready.set()

        def run() -> None:
            try:
                serve(db, port=port, on_ready=on_ready, **kw)
            except (OSError, ValueError):
                if not self.closing:  # closing the sockets from this thread ends waitress' select loop
                    raise

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(30):
            raise RuntimeError("judge server did not start")
        self.port = served_port(self.server)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            channels = [d for d in list(self.server._map.values()) if d is not self.server]
            self.server.close()
            for ch in channels:  # open keep-alive connections too, as when the process dies
                with contextlib.suppress(OSError):
                    ch.close()
            self.thread.join(10)


@pytest.fixture()
def live_server():
    """Start the real waitress server (:class:`ServerThread`); all are closed at the end."""
    pytest.importorskip("flask")
    pytest.importorskip("waitress")
    servers: list[ServerThread] = []

    def start(db: Path, **kw) -> ServerThread:
        s = ServerThread(db, **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()
