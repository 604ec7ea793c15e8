"""The full training path streamed (issue 15 §4): the exact shuffle when the sets fit the memory
budget, the windowed chunk shuffle otherwise (stated in :mod:`bapps_toolkit.train.stream`), the
streamed batches equal to the whole path's, training and bit-identical resume of a streamed run.
Random backbone and synthetic judgments: every trained metric here is UNCALIBRATED. The
bounded-memory figures are in ``tests/reliability/test_bounded_train_stream.py`` (slow)."""
from __future__ import annotations

import math

import pytest
import torch
from test_train import cfg, make_subset, weights_of

from bapps_toolkit.errors import CheckpointError
from bapps_toolkit.train import TrainConfig, resume_config, train
from bapps_toolkit.train.config import DEFAULT_MEMORY_BUDGET_MB
from bapps_toolkit.train.data import FullData
from bapps_toolkit.train.model import STREAM_SHUFFLE, derive_seed, make_generator
from bapps_toolkit.train.stream import EXACT, STREAMED, DataPlan, StreamedData, epoch_order, plan_data

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KEYS = ["2afc/train/traditional", "2afc/train/cnn"]
N = 25  # triplets per set: 2 sets of 25 = 1.76 MiB of images


@pytest.fixture(scope="module")
def subset(mini_root, tmp_path_factory):
    return make_subset(mini_root, tmp_path_factory.mktemp("stream_subset") / "bapps", n_train=N, n_val=N)


@pytest.fixture(scope="module")
def subset_h5(subset, tmp_path_factory):
    from bapps_toolkit.data import pack

    return pack(subset, tmp_path_factory.mktemp("stream_h5") / "subset.h5", progress=False)


def _plan(chunk: int, window: int) -> DataPlan:
    """A streamed plan over KEYS with chunks of ``chunk`` rows (smaller than pack's, to get many)."""
    chunks = tuple((k, s, min(s + chunk, N)) for k in KEYS for s in range(0, N, chunk))
    return DataPlan(STREAMED, 2 * N, 3 * 64 * 64 * 3 + 4, 1, chunks, window)


# ------------------------------------------------------------------------------------------
# the plan and the order

def test_budget_decides_exact_or_streamed(subset_h5, subset):
    assert TrainConfig(data=".").memory_budget_mb == DEFAULT_MEMORY_BUDGET_MB == 2048
    for source in (subset_h5, subset):
        fits = plan_data(str(source), KEYS, DEFAULT_MEMORY_BUDGET_MB, fast=False)
        assert fits.mode == EXACT and fits.n == 2 * N and fits.triplet_bytes == 36868
        assert plan_data(str(source), KEYS, math.ceil(fits.data_mb), fast=False).mode == EXACT
        small = plan_data(str(source), KEYS, 1, fast=False)
        # pack's HDF5 chunks: chunk_rows(25) = 25, one chunk per set; two chunks exceed 1 MiB: W = 1
        assert small.mode == STREAMED and small.chunks == (("2afc/train/traditional", 0, N), ("2afc/train/cnn", 0, N))
        assert small.window == 1
        assert plan_data(str(source), KEYS, 1, fast=True).mode == EXACT  # cached vectors, not images


def test_exact_order_is_the_in_memory_randperm(subset_h5):
    plan = plan_data(str(subset_h5), KEYS, DEFAULT_MEMORY_BUDGET_MB, fast=False)
    for epoch in (1, 2, 7):
        order, windows = epoch_order(plan, 3, epoch)
        want = torch.randperm(2 * N, generator=make_generator(derive_seed(3, epoch, STREAM_SHUFFLE)))
        assert torch.equal(order, want) and windows == []


def test_streamed_order_follows_the_stated_rule():
    plan = _plan(chunk=4, window=3)  # chunks of 4 (the last of each set 1 row), windows of 3 chunks
    order, windows = epoch_order(plan, 11, 2)
    # the rule of the module docstring, step by step
    g = make_generator(derive_seed(11, 2, STREAM_SHUFFLE))
    lengths = [e - s for _, s, e in plan.chunks]
    offsets = [sum(lengths[:c]) for c in range(len(lengths))]
    pi = torch.randperm(len(plan.chunks), generator=g).tolist()
    want = []
    for w in range(0, len(pi), 3):
        rows = [i for c in pi[w:w + 3] for i in range(offsets[c], offsets[c] + lengths[c])]
        want += [rows[j] for j in torch.randperm(len(rows), generator=g).tolist()]
    assert order.tolist() == want
    assert sorted(want) == list(range(2 * N))  # every triplet once
    assert [ids.tolist() for ids in windows] == [pi[w:w + 3] for w in range(0, len(pi), 3)]
    again, _ = epoch_order(plan, 11, 2)
    other, _ = epoch_order(plan, 11, 3)
    assert torch.equal(order, again) and not torch.equal(order, other)


@pytest.mark.parametrize("source", ["h5", "folder"])
def test_streamed_batches_equal_the_whole_path(subset, subset_h5, source):
    data = str(subset_h5 if source == "h5" else subset)
    whole = FullData(cfg(data, "unused", fast=False, datasets=["train"]), KEYS, torch.device("cpu"))
    plan = _plan(chunk=4, window=2)
    st = StreamedData(data, KEYS, plan, torch.device("cpu"))
    try:
        assert torch.equal(st.judge, whole.judge) and st.counts == whole.counts
        order, windows = epoch_order(plan, 0, 1)
        st.start_epoch(windows)
        for b in range(0, len(order), 9):  # batches of 9 straddle windows of <= 8 rows
            idx = order[b:b + 9]
            for a, w in zip(st.batch(idx), whole.batch(idx), strict=True):
                assert torch.equal(a, w)
            assert len(st.resident) <= 3  # a 9-row batch touches at most 3 windows here
        assert st.windows_read == len(windows)  # each window read once per epoch
        assert all(t.shape[0] == 0 for t in st.batch(order[:0]))
    finally:
        st.close()


# ------------------------------------------------------------------------------------------
# training

def _tune(data, out, **kw):
    base = dict(variant="scratch", datasets=["train"], epochs=1, decay_epochs=1, batch_size=16, seed=4,
                deterministic=True)
    base.update(kw)
    return cfg(data, out, **base)


def test_sets_within_the_budget_train_exactly_as_before(subset_h5, tmp_path, monkeypatch):
    """(a) Within the budget: held whole, the exact shuffle — the weights of the default budget
    and of a budget just large enough are equal, and the streamed reader is never made."""
    def refuse(*_a, **_k):
        raise AssertionError("StreamedData used although the sets fit the budget")

    monkeypatch.setattr(StreamedData, "__init__", refuse)
    a = train(_tune(subset_h5, tmp_path / "default"))
    mb = math.ceil(a.card["shuffle"]["data_mb"])
    b = train(_tune(subset_h5, tmp_path / "boundary", memory_budget_mb=mb))
    assert a.card["shuffle"]["mode"] == b.card["shuffle"]["mode"] == EXACT
    wa, wb = weights_of(a.checkpoint_path), weights_of(b.checkpoint_path)
    assert sorted(wa) == sorted(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_small_budget_streams_and_trains(subset_h5, tmp_path, monkeypatch, capsys):
    """(b) A budget below the sets' size: streamed (the whole-set loader is never made), trains."""
    def refuse(*_a, **_k):
        raise AssertionError("FullData used although the budget is too small")

    monkeypatch.setattr(FullData, "__init__", refuse)
    res = train(_tune(subset_h5, tmp_path / "run", memory_budget_mb=1))
    sh = res.card["shuffle"]
    assert sh["mode"] == STREAMED and sh["window_chunks"] == 1 and sh["n_chunks"] == 2 and sh["chunk_rows"] == N
    assert "full path STREAMED" in capsys.readouterr().err
    assert res.card["finished"] and all(math.isfinite(h["loss"]) for h in res.card["history"])
    w0, w1 = weights_of(res.out_dir / "epoch_001.safetensors"), weights_of(res.checkpoint_path)
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)  # epoch 2 moved the weights


class _Stop(Exception):
    pass


def test_streamed_run_interrupted_after_an_epoch_resumes_bit_identical(subset_h5, tmp_path):
    """(c) Stopped inside epoch 2 (after epoch 1's checkpoint), resumed: the same weights, Adam
    state and losses as the uninterrupted streamed run."""
    common = dict(memory_budget_mb=1, epochs=2, decay_epochs=1)
    ref = train(_tune(subset_h5, tmp_path / "ref", **common))

    def stop(epoch, step):
        if (epoch, step) == (2, 2):
            raise _Stop

    out = tmp_path / "stopped"
    with pytest.raises(_Stop):
        train(_tune(subset_h5, out, **common), on_step=stop)
    with pytest.raises(CheckpointError, match="memory_budget_mb=1"):  # another budget: another order
        train(_tune(subset_h5, out, resume=True, **dict(common, memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB)))
    rc = resume_config(out)
    assert rc.memory_budget_mb == 1  # taken from the card
    res = train(rc)
    assert res.card["resumed"][0]["from_epoch"] == 1 and res.card["shuffle"]["mode"] == STREAMED
    for name in ("latest.safetensors", "latest.optim.safetensors"):
        a, b = weights_of(ref.out_dir / name), weights_of(out / name)
        assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a), name
    assert [h["loss"] for h in ref.card["history"]] == [h["loss"] for h in res.card["history"]]
