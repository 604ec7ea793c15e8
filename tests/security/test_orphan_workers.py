"""Worker processes die with their parent: no orphan after ``kill -9``.

Each case runs a real command in a child interpreter with its workers slowed down (so they are
busy or idle-waiting when the kill lands), waits until the child's worker processes exist, kills
the child with SIGKILL and checks that every worker is gone (or a zombie awaiting its reaper)
within :data:`GRACE_S` seconds:

* ``bapps pack`` with ``--workers 2`` (its decode pool; every task sleeps 30 s);
* ``bapps evaluate`` of a folder (the same decode pool, through the folder loaders);
* ``bapps score --dir0 --dir1`` with ``--workers 2`` (a torch ``DataLoader``'s workers; every
  image takes 30 s to load — torch's own watchdog only looks at the parent between items);
* ``bapps make-mini`` with ``--workers 2`` (its build pool);
* a pool made where ``prctl`` is unavailable (the watchdog-thread fallback).

And the race: a worker whose recorded parent is not its parent (the parent died before the
worker asked for the death signal) ends at once.

Before this test's fix every worker of the first four outlived the kill (idle, 50–70 MB each).
Workers that survive are killed by the test itself (by process id) so a failure leaves nothing.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")

#: Seconds the workers get to disappear after their parent is killed.
GRACE_S = 5.0
#: Seconds to wait for the child to start its workers.
START_S = 180.0

_SLOW_DECODE = """
import time
import importlib
dm = importlib.import_module("bapps_toolkit.data.decode")
dm.POOL_MIN_IMAGES = 0
dm.TASK_ITEMS = 2
_real = dm._decode_task
def _slow(*a, **k):
    time.sleep(30)
    return _real(*a, **k)
dm._decode_task = _slow
"""

BODIES = {
    "pack": _SLOW_DECODE + """
from bapps_toolkit.cli.main import main
main(["pack", ROOT, OUT + "/x.h5", "--workers", "2", "--no-progress"])
""",
    "evaluate": _SLOW_DECODE + """
import importlib
dm = importlib.import_module("bapps_toolkit.data.decode")
dm.default_workers = lambda: 2
from bapps_toolkit.cli.main import main
main(["evaluate", ROOT, "--metrics", "l2", "--n-boot", "5", "--no-progress", "--quiet"])
""",
    "score": """
import time
import importlib
ps = importlib.import_module("bapps_toolkit.scoring.pair_stream")
_real = ps.ImageTuples.__getitem__
def _slow(self, i):
    time.sleep(30)
    return _real(self, i)
ps.ImageTuples.__getitem__ = _slow
from bapps_toolkit.cli.main import main
main(["score", "--dir0", ROOT + "/d0", "--dir1", ROOT + "/d1", "--metric", "l2", "--workers", "2",
      "--batch-size", "2", "--out", OUT + "/s.csv", "--no-progress"])
""",
    "make-mini": """
import time
import importlib
mb = importlib.import_module("bapps_toolkit.data.mini.build")
def _slow(job):
    time.sleep(30)
mb._build_set = _slow
from bapps_toolkit.cli.main import main
main(["make-mini", OUT + "/mini", "--workers", "2", "--no-progress"])
""",
    "watchdog fallback": """
import time
import bapps_toolkit._workers as w
w._prctl_pdeathsig = lambda sig: False
ex = w.process_pool(2)
futs = [ex.submit(time.sleep, 60) for _ in range(2)]
time.sleep(120)
""",
}


# ------------------------------------------------------------------------------------- /proc
def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time)`` of ``pid`` from ``/proc``, ``None`` if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def _children(parent: int) -> dict[int, int]:
    """Live children of ``parent``: ``{pid: start time}``."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] == parent and st[0] != "Z":
                out[int(entry)] = st[2]
    return out


def _alive(pid: int, started: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == started and st[0] != "Z"


# -------------------------------------------------------------------------------------- data
def _folders(root: Path) -> None:
    """A 2AFC set of 8 triplets (for pack and evaluate) and two folders of 8 images (score)."""
    rng = np.random.default_rng(0)
    for sub in ("2afc/val/cnn/ref", "2afc/val/cnn/p0", "2afc/val/cnn/p1", "d0", "d1"):
        (root / sub).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / sub / f"{i:03d}.png")
    (root / "2afc/val/cnn/judge").mkdir(parents=True)
    for i in range(8):
        np.save(root / "2afc/val/cnn/judge" / f"{i:03d}.npy", np.array([0.5], np.float32))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("orphans") / "data"
    _folders(root)
    return root


def _start(body: str, root: Path, out: Path) -> subprocess.Popen:
    code = f"ROOT = {str(root)!r}\nOUT = {str(out)!r}\n" + textwrap.dedent(body)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stderr.txt", "wb") as err:
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=err,
                                env=dict(os.environ, PYTHONWARNINGS="ignore"))


def _wait_for_workers(child: subprocess.Popen, n: int, log: Path) -> dict[int, int]:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        kids = _children(child.pid)
        if len(kids) >= n:
            time.sleep(0.5)   # let the workers run their initialiser
            return _children(child.pid)
        if child.poll() is not None:
            pytest.fail(f"the child ended (rc {child.returncode}) before starting {n} workers:\n"
                        + log.read_text(errors="replace")[-3000:])
        time.sleep(0.1)
    pytest.fail(f"the child did not start {n} workers in {START_S:.0f} s")


@pytest.mark.parametrize("case", list(BODIES))
def test_workers_die_with_a_killed_parent(data_root, tmp_path, case):
    child = _start(BODIES[case], data_root, tmp_path / "out")
    workers: dict[int, int] = {}
    try:
        workers = _wait_for_workers(child, 2, tmp_path / "out" / "stderr.txt")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        t0 = time.monotonic()
        while time.monotonic() - t0 < GRACE_S and any(_alive(p, s) for p, s in workers.items()):
            time.sleep(0.05)
        left = [p for p, s in workers.items() if _alive(p, s)]
        assert not left, f"{case}: workers {left} outlived their parent by {GRACE_S:.0f} s"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for p, s in workers.items():
            if _alive(p, s):
                os.kill(p, signal.SIGKILL)


def test_a_worker_whose_parent_already_died_ends_at_once():
    """The race before ``prctl``: the recorded parent is not the parent any more."""
    code = ("from bapps_toolkit._workers import die_with_parent\n"
            "import os, time\n"
            "die_with_parent(os.getppid() + 1_000_000)\n"
            "time.sleep(60)\n")
    res = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert (res.returncode, res.stderr) == (1, b"")


def test_a_worker_with_its_parent_alive_keeps_running():
    code = ("from bapps_toolkit._workers import die_with_parent\n"
            "import os\n"
            "die_with_parent(os.getppid())\n"
            "print('alive')\n")
    res = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "alive", res.stderr
