"""Helpers of the judge tests: a tiny JSON client of the HTTP API (standard library only) and
the builder of a small unjudged set from scikit-image photos."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bapps_toolkit.data.mini import load_photos


def call(url: str, path: str, body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 20.0) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            payload = r.read()
            status = r.status
            ctype = r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        payload, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
    return status, (json.loads(payload) if "json" in ctype else payload)


def nxt(url: str, rater: str, token: str | None = None) -> tuple[int, Any]:
    q = {"rater": rater, **({"token": token} if token else {})}
    return call(url, "/api/next?" + urllib.parse.urlencode(q))


def answer_all(url: str, rater: str, body_for: Callable[[dict], dict], *, rt_ms: float = 700.0) -> int:
    """Answer every trial the server gives ``rater`` with ``body_for(trial)`` (the answer fields);
    each answer must be acknowledged (200). Returns the number of answers."""
    n = 0
    while True:
        _, t = nxt(url, rater)
        if t["done"]:
            return n
        st, r = call(url, "/api/answer", {**body_for(t), "rater": rater, "item": t["item"], "rt_ms": rt_ms})
        assert st == 200, r
        n += 1


def jnd_timings() -> dict[str, float]:
    return {"ref_ms": 1000.0, "blank_ms": 250.0, "dist_ms": 1000.0}


def answer_for(trial: dict, side: str | None = None) -> dict:
    kind = trial["kind"]
    body = {"item": trial["item"], "side": side or ("left" if kind == "2afc" else "same"), "rt_ms": 500.0}
    if kind == "jnd":
        body["timings"] = jnd_timings()
    return body


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
