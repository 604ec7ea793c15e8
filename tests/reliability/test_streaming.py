"""``evaluate(..., stream=True)`` / ``bapps evaluate --stream``: the same table and per-item
distances as loading every set whole, from a packed file and from a folder, with chunks that do
not divide the sets (7 items) — the bounded-memory figures are in ``test_bounded_memory.py``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.evaluate.runner import run_evaluation


@pytest.mark.parametrize("source", ["rel_h5", "rel_root"])
def test_streamed_evaluation_equals_whole(source, request):
    src = request.getfixturevalue(source)
    kw = dict(datasets=["val/cnn", "jnd/val/traditional"], n_boot=50, seed=3, progress=False, device="cpu",
              batch_size=5)
    whole = run_evaluation(src, ["l2", "ssim"], **kw)
    streamed = run_evaluation(src, ["l2", "ssim"], stream=True, chunk_size=7, **kw)
    pd.testing.assert_frame_equal(whole.table, streamed.table)
    assert len(whole.distances) == len(streamed.distances) == 2 * 3
    for a, b in zip(whole.distances, streamed.distances, strict=False):
        assert (a.metric, a.key, a.stems) == (b.metric, b.key, b.stems)
        for field in ("d0", "d1", "judge", "d", "same"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)


def test_cli_stream_and_bad_chunk_size(rel_h5, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    common = ["evaluate", str(rel_h5), "--metrics", "l2", "--datasets", "val/traditional", "--n-boot", "20",
              "--no-progress", "--quiet", "--device", "cpu"]
    assert main(common + ["--out", str(a)]) == 0
    assert main(common + ["--out", str(b), "--stream", "--chunk-size", "9"]) == 0
    assert a.read_text() == b.read_text()
    with pytest.raises(SystemExit):
        main(common + ["--stream", "--chunk-size", "0"])
    assert "argument --chunk-size: must be >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="chunk_size"):
        run_evaluation(rel_h5, ["l2"], stream=True, chunk_size=0, progress=False)
