"""Worker processes that die with the process that started them.

A process pool's workers outlive a parent killed by ``SIGKILL`` (or the OOM killer): nothing
runs in the parent to shut them down, and an idle worker blocked on its task queue never
notices. Every pool of the toolkit therefore starts its workers through this module:

* :func:`process_pool` — a ``concurrent.futures.ProcessPoolExecutor`` whose workers run
  :func:`die_with_parent` first;
* :func:`loader_worker_init` — the same for a ``torch.utils.data.DataLoader``'s
  ``worker_init_fn``.

:func:`die_with_parent` asks Linux to send the worker ``SIGKILL`` when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), then compares ``os.getppid()`` with the parent's process id
recorded before the worker started: a parent that died before the request was made (the
signal would then never come) ends the worker at once. Where ``prctl`` is unavailable (not
Linux, or a C library without it) a daemon thread polls the parent instead and ends the worker
within :data:`POLL_S` seconds.

Linux sends the signal when the *thread* that started the worker exits; the toolkit starts its
pools from the thread that uses them and shuts them down before that thread returns.
"""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import ctypes.util
import functools
import multiprocessing as mp
import os
import signal
import sys
import threading
import time

#: ``PR_SET_PDEATHSIG`` from ``<linux/prctl.h>``.
PR_SET_PDEATHSIG = 1
#: Seconds between two checks of the parent by the watchdog thread (where ``prctl`` is missing).
POLL_S = 0.5


def _prctl_pdeathsig(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies.

    Returns ``False`` where that cannot be asked (not Linux, no ``prctl`` in the C library, or the call failed).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return int(prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0


def _parent_gone(parent_pid: int) -> bool:
    """Whether the process ``parent_pid`` is no longer this process's parent.

    That is: it died and this process was re-parented, or it never was the parent.
    """
    return os.getppid() != parent_pid


def _watch_parent(parent_pid: int) -> None:
    while not _parent_gone(parent_pid):
        time.sleep(POLL_S)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when the process ``parent_pid`` dies.

    Call it first thing in a worker, with the parent's ``os.getpid()`` taken *before* the
    worker was started (as :func:`process_pool` and :func:`loader_worker_init` do).

    Args:
        parent_pid: the process id of the worker's parent.
    """
    armed = _prctl_pdeathsig(int(signal.SIGKILL))
    if _parent_gone(parent_pid):
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="bapps-parent-watch",
                         daemon=True).start()


def _loader_init(parent_pid: int, worker_id: int) -> None:
    die_with_parent(parent_pid)


def loader_worker_init() -> functools.partial[None]:
    """A ``worker_init_fn`` for a ``torch.utils.data.DataLoader`` created in this process.

    Its workers end when this process dies (:func:`die_with_parent`).
    """
    return functools.partial(_loader_init, os.getpid())


def process_pool(workers: int) -> cf.ProcessPoolExecutor:
    """A process pool of ``workers`` processes that end when this process dies.

    Workers are forked where the platform can (no re-import of the toolkit per worker), spawned
    elsewhere; each runs :func:`die_with_parent` before its first task.

    Args:
        workers: number of worker processes (>= 1).

    Returns:
        The executor; shut it down (or use it as a context manager) when done.
    """
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=die_with_parent,
                                  initargs=(os.getpid(),))
