"""Fixtures of the judge tests: a small unjudged set built from scikit-image photos, a study
database made from it, and a live waitress server on 127.0.0.1 (ephemeral port).

The set is in the BAPPS layout without ``judge/`` and ``same/`` — the layout ``bapps
loss-study`` writes. Each 2AFC item records the distortion strengths of p0 and p1 (``truth``),
so simulated raters can answer like an observer who prefers the weaker distortion.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.data.mini import load_photos

pytest.importorskip("flask")
pytest.importorskip("waitress")


def _patch(rng, photos) -> np.ndarray:
    ph = photos[int(rng.integers(len(photos)))]
    y = int(rng.integers(ph.shape[0] - 64))
    x = int(rng.integers(ph.shape[1] - 64))
    return ph[y:y + 64, x:x + 64]


def _distort(x: np.ndarray, t: float, rng) -> np.ndarray:
    """Gaussian noise of standard deviation ``60 t`` grey levels."""
    return np.clip(x.astype(np.float64) + rng.normal(0, 60.0 * t, x.shape), 0, 255).astype(np.uint8)


def build_unjudged(root: Path, n_2afc: int = 12, n_jnd: int = 6, seed: int = 0,
                   key_2afc: str = "2afc/val/cnn") -> dict:
    rng = np.random.default_rng(seed)
    photos = load_photos()
    truth: dict = {"2afc": {}, "jnd": {}}
    for i in range(n_2afc):
        ref = _patch(rng, photos)
        t0, t1 = rng.uniform(0.05, 1.0, 2)
        stem = f"{i:03d}"
        for role, img in (("ref", ref), ("p0", _distort(ref, t0, rng)), ("p1", _distort(ref, t1, rng))):
            d = root / key_2afc / role
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{stem}.png")
        truth["2afc"][stem] = (float(t0), float(t1))
    for i in range(n_jnd):
        ref = _patch(rng, photos)
        t = float(rng.uniform(0.0, 0.6))
        stem = f"{i:03d}"
        for role, img in (("p0", ref), ("p1", _distort(ref, t, rng))):
            d = root / "jnd" / "val" / "cnn" / role
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{stem}.png")
        truth["jnd"][stem] = t
    return truth


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
    servers: list[LiveServer] = []

    def start(db: Path, **kw) -> LiveServer:
        s = LiveServer(db, **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()
