"""The process group that :func:`bapps_toolkit._distributed.setup` joins is gone after
:func:`~bapps_toolkit._distributed.teardown`, on every rank (torchrun, 2 gloo processes).

With torch 2.13, ``torch._dynamo`` imported after ``init_process_group`` (the first Adam or DDP
does it) kept the default group alive past ``destroy_process_group()``; it was then destroyed
during interpreter shutdown, where gloo aborted a rank once in CI after a finished training run
("terminate called without an active exception"). The script below does what training does
(Adam and DDP after setup, one step) and reports whether the group object survives teardown.
"""
from __future__ import annotations

import textwrap

import pytest
from two_ranks import run_two_ranks

pytestmark = pytest.mark.slow

_SCRIPT = textwrap.dedent("""
    import gc, os, sys, weakref
    import torch
    import torch.distributed as dist
    from bapps_toolkit import _distributed as D

    ctx = D.setup("cpu")
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters())
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    ddp(torch.rand(4, 3)).sum().backward()
    opt.step()
    del ddp
    group = weakref.ref(dist.group.WORLD)
    D.teardown(ctx)
    gc.collect()
    with open(os.path.join(sys.argv[1], f"rank{ctx.rank}.txt"), "w") as out:
        out.write("alive" if group() is not None else "freed")
""")


def test_process_group_freed_by_teardown(tmp_path):
    script = tmp_path / "teardown.py"
    script.write_text(_SCRIPT)
    proc = run_two_ranks(str(script), str(tmp_path), timeout=300)
    # one file per rank: the two ranks share torchrun's stdout, where their lines can interleave
    states = [(tmp_path / f"rank{r}.txt").read_text() if (tmp_path / f"rank{r}.txt").exists() else "missing"
              for r in (0, 1)]
    assert states == ["freed", "freed"], proc.stdout[-2000:] + proc.stderr[-2000:]
