"""Run a command as two ``torchrun`` ranks on this machine (gloo on 127.0.0.1, one thread per
rank), for the tests that compare two processes with one."""
from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(*target: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 TARGET…`` (a script path, or ``-m module`` and its arguments)
    with ``OMP_NUM_THREADS=1``; fails the test with the tail of its output unless it exits 0."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", *target]
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
