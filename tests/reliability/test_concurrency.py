"""Two real processes aimed at the same output: the second stops at once with a clear message.

The first process is held mid-work (``pack``: decode tasks slowed; ``train``: an ``on_step`` hook
the child injects into ``bapps train``; ``download``: a throttled server), the second runs the same
``bapps`` command line; it must exit with status 2, name the output and the holder's pid, and
leave the first run's work intact (the first is then let finish, or killed and checked).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bapps_toolkit.data import verify

from .harness import ThrottledServer

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

_SLOW_PACK = """
import os, sys, time, importlib
pm = importlib.import_module("bapps_toolkit.data.pack")
dm = importlib.import_module("bapps_toolkit.data.decode")
real = dm._decode_task
def slow(*a, **k):  # say "busy", then hold until the test drops the "go" file (lock held meanwhile)
    open(sys.argv[3], "w").close()
    go = sys.argv[3] + ".go"
    deadline = time.monotonic() + 240
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    return real(*a, **k)
dm._decode_task = slow
dm.TASK_ITEMS = 8
from bapps_toolkit.cli.main import main
sys.exit(main(["pack", sys.argv[1], sys.argv[2], "--workers", "1", "--no-progress"]))
"""


def _bapps(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bapps_toolkit", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"first process ended early: {proc.stdout.read()[-2000:]}")
        assert time.monotonic() < deadline, "first process never got going"
        time.sleep(0.02)


def test_second_pack_to_the_same_output_stops(rel_root, tmp_path):
    out = tmp_path / "same.h5"
    busy = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, "-c", _SLOW_PACK, str(rel_root), str(out), str(busy)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(busy, first)
        second = _bapps("pack", str(rel_root), str(out), "--no-progress")
        assert second.returncode == 2, second.stderr
        assert "bapps pack: error: another bapps process" in second.stderr
        assert f"(pid {first.pid})" in second.stderr and str(out) in second.stderr
        forced = _bapps("pack", str(rel_root), str(out), "--force", "--no-progress")
        assert forced.returncode == 2 and "already writing" in forced.stderr  # --force does not break a lock
        (tmp_path / "busy.go").touch()
        assert first.wait(timeout=300) == 0, first.stdout.read()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert verify(out)["ok"]


_PAUSED_TRAIN = """
import functools, os, sys, time, warnings
warnings.simplefilter("ignore")
from pathlib import Path
import bapps_toolkit.train as _tr  # bapps train calls bapps_toolkit.train.train at run time
from bapps_toolkit.cli.main import main
marker = Path(sys.argv[1])
def pause(epoch, step):  # after the first optimizer step: say so, then hold the run (and its lock)
    if (epoch, step) == (1, 1):
        marker.write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)
_tr.train = functools.partial(_tr.train, on_step=pause)
sys.exit(main(sys.argv[2:]))
"""


def _train_args(h5: Path, out: Path) -> list:
    return ["train", str(h5), "--out", str(out), "--backbone-weights", "alex=random", "--epochs", "1",
            "--decay-epochs", "0", "--batch-size", "20", "--datasets", "train/traditional",
            "--device", "cpu", "--no-progress"]


def test_second_train_into_the_same_out_stops(rel_h5, tmp_path):
    out = tmp_path / "run"
    marker = tmp_path / "paused"
    first = subprocess.Popen([sys.executable, "-c", _PAUSED_TRAIN, str(marker), *_train_args(rel_h5, out)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(marker, first)
        for extra in ([], ["--resume"], ["--overwrite"]):
            second = _bapps(*_train_args(rel_h5, out), *extra)
            assert second.returncode == 2, second.stderr
            assert "bapps train: error: another bapps process" in second.stderr, second.stderr
            assert f"(pid {first.pid})" in second.stderr and "training run" in second.stderr
        card_before = (out / "card.json").read_bytes()
        os.kill(first.pid, signal.SIGKILL)   # the holder dies: the kernel drops its lock
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert (out / "card.json").read_bytes() == card_before   # the refused runs touched nothing
    again = _bapps(*_train_args(rel_h5, out), "--resume")
    assert again.returncode == 0, again.stderr


def test_second_download_into_the_same_root_stops(tmp_path):
    if shutil.disk_usage(tmp_path).free < 3 * 10**9:  # the up-front check wants room for val (1.3 GB)
        pytest.skip("less than 3 GB free: bapps download --val-only would stop at its disk check")
    blob = os.urandom(4_000_000)  # ~50 s at this pace: the first is still downloading when the second starts
    with ThrottledServer({"/d/jnd.tar.gz": blob}, block=4096, pause=0.05) as srv:
        root = tmp_path / "root"
        first = subprocess.Popen([sys.executable, "-m", "bapps_toolkit", "download", "--root", str(root),
                                  "--base-url", srv.url("/d/"), "--val-only", "--no-progress"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_for(root / "jnd.tar.gz.part", first)
            second = _bapps("download", "--root", str(root), "--base-url", srv.url("/d/"), "--no-progress")
            assert second.returncode == 2, second.stderr
            assert "bapps download: error: another bapps process" in second.stderr
            assert f"(pid {first.pid})" in second.stderr
        finally:
            first.kill()
            first.wait()
