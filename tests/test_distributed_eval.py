"""``torchrun --nproc_per_node=2 -m bapps_toolkit evaluate`` (gloo on CPU) equals one process.

Each rank scores a contiguous slice of every piece of every set; the slices are gathered in rank
order, so every rank holds the whole set's distances and rank 0 alone prints and writes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from two_ranks import run_two_ranks

from bapps_toolkit._distributed import DistContext, gather_rows, is_main_process, slice_for_rank
from bapps_toolkit.cli.main import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

_COMMON = ["--metrics", "l2", "ssim-lab", "lpips-alex", "--backbone-weights", "alex=random", "--device", "cpu",
           "--n-boot", "200", "--no-progress", "--datasets", "val", "jnd"]


def test_one_process_needs_no_process_group():
    ctx = DistContext()
    t = torch.arange(5.0)
    assert gather_rows(ctx, t) is t and is_main_process()
    assert [slice_for_rank(5, r, 2) for r in (0, 1)] == [(0, 3), (3, 5)]
    assert [slice_for_rank(1, r, 3) for r in range(3)] == [(0, 1), (1, 1), (1, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
def test_torchrun_two_cpu_processes_equal_one_process(mini_h5, tmp_path, stream):
    extra = ["--stream", "--chunk-size", "37"] if stream else []
    one_csv, one_npz = tmp_path / "one.csv", tmp_path / "one.npz"
    assert main(["evaluate", str(mini_h5), *_COMMON, *extra, "--out", str(one_csv),
                 "--save-distances", str(one_npz), "--quiet"]) == 0
    two_csv, two_npz = tmp_path / "two.csv", tmp_path / "two.npz"
    proc = run_two_ranks("-m", "bapps_toolkit", "evaluate", str(mini_h5), *_COMMON, *extra, "--out", str(two_csv),
                         "--save-distances", str(two_npz))
    assert proc.stdout.count("| metric | 2AFC trad") == 1, proc.stdout   # rank 0 alone prints the table
    a, b = pd.read_csv(one_csv), pd.read_csv(two_csv)
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        if a[col].dtype.kind == "f":
            np.testing.assert_allclose(a[col], b[col], rtol=1e-6, atol=1e-9, err_msg=col)
        else:
            assert a[col].tolist() == b[col].tolist(), col
    with np.load(one_npz, allow_pickle=False) as za, np.load(two_npz, allow_pickle=False) as zb:
        assert sorted(za.files) == sorted(zb.files)
        for k in za.files:
            if za[k].dtype.kind == "f":
                np.testing.assert_allclose(za[k], zb[k], rtol=1e-5, atol=1e-7, err_msg=k)
            else:
                assert np.array_equal(za[k], zb[k]), k
