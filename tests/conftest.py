"""Shared fixtures.

* ``mini_root`` (session): the default synthetic mini set (``make_mini(seed=0)``), built once per
  test session into a temporary folder. Read-only by convention — copy before modifying.
* ``mini_h5`` (session): ``mini_root`` packed into one HDF5 file. Read-only by convention.

Under pytest-xdist (``python -m pytest`` runs two workers) the workers share one build of each:
the first worker to need it builds it under a lock file, the others wait and reuse it.
* ``tiny_tree`` (function): a builder of small hand-made BAPPS trees for layout/error tests.

Offline by construction: for the whole session ``TORCH_HOME`` points at an empty temporary folder
(a user's cached ImageNet weights cannot change what the tests see) and
``BAPPS_WEIGHTS_BASE_URL`` at a closed port on 127.0.0.1, so code that would download backbone
weights (``bapps demo``, ``backbone_weights=None``) fails at once with its WeightsError instead
of reaching the internet. Subprocesses started by the tests inherit both.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_TIMES: dict[str, float] = {}


def _share_the_cores() -> None:
    """Give each pytest-xdist worker its share of the cores (torch threads and, through
    ``OMP_NUM_THREADS``, the subprocesses it starts). Two workers each running torch's default of
    one thread per core oversubscribe the machine, and OpenMP's waiting threads then slow small
    tensor operations several-fold. An ``OMP_NUM_THREADS`` the user set is kept."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    share = max(1, len(os.sched_getaffinity(0)) // max(1, int(workers)))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


_share_the_cores()


@pytest.fixture(scope="session", autouse=True)
def _offline_weights(tmp_path_factory):
    import os
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()
    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", "BAPPS_WEIGHTS_BASE_URL")}
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch_home"))
    os.environ["BAPPS_WEIGHTS_BASE_URL"] = closed
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _session_dir(tmp_path_factory, name: str) -> Path:
    """A folder for a session fixture's files. Under pytest-xdist every worker gets the same
    folder (beside the workers' own base folders), so the workers share one build."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / name
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp(name)


@contextmanager
def _built_once(folder: Path) -> Iterator[bool]:
    """Yield True when ``folder``'s files still have to be built (then mark them built on a clean
    exit), False when another worker built them; workers wait for each other on a lock file."""
    done = folder / ".built"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks until the worker that builds has finished
        todo = not done.exists()
        yield todo
        if todo:
            done.write_text("ok\n")


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory) -> Path:
    from bapps_toolkit.data import make_mini

    folder = _session_dir(tmp_path_factory, "bapps_mini")
    with _built_once(folder) as todo:
        if todo:
            t0 = time.perf_counter()
            make_mini(folder / "mini", seed=0, progress=False)
            _TIMES["mini_root"] = time.perf_counter() - t0
    return folder / "mini"


@pytest.fixture(scope="session")
def mini_h5(mini_root, tmp_path_factory) -> Path:
    from bapps_toolkit.data import pack

    folder = _session_dir(tmp_path_factory, "bapps_h5")
    with _built_once(folder) as todo:
        if todo:
            t0 = time.perf_counter()
            pack(mini_root, folder / "mini.h5", progress=False)
            _TIMES["mini_h5"] = time.perf_counter() - t0
    return folder / "mini.h5"


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pragma: no cover - reporting
    if _TIMES:
        terminalreporter.write_line(
            "bapps fixtures: " + ", ".join(f"{k} built in {v:.1f} s" for k, v in _TIMES.items()))


def patch_value(v: int, channel_shift: int = 0) -> np.ndarray:
    """A 64×64 RGB patch whose pixels encode ``v`` (for checking which file landed where)."""
    a = np.empty((64, 64, 3), np.uint8)
    a[..., 0] = v % 256
    a[..., 1] = (v * 7 + channel_shift) % 256
    a[..., 2] = np.arange(64, dtype=np.uint8)[None, :]
    return a


def write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG", compress_level=1)


def write_npy(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(value))


@pytest.fixture
def tiny_tree(tmp_path) -> Callable[..., Path]:
    """``tiny_tree(keys=("2afc/val/cnn",), n=4, stems=None)`` -> root with hand-made sets.

    2AFC item ``i`` (stem ``s``): ref = patch_value(10 i), p0 = patch_value(10 i + 1),
    p1 = patch_value(10 i + 2), judge = (i % 11) / 10. JND: p0 = patch_value(10 i + 3),
    p1 = patch_value(10 i + 4), same = (i % 11) / 10.
    """
    counter = {"n": 0}

    def build(keys: Iterable[str] = ("2afc/val/cnn",), n: int = 4,
              stems: list | None = None, name: str | None = None) -> Path:
        counter["n"] += 1
        root = tmp_path / (name or f"tree{counter['n']}")
        names = stems or [f"{i:06d}" for i in range(n)]
        for key in keys:
            d = root / key
            for i, s in enumerate(names):
                if key.startswith("2afc/"):
                    write_png(d / "ref" / f"{s}.png", patch_value(10 * i))
                    write_png(d / "p0" / f"{s}.png", patch_value(10 * i + 1))
                    write_png(d / "p1" / f"{s}.png", patch_value(10 * i + 2))
                    write_npy(d / "judge" / f"{s}.npy", np.array([(i % 11) / 10], np.float32))
                else:
                    write_png(d / "p0" / f"{s}.png", patch_value(10 * i + 3))
                    write_png(d / "p1" / f"{s}.png", patch_value(10 * i + 4))
                    write_npy(d / "same" / f"{s}.npy", np.array([(i % 11) / 10], np.float32))
        return root

    return build
