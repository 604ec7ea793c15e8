"""Bounded memory: evaluation and training stream a packed split larger than the memory limit.

A packed file with one 2AFC set of 12 000 triplets (≈ 442 MB of image arrays, tiled from the
mini set by the pack module's own writer, ``verify`` passes) is built in a temporary folder and
deleted afterwards. Each workload runs in a fresh interpreter that records its resident set
after the imports, resets the kernel's high-water mark (``/proc/self/clear_refs``) and reports
``VmHWM`` at the end; the figure checked is the peak above that post-import baseline. The
bounded workloads run with ``MALLOC_MMAP_THRESHOLD_=4 MiB`` (:data:`~.harness.MMAP_ENV`): with
glibc's default the resident set of a chunk loop creeps up by ~8 MB per 256-triplet chunk
although nothing stays alive (freed per-chunk float tensors retained in the heap arenas of
torch's threads; measured: 128 MB flat with the threshold vs 688 MB and rising without it for
l2 over 17 000 triplets, an earlier size of this test). ``benchmarks/bench_memory.py`` prints both figures.

* loading the split whole (``load_2afc``) peaks above :data:`LIMIT_MB` — the set is larger
  than the limit, so the bounded figures below mean something;
* a 2AFC evaluation of ``l2`` reading 256-triplet chunks (``iter_2afc_chunks``) stays under it;
* ``bapps train`` lin on the fast path (``--precompute-batch 64``: features computed from
  64-triplet chunks into preallocated ``[N, ΣC]`` vectors, about 111 MB here; random AlexNet,
  UNCALIBRATED) stays under it;
* ``evaluate(..., stream=True, chunk_size=256)`` (``bapps evaluate --stream``) stays under it
  (without ``stream`` it loads every selected set whole, as ``load_2afc`` above).
"""
from __future__ import annotations

import pytest

from .harness import BIG_KEY, MMAP_ENV, WORKLOADS, build_tiled_h5, measure

pytestmark = pytest.mark.slow

LIMIT_MB = 400
N_TRIPLETS = 12_000
CHUNK = 256


@pytest.fixture(scope="module")
def big_h5(rel_h5, tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    out = build_tiled_h5(rel_h5, folder / "big.h5", N_TRIPLETS)
    assert out.stat().st_size > 440_000_000
    yield out
    out.unlink()


def test_whole_split_is_larger_than_the_limit(big_h5):
    from bapps_toolkit.data import verify

    assert verify(big_h5)["sets"] == {BIG_KEY: N_TRIPLETS}
    fig = measure(WORKLOADS["load whole (load_2afc)"], big_h5, BIG_KEY)
    assert fig["n"] == N_TRIPLETS
    assert fig["above_mb"] > LIMIT_MB, fig


def test_chunked_evaluation_stays_under_the_limit(big_h5):
    body = WORKLOADS["evaluate l2 by chunks (iter_2afc_chunks)"].replace("1024", str(CHUNK))
    fig = measure(body, big_h5, BIG_KEY, env=MMAP_ENV)
    assert fig["n"] == N_TRIPLETS and 0.0 <= fig["score"] <= 1.0
    assert fig["above_mb"] < LIMIT_MB, fig


def test_fast_path_training_stays_under_the_limit(big_h5, tmp_path):
    fig = measure(WORKLOADS["train lin fast path (precompute by chunks)"], big_h5, BIG_KEY, tmp_path / "run",
                  env=MMAP_ENV)
    assert fig["n"] == N_TRIPLETS
    assert fig["above_mb"] < LIMIT_MB, fig


def test_streamed_evaluate_stays_under_the_limit(big_h5):
    fig = measure(WORKLOADS["evaluate() l2, stream=True"], big_h5, BIG_KEY, env=MMAP_ENV)
    assert fig["n"] == N_TRIPLETS
    assert fig["above_mb"] < LIMIT_MB, fig
