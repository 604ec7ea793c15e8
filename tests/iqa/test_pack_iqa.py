"""Packing correlation replicas into HDF5, verified and read back."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from bapps_toolkit.data.images import read_rgb
from bapps_toolkit.data.iqa import loader
from bapps_toolkit.data.iqa.pack_iqa import PackedCorrelationSet, pack_correlation_set, verify_iqa
from bapps_toolkit.errors import DataError


@pytest.mark.parametrize("fmt", ["tid2013", "kadid10k", "pipal", "csiq", "pieapp"])
def test_pack_roundtrip(replica_root, tmp_path, fmt):
    cset = loader(fmt)(replica_root / fmt)
    out = pack_correlation_set(cset, tmp_path / f"{fmt}.h5")
    attrs = verify_iqa(out)
    assert attrs["n_items"] == len(cset) and bool(attrs["synthetic"])
    packed = PackedCorrelationSet(out)
    assert packed.name == cset.name and packed.higher_is_better == cset.higher_is_better
    np.testing.assert_array_equal(packed.score, cset.score)
    for i in (0, len(cset) // 2, len(cset) - 1):
        ref, dist = packed.pair(i)
        np.testing.assert_array_equal(ref, read_rgb(cset.ref[i]))
        np.testing.assert_array_equal(dist, read_rgb(cset.dist[i]))
    assert packed.ref_id == cset.ref_id and packed.dist_type == cset.dist_type
    assert not list(tmp_path.glob("*.tmp-*"))


def test_verify_detects_corruption(replica_root, tmp_path):
    out = pack_correlation_set(loader("tid2013")(replica_root / "tid2013"), tmp_path / "t.h5")
    with h5py.File(out, "r+") as f:
        f["score"][3] = 99.0
    with pytest.raises(DataError, match="array score does not match"):
        verify_iqa(out)
    with h5py.File(out, "r+") as f:
        del f.attrs["bapps_toolkit_format"]
    with pytest.raises(DataError, match="not a bapps-iqa-h5/1 file"):
        verify_iqa(out)
