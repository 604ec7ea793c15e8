"""Bounded memory of the streamed full training path, slow.

Two packed files holding one 2AFC set of :data:`N` and ``4 N`` triplets (tiled from the
reliability subset by the pack module's own writer, see :func:`~.harness.build_tiled_h5`) are
trained on for one epoch on the full path (variant ``lin`` with ``fast=False``: every step runs
the images through the random AlexNet, UNCALIBRATED) with ``memory_budget_mb=16``, each in a
fresh interpreter measuring its peak resident memory above the post-import baseline (as
``test_bounded_memory.py``, with ``MALLOC_MMAP_THRESHOLD_=4 MiB``). Both sets exceed the budget,
so both stream; the peaks must differ by far less than the ``3 N`` triplets of images the larger
set adds — held whole, the larger set alone would add them. The figures are printed.
"""
from __future__ import annotations

import pytest

from .harness import BIG_KEY, MMAP_ENV, WORKLOADS, build_tiled_h5, measure

pytestmark = pytest.mark.slow

N = 800
TRIPLET_BYTES = 3 * 64 * 64 * 3 + 4


@pytest.fixture(scope="module")
def tiled(rel_h5, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiled_train")
    files = {n: build_tiled_h5(rel_h5, folder / f"tiled_{n}.h5", n) for n in (N, 4 * N)}
    yield files
    for p in files.values():
        p.unlink()


def test_streamed_training_memory_does_not_grow_with_the_set(tiled, tmp_path):
    body = WORKLOADS["train lin full path, streamed (budget 16 MiB)"]
    figs = {n: measure(body, p, BIG_KEY, tmp_path / f"run_{n}", env=MMAP_ENV) for n, p in tiled.items()}
    added_mb = 3 * N * TRIPLET_BYTES / 2 ** 20
    growth = figs[4 * N]["above_mb"] - figs[N]["above_mb"]
    print(f"\nstreamed full-path training, peak above baseline: {N} triplets {figs[N]['above_mb']:.0f} MiB, "
          f"{4 * N} triplets {figs[4 * N]['above_mb']:.0f} MiB (growth {growth:.0f} MiB; the extra images "
          f"are {added_mb:.0f} MiB)")
    assert figs[N]["n"] == N and figs[4 * N]["n"] == 4 * N
    assert abs(growth) < 0.2 * added_mb, figs
