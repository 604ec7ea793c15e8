"""Concepts that used to have two implementations now have one; these catch a second one creeping back."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from bapps_toolkit import scores
from bapps_toolkit.metrics import trained


def test_training_uses_the_metrics_lpips_builder() -> None:
    from bapps_toolkit.train import model

    assert model.build_lpips is trained.build_lpips


def test_lpips_builder_quiet_by_default_but_still_uncalibrated() -> None:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        lp = trained.build_lpips("alex", "0.1", "random", 5)
    assert not [w for w in rec if "random" in str(w.message)]
    assert not lp.calibrated and "UNCALIBRATED" in lp.label
    assert all(float(w.abs().sum()) == 0.0 for w in lp.lin_weights())
    with pytest.warns(UserWarning, match="random"):
        trained.build_lpips("alex", "0.1", "random", 5, quiet_random=False)


def _voc_ap_loop(d: np.ndarray, same: np.ndarray) -> float:
    """The official definition written out with loops (stable sort, VOC continuous AP)."""
    order = sorted(range(len(d)), key=lambda i: d[i])
    tp = fp = 0.0
    total = float(same.sum())
    prec, rec = [0.0], [0.0]
    for i in order:
        tp += same[i]
        fp += 1.0 - same[i]
        prec.append(tp / (tp + fp))
        rec.append(tp / total)
    prec.append(0.0)
    rec.append(1.0)
    for k in range(len(prec) - 2, -1, -1):
        prec[k] = max(prec[k], prec[k + 1])
    return sum((rec[k + 1] - rec[k]) * prec[k + 1] for k in range(len(rec) - 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jnd_map_call_sites_agree_on_data_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 6, 300).astype(np.float64)  # many tied distances
    same = rng.integers(0, 4, 300) / 3.0
    plain = scores.jnd_map(d, same)
    assert plain == pytest.approx(_voc_ap_loop(d, same), abs=1e-12)
    # the bootstrap's batched rows (numpy in, CPU) and its device path give the plain value on
    # the identity resample, and each other's values on random resamples
    idx = np.vstack([np.arange(300), rng.integers(0, 300, (20, 300))])
    _, rows = scores._prepare(scores.jnd_map, [d, same])
    _, on_device = scores._prepare(scores.jnd_map, [d, same], torch.device("cpu"))
    a, b = rows(idx), on_device(idx)
    assert a[0] == pytest.approx(plain, abs=1e-15)
    np.testing.assert_array_equal(a, b)
    for k in (1, 7, 19):
        assert a[k] == pytest.approx(_voc_ap_loop(d[idx[k]], same[idx[k]]), abs=1e-12)


def test_one_parser_of_numbers_from_untrusted_cells() -> None:
    from bapps_toolkit.data import cells, manifest
    from bapps_toolkit.data.iqa import csiq, kadid10k, nights, pieapp, pipal, tid2013
    from bapps_toolkit.judge import disagreement

    for mod in (manifest, csiq, kadid10k, nights, pieapp, pipal, tid2013, disagreement):
        assert mod.parse_finite is cells.parse_finite, mod.__name__


def test_one_resolver_of_plugin_specs() -> None:
    from bapps_toolkit import _plugin_files
    from bapps_toolkit.data.iqa import registry
    from bapps_toolkit.metrics import plugin_specs, plugins

    assert plugins.resolve_spec is registry.resolve_spec is _plugin_files.resolve_spec
    assert plugin_specs.is_file_spec is _plugin_files.is_file_spec
