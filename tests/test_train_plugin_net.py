"""Issue 11: ``bapps train --net SPEC`` on the researcher's own LPIPS-style network (a plugin
backbone under trained LPIPS linear layers), its checkpoints, ``bapps evaluate`` on the run and
``--resume``; and every error: a spec that does not import, an object that is not a network or
returns no list of taps, a plugin file changed after training, a stored state that no longer
fits, scratch and backbone weights refused.

The backbone is a tiny 2-tap convolution net written to a temporary ``.py`` file; the data is a
small subset of the synthetic mini set (so every trained metric is UNCALIBRATED).
"""
from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_train import make_subset, weights_of

from bapps_toolkit.errors import CheckpointError
from bapps_toolkit.metrics.lpips import LPIPS, ScalingLayer, official_lin_state_dict
from bapps_toolkit.metrics.plugin_net import PluginLPIPS, RangeMap, build_plugin_lpips
from bapps_toolkit.metrics.plugins import PluginError
from bapps_toolkit.train import ConfigError, TrainConfig, load_metric_from_checkpoint, resume_config, train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = textwrap.dedent('''
    import torch
    from torch import nn


    class Net(nn.Module):
        """Two convolution taps; seeded init, so every import gives the same weights."""

        def __init__(self, width: int = 4):
            super().__init__()
            self.c1 = nn.Conv2d(3, width, 3, stride=2, padding=1)
            self.c2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.3)

        def forward(self, x):
            a = torch.relu(self.c1(x))
            return [a, torch.relu(self.c2(a))]


    class UnitNet(Net):
        input_range = (0.0, 1.0)


    class ScaledNet(Net):
        lpips_scaling = True


    class BothNet(Net):
        lpips_scaling = True
        input_range = (0.0, 1.0)


    class TensorNet(Net):
        def forward(self, x):
            return self.c1(x)


    def three():
        return 3


    instance = Net(width=2)
    number = 7
''')


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("plugin")
    (d / "tiny_net.py").write_text(TINY)
    return d


@pytest.fixture(scope="module")
def spec(plugin_dir) -> str:
    return f"{plugin_dir / 'tiny_net.py'}:Net"


@pytest.fixture(scope="module")
def data(mini_root, tmp_path_factory) -> Path:
    return make_subset(mini_root, tmp_path_factory.mktemp("plugin_subset") / "bapps", train_cats=("cnn",),
                       val_cats=("cnn",), n_train=20, n_val=10)


def pcfg(data, out, net, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), net=net, variant="lin", epochs=1, decay_epochs=1, batch_size=10,
                lr=1e-2, progress=False, seed=3, datasets=["train/cnn"])
    base.update(kw)
    return TrainConfig(**base)


def triplet(n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 64, 64, generator=g) * 2 - 1, torch.rand(n, 3, 64, 64, generator=g) * 2 - 1


# ------------------------------------------------------------------------------------------
# the wrapper

def test_plugin_net_probe_range_and_scaling(plugin_dir):
    f = plugin_dir / "tiny_net.py"
    m = build_plugin_lpips(f"{f}:Net", {"width": 3})
    assert isinstance(m, PluginLPIPS) and m.channels == [3, 6] and m.version == "0.0"
    assert isinstance(m.scaling, torch.nn.Identity) and m.name == "lpips[tiny_net.py:Net]"
    assert m.origin["kind"] == "file" and len(m.origin["sha256"]) == 64
    unit = build_plugin_lpips(f"{f}:UnitNet")
    assert isinstance(unit.scaling, RangeMap) and (unit.scaling.lo, unit.scaling.hi) == (0.0, 1.0)
    x = torch.linspace(-1, 1, 5).view(1, 1, 1, 5)
    assert torch.allclose(unit.scaling(x), (x + 1) / 2)
    scaled = build_plugin_lpips(f"{f}:ScaledNet")
    assert isinstance(scaled.scaling, ScalingLayer) and scaled.version == "0.1"
    with pytest.raises(PluginError, match="lpips_scaling=True and input_range"):
        build_plugin_lpips(f"{f}:BothNet")
    inst = build_plugin_lpips(f"{f}:instance")
    assert inst.channels == [2, 4]


def test_an_lpips_plugin_is_the_builtin_lpips():
    """Case (b): an LPIPS (here the class with options) gives its backbone, scaling and version;
    with the same linear layers the distances are the built-in metric's."""
    ref = LPIPS(net="alex", backbone_weights="random", random_seed=5)
    m = build_plugin_lpips("bapps_toolkit.metrics.lpips:LPIPS",
                           {"net": "alex", "backbone_weights": "random", "random_seed": 5})
    assert m.kind == "lpips" and m.version == "0.1" and m.channels == list(ref.channels)
    assert not m.calibrated and "random" in m.calibration_note
    m.load_lin_weights(official_lin_state_dict(ref))
    x0, x1 = triplet(2)
    with torch.no_grad():
        assert torch.equal(m.eval()(x0, x1), ref.eval()(x0, x1))


@pytest.mark.parametrize("attr, words", [
    ("TensorNet", "forward returned a Tensor"),
    ("three", "gave a int, not a network"),
    ("number", "is a int, not a network"),
    ("Missing", "has no attribute"),
])
def test_objects_that_are_not_networks(plugin_dir, attr, words):
    spec = f"{plugin_dir / 'tiny_net.py'}:{attr}"
    with pytest.raises(PluginError, match=words) as err:
        build_plugin_lpips(spec)
    assert attr in str(err.value)


def test_a_metric_is_not_a_network():
    with pytest.raises(PluginError, match="is a metric"):
        build_plugin_lpips("bapps_toolkit.metrics.pixel:L2")


# ------------------------------------------------------------------------------------------
# training, checkpoints, evaluate, resume

@pytest.fixture(scope="module")
def lin_run(data, spec, tmp_path_factory):
    return train(pcfg(data, tmp_path_factory.mktemp("plugin_lin") / "run", spec, net_options=["width=3"]))


def test_lin_run_records_the_plugin(lin_run, spec):
    card = lin_run.card
    assert card["config"]["net"] == spec and card["config"]["net_options"] == {"width": 3}
    plugin = card["backbone"]["plugin"]
    assert plugin["spec"] == spec and plugin["options"] == {"width": 3}
    assert plugin["origin"]["kind"] == "file" and plugin["origin"]["path"] == spec.rpartition(":")[0]
    assert not card["calibrated"] and "SYNTHETIC" in card["calibration_note"]
    from safetensors import safe_open

    with safe_open(str(lin_run.checkpoint_path), framework="pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert meta["plugin_spec"] == spec and json.loads(meta["plugin_options"]) == {"width": 3}
    assert json.loads(meta["plugin_origin"])["sha256"] == plugin["origin"]["sha256"]
    assert meta["backbone_in_file"] == "1" and meta["version"] == "0.0" and json.loads(meta["channels"]) == [3, 6]
    assert {"backbone.c1.weight", "backbone.c2.bias", "lin.0.weight", "lin.1.weight"} <= set(keys)


def test_checkpoint_round_trip_gives_identical_distances(lin_run, spec):
    a = load_metric_from_checkpoint(lin_run.out_dir, trust_plugin=spec)
    b = load_metric_from_checkpoint(lin_run.out_dir / "epoch_002.safetensors", trust_plugin=[spec])
    assert isinstance(a, PluginLPIPS) and a.name == "lpips[tiny_net.py:Net]"
    assert "UNCALIBRATED" in a.label and "SYNTHETIC" in a.label
    w = weights_of(lin_run.checkpoint_path)
    manual = build_plugin_lpips(spec, {"width": 3})
    manual.copy_lin_weights([w["lin.0.weight"], w["lin.1.weight"]])
    x0, x1 = triplet()
    with torch.no_grad():
        da = a(x0, x1)
        assert torch.equal(da, b(x0, x1)) and torch.equal(da, manual.eval()(x0, x1))
    assert float(da.abs().sum()) > 0
    assert all(float(lin.weight.min()) >= 0 for lin in a.lins)


def test_fast_and_full_lin_give_the_same_weights_without_dropout(data, spec, tmp_path):
    fast = train(pcfg(data, tmp_path / "fast", spec, dropout=0.0))
    full = train(pcfg(data, tmp_path / "full", spec, dropout=0.0, fast=False))
    assert fast.card["fast_path"] is True and full.card["fast_path"] is False
    a, b = weights_of(fast.checkpoint_path), weights_of(full.checkpoint_path)
    assert sorted(a) == sorted(b)
    init = weights_of(tmp_path / "fast" / "epoch_001.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), k
    assert any(not torch.equal(a[k], init[k]) for k in a if k.startswith("lin."))
    for k in a:  # lin: the stored backbone is the plugin's, unchanged
        if k.startswith("backbone."):
            assert torch.equal(a[k], init[k])


def test_tune_trains_the_plugin_backbone(data, spec, tmp_path):
    res = train(pcfg(data, tmp_path / "tune", spec, variant="tune", epochs=1, decay_epochs=0))
    w = weights_of(res.checkpoint_path)
    fresh = build_plugin_lpips(spec).backbone.state_dict()
    assert any(not torch.equal(w[f"backbone.{k}"], v) for k, v in fresh.items())
    m = load_metric_from_checkpoint(res.out_dir, trust_plugin=spec)
    for k, v in m.backbone.state_dict().items():
        assert torch.equal(v, w[f"backbone.{k}"])
    assert res.card["variant"] == "tune" and res.card["fast_path"] is False


class _Stop(Exception):
    pass


def _stop_in_epoch_2(epoch: int, step: int) -> None:
    if epoch == 2:
        raise _Stop


def test_resume_is_bit_identical(data, spec, tmp_path):
    kw = dict(dropout=0.25, deterministic=True, net_options={"width": 3})
    ref = train(pcfg(data, tmp_path / "ref", spec, **kw))
    out = tmp_path / "cut"
    with pytest.raises(_Stop):
        train(pcfg(data, out, spec, **kw), on_step=_stop_in_epoch_2)
    assert json.loads((out / "card.json").read_text())["epochs_done"] == 1
    res = train(resume_config(out, trust_plugin=spec))
    assert res.card["finished"] and res.card["resumed"][0]["from_epoch"] == 1
    a, b = weights_of(ref.checkpoint_path), weights_of(res.checkpoint_path)
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError, match="net-option|net_options"):
        resume_config(out, net_options=["width=4"], names={"net_options": "--net-option"}, trust_plugin=spec)


def test_evaluate_on_the_run_dir_shows_the_plugin_label(lin_run, spec, data, tmp_path, capsys):
    from bapps_toolkit.cli.main import main

    md = tmp_path / "t.md"
    assert main(["evaluate", str(data), "--metrics", "l2", str(lin_run.out_dir), "--datasets", "val",
                 "--n-boot", "20", "--markdown", str(md), "--no-progress", "--trust-plugin", spec]) == 0
    table = md.read_text()
    assert "lpips[tiny_net.py:Net]" in table and "UNCALIBRATED" in table
    assert "lpips[tiny_net.py:Net]" in capsys.readouterr().out


def test_cli_train_with_a_relative_file_spec(data, plugin_dir, tmp_path, monkeypatch, capsys):
    from bapps_toolkit.cli.main import main

    monkeypatch.chdir(plugin_dir)
    out = tmp_path / "cli"
    argv = ["train", str(data), "--net", "tiny_net.py:Net", "--net-option", "width=2", "--out", str(out),
            "--epochs", "1", "--decay-epochs", "0", "--batch-size", "10", "--datasets", "train/cnn", "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "checkpoint:" in captured.out and "lpips[tiny_net.py:Net] lin" in captured.err
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["net"] == f"{plugin_dir / 'tiny_net.py'}:Net"
    assert card["config"]["net_options"] == {"width": 2}
    assert load_metric_from_checkpoint(out, trust_plugin="tiny_net.py:Net").channels == [2, 4]
    monkeypatch.chdir(tmp_path)  # resume from elsewhere: the card holds the absolute spec
    assert main(["train", str(data), "--out", str(out), "--resume", "--no-progress",
                 "--trust-plugin", card["config"]["net"]]) == 0
    assert "nothing to resume" in capsys.readouterr().err
    monkeypatch.chdir(plugin_dir)
    assert main(argv[:4] + ["--net-option", "depth=2"] + argv[6:] + ["--overwrite"]) == 2
    assert "depth" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# errors

def test_config_errors(data, spec, tmp_path):
    with pytest.raises(ConfigError, match="scratch.*no init.*lin or tune"):
        pcfg(data, tmp_path / "x", spec, variant="scratch").validated()
    with pytest.raises(ConfigError, match="brings its own weights"):
        pcfg(data, tmp_path / "x", spec, backbone_weights="random").validated()
    with pytest.raises(ConfigError, match="own input scaling"):
        pcfg(data, tmp_path / "x", spec, version="0.0").validated()
    with pytest.raises(ConfigError, match="takes no options"):
        pcfg(data, tmp_path / "x", "alex", net_options=["width=2"]).validated()
    with pytest.raises(ConfigError, match="expected int"):
        pcfg(data, tmp_path / "x", spec, net_options=["width=wide"]).validated()
    with pytest.raises(ConfigError, match="unknown network 'resnet'.*plugin spec"):
        pcfg(data, tmp_path / "x", "resnet").validated()


def test_spec_that_does_not_import(data, tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import torch\nraise ImportError('no module named secret_dep')\n")
    with pytest.raises(PluginError, match="broken.py:Net.*secret_dep"):
        train(pcfg(data, tmp_path / "x", f"{bad}:Net"))
    assert not (tmp_path / "x" / "card.json").exists()
    with pytest.raises(ValueError, match="does not exist"):
        train(pcfg(data, tmp_path / "x", f"{tmp_path / 'nope.py'}:Net"))
    with pytest.raises(PluginError, match="forward returned a Tensor"):
        train(pcfg(data, tmp_path / "y", f"{_write(tmp_path, 't.py', TINY)}:TensorNet"))
    assert not (tmp_path / "y" / "card.json").exists()


def _write(d: Path, name: str, text: str) -> Path:
    (d / name).write_text(text)
    return d / name


def test_file_changed_after_training_is_refused(data, tmp_path):
    f = _write(tmp_path, "net_a.py", TINY)
    res = train(pcfg(data, tmp_path / "run", f"{f}:Net", epochs=1, decay_epochs=0))
    load_metric_from_checkpoint(res.out_dir, trust_plugin=f"{f}:Net")
    f.write_text(TINY + "\n# edited\n")
    with pytest.raises(CheckpointError, match=r"net_a\.py.*changed since training") as err:
        load_metric_from_checkpoint(res.out_dir, trust_plugin=f"{f}:Net")
    assert str(res.out_dir) in str(err.value)
    with pytest.raises(CheckpointError, match=r"net_a\.py.*changed since training"):
        train(resume_config(res.out_dir, trust_plugin=f"{f}:Net"))
    f.unlink()
    with pytest.raises(CheckpointError, match="no longer exists"):
        load_metric_from_checkpoint(res.out_dir, trust_plugin=f"{f}:Net")


def test_module_plugin_that_no_longer_imports_or_fits(data, tmp_path, monkeypatch):
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "tiny_mod_net.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(pkg))
    res = train(pcfg(data, tmp_path / "run", "tiny_mod_net:Net", epochs=1, decay_epochs=0))
    origin = res.card["backbone"]["plugin"]["origin"]
    assert origin["kind"] == "module" and origin["file"].endswith("tiny_mod_net.py")
    assert origin["sha256"] == hashlib.sha256((pkg / "tiny_mod_net.py").read_bytes()).hexdigest()
    trust = "tiny_mod_net:Net"
    assert load_metric_from_checkpoint(res.out_dir, trust_plugin=trust).name == "lpips[tiny_mod_net:Net]"
    # the module's code changed (module specs are checked by SHA-256 too): refused before the import
    (pkg / "tiny_mod_net.py").write_text(TINY.replace("width: int = 4", "width: int = 5"))
    monkeypatch.delitem(sys.modules, "tiny_mod_net")
    with pytest.raises(CheckpointError, match=r"tiny_mod_net\.py.*tiny_mod_net:Net.*changed since training"):
        load_metric_from_checkpoint(res.out_dir, trust_plugin=trust)
    assert "tiny_mod_net" not in sys.modules
    (pkg / "tiny_mod_net.py").unlink()
    with pytest.raises(CheckpointError, match="tiny_mod_net:Net.*cannot be found.*no module named 'tiny_mod_net'"):
        load_metric_from_checkpoint(res.out_dir, trust_plugin=trust)


def test_entry_point_network(data, tmp_path, monkeypatch):
    dist = tmp_path / "tiny_nets_pkg-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-nets-pkg\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[bapps_toolkit.metrics]\ntiny-net = tiny_ep_net:Net\n")
    (tmp_path / "tiny_ep_net.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    res = train(pcfg(data, tmp_path / "run", "tiny-net", epochs=1, decay_epochs=0))
    origin = res.card["backbone"]["plugin"]["origin"]
    sha = hashlib.sha256((tmp_path / "tiny_ep_net.py").read_bytes()).hexdigest()
    assert origin == {"kind": "entry-point", "value": "tiny_ep_net:Net", "distribution": "tiny-nets-pkg",
                      "version": "0.3", "module": "tiny_ep_net", "file": str(tmp_path / "tiny_ep_net.py"),
                      "sha256": sha}
    m = load_metric_from_checkpoint(res.out_dir, trust_plugin="TINY-NET")
    assert m.name == "lpips[tiny-net]" and m.channels == [4, 8]
