"""ImageNet backbone weights: torch hub cache lookup, hash check, mirror download, safe loading.

No test contacts anything but 127.0.0.1: an autouse fixture points BAPPS_WEIGHTS_BASE_URL at a
closed loopback port unless a test serves a mirror itself.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from bapps_toolkit.errors import WeightsError
from bapps_toolkit.metrics import hub

try:
    from http_server import LoopbackServer, closed_port_url
except ImportError:  # tests/ imported as a package
    from tests.http_server import LoopbackServer, closed_port_url


@pytest.fixture(autouse=True)
def offline_torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv(hub.BASE_URL_ENV, closed_port_url("/models/"))
    return home


def _state_bytes(seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    buf = io.BytesIO()
    torch.save({"features.0.weight": torch.randn(4, 3, 3, 3, generator=g),
                "features.0.bias": torch.randn(4, generator=g)}, buf)
    return buf.getvalue()


@pytest.fixture
def tiny_alex(monkeypatch):
    """Point the 'alex' entry at a small file whose name carries its own SHA-256 prefix."""
    blob = _state_bytes()
    name = f"tinyalex-{hashlib.sha256(blob).hexdigest()[:8]}.pth"
    monkeypatch.setitem(hub.TORCHVISION_WEIGHTS, "alex", f"https://download.pytorch.org/models/{name}")
    return name, blob


def test_torch_home_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.torch_home() == tmp_path / "th"
    monkeypatch.delenv("TORCH_HOME")
    assert hub.torch_home() == tmp_path / "xdg" / "torch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub.torch_home() == tmp_path / "home" / ".cache" / "torch"
    assert hub.checkpoints_dir() == tmp_path / "home" / ".cache" / "torch" / "hub" / "checkpoints"


def test_published_names_and_prefixes():
    assert hub.weights_filename("alex") == "alexnet-owt-7be5be79.pth"
    assert hub.hash_prefix(hub.weights_filename("vgg")) == "397923af"
    assert hub.hash_prefix(hub.weights_filename("squeeze")) == "b8a52dc0"
    assert hub.hash_prefix("no_hash_here.pth") is None
    with pytest.raises(WeightsError, match="unknown backbone 'resnet'"):
        hub.backbone_weights_file("resnet")


def test_cached_file_found_without_network(offline_torch_home, tiny_alex):
    name, blob = tiny_alex
    target = offline_torch_home / "hub" / "checkpoints" / name
    target.parent.mkdir(parents=True)
    target.write_bytes(blob)
    assert hub.backbone_weights_file("alex", progress=False) == target  # base URL is a closed port
    assert hub.backbone_weights_file("alex", download=False) == target


def test_cached_file_with_wrong_hash_refused(offline_torch_home):
    target = offline_torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(_state_bytes())
    with pytest.raises(WeightsError, match="does not start with 7be5be79") as ei:
        hub.backbone_weights_file("alex", progress=False)
    assert str(target) in str(ei.value) and "Delete the file" in str(ei.value)
    assert target.exists()  # the user's file is reported, not silently deleted


def test_download_from_mirror_env(offline_torch_home, tiny_alex, monkeypatch):
    name, blob = tiny_alex
    with LoopbackServer({f"/models/{name}": blob}) as srv:
        monkeypatch.setenv(hub.BASE_URL_ENV, srv.url("/models/"))
        path = hub.backbone_weights_file("alex", progress=False)
        assert path == offline_torch_home / "hub" / "checkpoints" / name
        assert path.read_bytes() == blob
        assert srv.requests == [("GET", f"/models/{name}", None)]
        assert hub.backbone_weights_file("alex", progress=False) == path
        assert len(srv.requests) == 1  # cached now
    state = hub.load_state_dict_file(path)
    assert sorted(state) == ["features.0.bias", "features.0.weight"]


def test_download_with_wrong_hash_leaves_nothing(offline_torch_home, monkeypatch):
    # A mirror serving other bytes under torchvision's real file name.
    name = "vgg16-397923af.pth"
    with LoopbackServer({f"/m/{name}": _state_bytes(1)}) as srv:
        with pytest.raises(WeightsError, match="does not start with 397923af"):
            hub.backbone_weights_file("vgg", base_url=srv.url("/m/"), progress=False)
    ckpt = offline_torch_home / "hub" / "checkpoints"
    assert not (ckpt / name).exists() and list(ckpt.iterdir()) == []


def test_no_network_error_says_how_to_get_the_weights(offline_torch_home):
    with pytest.raises(WeightsError) as ei:
        hub.backbone_weights_file("squeeze", progress=False)
    msg = str(ei.value)
    expected_path = offline_torch_home / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    assert os.environ[hub.BASE_URL_ENV].rstrip("/") + "/squeezenet1_1-b8a52dc0.pth" in msg
    assert str(expected_path) in msg
    assert "backbone_weights=PATH" in msg and 'backbone_weights="random"' in msg
    assert "UNCALIBRATED" in msg
    with pytest.raises(WeightsError, match="download=False"):
        hub.backbone_weights_file("squeeze", download=False)


def test_default_url_is_torchvisions(monkeypatch):
    monkeypatch.delenv(hub.BASE_URL_ENV)
    assert hub.weights_url("vgg") == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert hub.weights_url("vgg", "http://127.0.0.1:1/x/") == "http://127.0.0.1:1/x/vgg16-397923af.pth"


# ------------------------------------------------------------------------ load_state_dict_file
class _PlantsMarker:
    """Unpickling this calls open(marker, "w") — i.e. runs code and creates a file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fmt", ["torch.save", "raw-pickle"])
def test_pickle_with_code_is_refused(tmp_path, fmt):
    marker = tmp_path / "code_ran.txt"
    evil = tmp_path / "evil.pth"
    payload = {"features.0.weight": torch.zeros(2), "x": _PlantsMarker(marker)}
    if fmt == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps({"x": _PlantsMarker(marker)}, protocol=2))
    assert not marker.exists()
    with pytest.raises(WeightsError, match="refusing to load") as ei:
        hub.load_state_dict_file(evil)
    assert str(evil) in str(ei.value) and "io.open" in str(ei.value)
    assert not marker.exists()
    # Control: an unrestricted unpickler does run it, so the assertion above can fail.
    control = tmp_path / "control.txt"
    pickle.loads(pickle.dumps(_PlantsMarker(control))).close()
    assert control.exists()


def test_load_safetensors_and_torch(tmp_path):
    from safetensors.torch import save_file

    w = torch.arange(12, dtype=torch.float32).reshape(1, 12, 1, 1)
    st = tmp_path / "lin.safetensors"
    save_file({"lin0.model.1.weight": w}, str(st))
    pth = tmp_path / "lin.pth"
    torch.save({"lin0.model.1.weight": w}, pth)
    noext = tmp_path / "lin_safetensors_without_suffix"
    noext.write_bytes(st.read_bytes())
    for p in (st, pth, noext):
        state = hub.load_state_dict_file(p)
        assert list(state) == ["lin0.model.1.weight"]
        assert torch.equal(state["lin0.model.1.weight"], w)
        assert state["lin0.model.1.weight"].device.type == "cpu"


def test_load_bad_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        hub.load_state_dict_file(tmp_path / "missing.pth")
    t = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), t)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        hub.load_state_dict_file(t)
    nested = tmp_path / "ckpt.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, nested)
    with pytest.raises(WeightsError, match="not a flat state dict.*'model'"):
        hub.load_state_dict_file(nested)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(WeightsError, match="junk.pth"):
        hub.load_state_dict_file(junk)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(WeightsError, match="bad.safetensors"):
        hub.load_state_dict_file(bad_st)
