"""kill -9 ``bapps pack`` at seeded random points; the rerun gives a byte-identical file.

The child runs ``bapps pack`` on a 40-items-per-set copy of the mini set (all 11 sets, 1 120
images) with every decode task slowed by 40 ms (8 items per task; in-process decoding), so an
uninterrupted pack takes a few seconds and the kills land while arrays are being written, plus
the two commit points around the final rename.

After every kill: the output is either absent or complete (``verify`` passes and it is
byte-equal to the uninterrupted run's file); the only other files are the lock file and
``.OUT.tmp-*`` temporaries. The rerun (same command) completes, removes the temporaries, and
its file is byte-identical to the uninterrupted run's.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from bapps_toolkit.data import pack, verify

from .harness import Schedule, make_plans, record, run_child

pytestmark = pytest.mark.slow

N_TIME = 6
N_COMMIT = 2

_BODY = """
import sys, time
import importlib
pm = importlib.import_module("bapps_toolkit.data.pack")
dm = importlib.import_module("bapps_toolkit.data.decode")
real = dm._decode_task
def slow(*a, **k):
    time.sleep(0.04)
    return real(*a, **k)
dm._decode_task = slow
dm.TASK_ITEMS = 8
from bapps_toolkit.cli.main import main
_started()
sys.exit(main(["pack", sys.argv[1], sys.argv[2], "--workers", "1", "--no-progress"]))
"""


def _others(folder: Path, out: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name not in (out.name, out.name + ".lock"))


def test_kill_pack_at_random_points(rel_root, tmp_path):
    ref_out = tmp_path / "ref" / "bapps.h5"
    ref = run_child(_BODY, tmp_path / "ctl", [rel_root, ref_out])
    assert ref.status == "finished", ref.output
    reference = ref_out.read_bytes()
    verify(ref_out)

    plans = Schedule(make_plans(607, N_TIME, ref.seconds, ref.replaces, N_COMMIT),
                     make_plans(1607, 8, 0.5 * ref.seconds, 0, 0), N_TIME)
    for i, plan in enumerate(plans):
        out = tmp_path / f"trial{i:02d}" / "bapps.h5"
        res = run_child(_BODY, tmp_path / "ctl", [rel_root, out], delay=plan.delay,
                        kill_at_replace=plan.replace)
        assert res.status in ("killed", "finished"), res.output
        temps = [n for n in _others(out.parent, out)] if out.parent.exists() else []
        assert all(n.startswith(f".{out.name}.tmp-") for n in temps), temps
        if out.exists():
            verify(out)
            assert out.read_bytes() == reference, f"trial {i}: {out} complete-looking but different"
            left = ["complete file"]
            with pytest.raises(FileExistsError):
                pack(rel_root, out, progress=False)   # the rerun sees the finished file
        else:
            left = [f"{len(temps)} temporary"] if temps else ["nothing"]
            pack(rel_root, out, progress=False)
        assert out.read_bytes() == reference, f"trial {i} ({plan.describe()}): rerun output differs"
        assert _others(out.parent, out) == [], "the rerun left temporaries behind"
        plans.done(plan, res.status == "killed")
        record("pack", plan, res.status == "killed",
               ("killed" if res.status == "killed" else "finished before the kill")
               + "; rerun file byte-identical", left)
    assert plans.time_kills >= N_TIME, f"only {plans.time_kills} time-based kills landed mid-work"
