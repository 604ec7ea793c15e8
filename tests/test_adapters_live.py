"""Adapters against the real piq / pyiqa / torchmetrics, where they are installed (skipped otherwise).

Compares each adapter with the outputs recorded in ``reference/adapters.npz`` (same inputs, same
library version; another version is skipped, not compared) and checks that a weighted metric
whose weights cannot be downloaded is an error. The wrapping logic itself is tested without the
libraries in ``test_adapters.py``.
"""
from __future__ import annotations

import socket

import numpy as np
import pytest

import bapps_toolkit as bt
from bapps_toolkit.metrics.adapters import AdapterError, WeightsUnavailableError

try:
    import adapter_stubs as stubs
    from test_adapters import CASES, expected
except ImportError:  # pragma: no cover - run from the repository root as a package
    from tests import adapter_stubs as stubs
    from tests.test_adapters import CASES, expected

REF, GROUPS = stubs.REF, stubs.GROUPS


def _library(lib: str):
    module = pytest.importorskip(lib)
    version = str(getattr(module, "__version__", ""))
    if version != stubs.VERSIONS[lib]:
        pytest.skip(f"{lib} {version} installed; the vectors were recorded with {lib} {stubs.VERSIONS[lib]}")
    return module


@pytest.mark.parametrize(("lib", "name", "key", "flip"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_adapter_matches_recorded_library_output(lib, name, key, flip):
    _library(lib)
    m = bt.create_metric(f"{lib}:{name}", input_range=(0, 1))
    assert f"({lib} {stubs.VERSIONS[lib]})" in m.label
    if lib == "pyiqa":
        assert m.direction == ("distance" if REF[f"pyiqa:{name}__lower_better"] else f"{flip[:-1]}{name}")
    for gi, (ref, dist) in enumerate(GROUPS):
        raw = REF[key][REF["group"] == gi]
        if np.isnan(raw).all():
            with pytest.raises(ValueError):
                m(ref, dist)
            continue
        np.testing.assert_allclose(m(ref, dist).double().numpy(), expected(raw, flip), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", list(REF["offline_names"]))
def test_weights_without_network_are_an_error(spec, monkeypatch, tmp_path):
    _library(spec.split(":")[0])
    for var in ("TORCH_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    try:
        bt.create_metric(spec)
    except WeightsUnavailableError as exc:
        assert spec in str(exc) and "could not be downloaded" in str(exc)
    except AdapterError as exc:
        if "needs a package" not in str(exc):
            raise
        pytest.skip(f"{spec}: a dependency of the library is missing here: {exc}")
    else:  # pragma: no cover - depends on the machine's caches
        pytest.skip(f"{spec}: the weights were found in a cache the library keeps outside TORCH_HOME/HF_HOME")
