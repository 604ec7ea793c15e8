"""Property-based fuzzing (hypothesis) of the checkpoint and run-card readers.

* **Checkpoint metadata**: random metadata dicts -- the keys the reader knows and others; values
  drawn from plugin specs (``os:system``, a module and a file whose import writes a marker, an
  entry-point-like name), net names, versions, paths (``../``, absolute, ``/proc/kmsg``), JSON of
  every shape (deep, huge numbers, wrong types) and random text -- on several tensor layouts
  (none, the linear layers of alex, alex with its backbone, odd names, int dtypes).
  ``load_metric_from_checkpoint`` with no trust must end in a ``CheckpointError`` or give a valid
  LPIPS, never another exception, and never import anything: the plugin loader is replaced by a
  tripwire and the marker files must stay absent.
* **Trusted plugin**: the same with ``trust_plugin`` naming a real tiny network and random recorded
  options and origins: a ``CheckpointError`` or a working :class:`PluginLPIPS`.
* **Run cards**: random changes to a run card; ``resume_config`` must end in a ``CheckpointError``
  or give a config, and never import the plugin the card names.
"""
from __future__ import annotations

import hashlib
import json
import sys
from typing import Any
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from bapps_toolkit.errors import CheckpointError
from bapps_toolkit.metrics import plugin_net, plugins
from bapps_toolkit.metrics.lpips import LPIPS
from bapps_toolkit.metrics.plugin_net import PluginLPIPS, build_plugin_lpips
from bapps_toolkit.metrics.trained import build_lpips, load_metric_from_checkpoint
from bapps_toolkit.train import TrainConfig, resume_config

from .ckpt_tools import TINY_NET, touch_command, write_card, write_checkpoint, write_side_effect_module

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ALEX = (64, 192, 384, 256, 256)
KNOWN_KEYS = ["format", "format_version", "net", "version", "variant", "channels", "plugin_spec", "plugin_options",
              "plugin_origin", "plugin_kind", "backbone_in_file", "backbone_file", "backbone_source",
              "backbone_sha256", "calibrated", "calibration_note", "bapps_provenance", "epoch", "label"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """Marker plugins, a real tiny network file, files to point at, and tensor layouts."""
    d = tmp_path_factory.mktemp("fuzz_world")
    marker = d / "MARKER"
    write_side_effect_module(d / "mods", "fuzz_side_mod", marker)
    write_side_effect_module(d / "mods", "fuzz_side_pkg.nets", marker)
    evil = write_side_effect_module(d, "fuzz_evil_file", marker)
    tiny = d / "fuzz_tiny_net.py"
    tiny.write_text(TINY_NET)
    sys.path.insert(0, str(d / "mods"))
    alex = build_lpips("alex", "0.1", "random", 1)
    alex_bb = {f"backbone.{k}": v.clone() for k, v in alex.backbone.state_dict().items()}
    lins = {f"lin.{k}.weight": torch.full((1, c, 1, 1), 0.05) for k, c in enumerate(ALEX)}
    tiny_model = build_plugin_lpips(f"{tiny}:Net")
    tiny_tensors = {f"backbone.{k}": v.clone() for k, v in tiny_model.backbone.state_dict().items()}
    tiny_tensors.update({f"lin.{k}.weight": torch.full((1, c, 1, 1), 0.1) for k, c in enumerate(tiny_model.channels)})
    (d / "run").mkdir()
    torch.save({"x": torch.zeros(1)}, str(d / "weights.pth"))
    layouts = {
        "none": {},
        "alex lins": lins,
        "alex full": {**lins, **alex_bb},
        "tiny": tiny_tensors,
        "odd names": {"lin.0.weight": torch.zeros(1, 4, 1, 1), "lin.2.weight": torch.zeros(1, 4, 1, 1),
                      "G.x": torch.zeros(2), "backbone.y": torch.zeros(3)},
        "int lins": {k: v.to(torch.int64) for k, v in lins.items()},
        "3d lins": {k: v[0] for k, v in lins.items()},
    }
    specs = ["os:system", "os:popen", "fuzz_side_mod:Net", "fuzz_side_pkg.nets:Net", f"{evil}:Net", "json:loads",
             "subprocess:run", f"{tiny}:Net", "no_such_mod:Net", "tiny-net", "a:b:c", ":", "alex", "vgg", "squeeze",
             "x" * 300]
    yield {"dir": d, "marker": marker, "layouts": layouts, "specs": specs, "tiny": tiny}
    sys.path.remove(str(d / "mods"))


def _json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=False),
                       st.text(max_size=20))
    return st.recursive(leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                          max_size=4), max_leaves=12)


def _values(world: dict[str, Any]) -> st.SearchStrategy[str]:
    d = world["dir"]
    fixed = world["specs"] + [
        "0.0", "0.1", "1", "0", "", "lin", "tune", "bapps-toolkit/lpips-checkpoint", "../../etc/passwd", "/etc/passwd",
        "backbone.safetensors", "../run/backbone.safetensors", "/dev/zero", "/proc/kmsg", "/proc/self/status",
        str(d / "weights.pth"), "weights.pth", "[" * 5000 + "]" * 5000, "{" * 3 + "}", "1" * 5000, "NaN",
        json.dumps({"command": touch_command(world["marker"])}), json.dumps({"kind": "module", "module": "os"}),
        json.dumps({"kind": "file", "path": str(world["tiny"]), "sha256": "0" * 64}), json.dumps([64, 192]),
        json.dumps({"source": "trained", "calibrated": False, "note": "n"}), "\x00", "a\nb",
    ]
    return st.one_of(st.sampled_from(fixed), st.text(max_size=30), _json_values().map(json.dumps))


@st.composite
def checkpoints(draw: st.DrawFn, world: dict[str, Any]) -> tuple[dict[str, str], str]:
    """Metadata that mostly passes the first checks (format, net), so that the later ones are
    reached: half name a plugin, and the backbone keys are set often."""
    values = _values(world)
    meta = draw(st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(min_size=1, max_size=8), values, max_size=6))
    if draw(st.sampled_from(range(10))) != 3:  # hypothesis favours the first value: keep the format mostly
        meta["format"] = "bapps-toolkit/lpips-checkpoint"
    scalars = st.one_of(st.integers(-5, 70), st.text(max_size=10), st.sampled_from(world["specs"]))
    objects = st.dictionaries(st.sampled_from(["command", "width", "kind", "path", "sha256", "module", "x"]),
                              st.one_of(scalars, scalars, scalars, _json_values()), max_size=3).map(json.dumps)
    if draw(st.booleans()):
        spec = draw(st.sampled_from(world["specs"]) | values)
        meta.update(net=spec, plugin_spec=spec, plugin_options=draw(objects))
    elif draw(st.sampled_from(range(4))) != 3:
        meta["net"] = draw(st.sampled_from(["alex", "vgg", "squeeze"]))
    for key, strategy in (("backbone_in_file", st.sampled_from(["1", "0"])), ("plugin_options", objects | values),
                          ("plugin_origin", objects | values), ("backbone_file", values), ("backbone_sha256", values)):
        if draw(st.booleans()):
            meta[key] = draw(strategy)
    return {k: v for k, v in meta.items() if "\x00" not in k}, draw(st.sampled_from(sorted(world["layouts"])))


def _tripwire(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"a plugin was imported: {args!r}")


def _check_outcome(call: Any, world: dict[str, Any]) -> Any:
    try:
        result = call()
    except CheckpointError as exc:
        result = None
        event(f"CheckpointError: {str(exc).partition(': ')[2][:24]}")
    else:
        event("accepted")
    assert not world["marker"].exists(), "a plugin's import ran"
    assert not {"fuzz_side_mod", "fuzz_side_pkg"} & set(sys.modules)
    return result


def test_checkpoint_metadata_fuzz(world, tmp_path):
    @SETTINGS
    @given(checkpoints(world))
    def run(case: tuple[dict[str, str], str]) -> None:
        meta, layout = case
        path = tmp_path / "run" / "latest.safetensors"
        path.parent.mkdir(exist_ok=True)
        save_file(world["layouts"][layout], str(path), metadata=meta)
        with mock.patch.object(plugin_net, "load_object", _tripwire), \
                mock.patch.object(plugins, "load_object", _tripwire), \
                mock.patch.object(plugins, "resolve_spec", _tripwire):
            model = _check_outcome(lambda: load_metric_from_checkpoint(path.parent), world)
        if model is not None:
            assert isinstance(model, LPIPS) and not model.training
            x = torch.rand(1, 3, 64, 64) * 2 - 1
            assert torch.isfinite(model(x, -x)).all()

    run()


@st.composite
def trusted_cases(draw: st.DrawFn, world: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    value = st.one_of(st.integers(-3, 12), st.floats(-2, 8, allow_nan=False), st.booleans(), st.none(),
                      st.text(max_size=6), st.lists(st.integers(0, 3), max_size=3), _json_values())
    options = draw(st.dictionaries(st.sampled_from(["width", "depth", "__class__", "x y", "weights"]), value,
                                   max_size=3))
    digest = hashlib.sha256(world["tiny"].read_bytes()).hexdigest()
    origin = draw(st.one_of(st.just({"kind": "file", "path": str(world["tiny"]), "sha256": digest}),
                            st.dictionaries(st.sampled_from(["kind", "path", "sha256", "value", "module"]),
                                            st.sampled_from([digest, "0" * 64, "file", "module", str(world["tiny"]),
                                                             "", "x"]) | _json_values(), max_size=4)))
    return options, origin


def test_trusted_plugin_fuzz(world, tmp_path):
    spec = f"{world['tiny']}:Net"

    @SETTINGS
    @given(trusted_cases(world))
    def run(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
        options, origin = case
        meta = {"net": spec, "plugin_spec": spec, "plugin_options": json.dumps(options),
                "plugin_origin": json.dumps(origin), "backbone_in_file": "1"}
        path = write_checkpoint(tmp_path / "t.safetensors", meta, world["layouts"]["tiny"])
        model = _check_outcome(lambda: load_metric_from_checkpoint(path, trust_plugin=spec), world)
        if model is not None:
            assert isinstance(model, PluginLPIPS) and model.channels == [4, 8]
            x = torch.rand(1, 3, 64, 64) * 2 - 1
            assert torch.isfinite(model(x, -x)).all()

    run()


@st.composite
def cards(draw: st.DrawFn, world: dict[str, Any]) -> dict[str, Any]:
    changes = draw(st.dictionaries(
        st.sampled_from(["net", "net_options", "epochs_done", "history", "backbone", "resumed", "shuffle", "format",
                         "config", "variant", "epochs", "datasets", "lr", "version", "backbone_weights", "data"]),
        st.sampled_from(world["specs"]) | _json_values(), max_size=4))
    return changes


def test_run_card_fuzz(world, tiny_tree, tmp_path):
    data = tiny_tree(("2afc/train/cnn",), n=2)
    base = json.loads(write_card(tmp_path / "base", data, "alex").joinpath("card.json").read_text())
    config_keys = {"net", "net_options", "variant", "epochs", "datasets", "lr", "version", "backbone_weights", "data"}

    @SETTINGS
    @given(cards(world))
    def run(changes: dict[str, Any]) -> None:
        card = json.loads(json.dumps(base))
        for key, value in changes.items():
            if key in config_keys and isinstance(card.get("config"), dict):
                card["config"][key] = value
            else:
                card[key] = value
        out = tmp_path / "run"
        out.mkdir(exist_ok=True)
        (out / "card.json").write_text(json.dumps(card))
        with mock.patch.object(plugin_net, "load_object", _tripwire), \
                mock.patch.object(plugins, "load_object", _tripwire), \
                mock.patch.object(plugins, "resolve_spec", _tripwire):
            cfg = _check_outcome(lambda: resume_config(out, data=str(data)), world)
        assert cfg is None or isinstance(cfg, TrainConfig)

    run()

