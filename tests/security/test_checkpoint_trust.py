"""A checkpoint or a run card never decides by itself which code runs.

Each exploit of the hostile-input review is tried as an attacker would: a ``.safetensors`` whose
metadata names ``os:system`` with a shell command in its options, given to
``load_metric_from_checkpoint``, ``bapps evaluate --checkpoint``, ``bapps evaluate --metrics
RUN_DIR`` and ``bapps score --checkpoint``; a plugin file or module whose import has a side effect;
a ``card.json`` naming ``os:system`` for ``bapps train --resume`` (and one whose string options
made the old code import the module to type them). Every one must be refused with a
``CheckpointError`` that names the file, the spec it asks for and how to allow it, and leave no
marker: nothing is imported or run before the decision.

Then the trusted paths: a spec the user names loads only when the SHA-256 of its code (a file
spec's file, a module's file, an entry point's module file) is the one recorded at training
time; the digest is of the file that would be imported, never of a file the checkpoint points
at; a dotted module is located without running its package's ``__init__``; an old checkpoint
without a module digest loads only when trusted, with a warning that says so.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import write_png

from bapps_toolkit.cli.main import main
from bapps_toolkit.errors import CheckpointError
from bapps_toolkit.metrics.plugin_net import PluginLPIPS, build_plugin_lpips
from bapps_toolkit.metrics.trained import load_metric_from_checkpoint
from bapps_toolkit.train import resume_config

from .ckpt_tools import (
    TINY_NET,
    plugin_meta,
    touch_command,
    write_card,
    write_checkpoint,
    write_side_effect_module,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "MARKER"


@pytest.fixture
def os_system_ckpt(tmp_path, marker) -> Path:
    """The exploit: a checkpoint asking for ``os:system`` with a shell command as its option."""
    return write_checkpoint(tmp_path / "evil.safetensors",
                            plugin_meta("os:system", {"command": touch_command(marker)}))


def refused_message(spec: str) -> str:
    """What every refusal says: the spec, and the two ways to allow it."""
    return rf"refusing to import the plugin network '{spec}'.*--trust-plugin {spec}.*trust_plugin='{spec}'"


def assert_refused(call: Callable[[], Any], marker: Path, pattern: str) -> str:
    """``call()`` ends in a CheckpointError matching ``pattern`` -- checked only after the
    marker, so that a payload that ran is reported as such whatever the call did next."""
    try:
        call()
        raised: Exception | None = None
    except Exception as exc:
        raised = exc
    assert not marker.exists(), f"the payload ran (then: {raised!r})"
    assert isinstance(raised, CheckpointError), f"expected a CheckpointError, got {raised!r}"
    assert re.search(pattern, str(raised)), str(raised)
    return str(raised)


# ------------------------------------------------------------------------------------------
# os:system in a checkpoint: every way a checkpoint is loaded

def test_os_system_checkpoint_refused_by_load_metric(os_system_ckpt, marker):
    text = assert_refused(lambda: load_metric_from_checkpoint(os_system_ckpt), marker, refused_message("os:system"))
    assert text.startswith(f"{os_system_ckpt}: ") and "command=" in text


def test_os_system_checkpoint_refused_by_evaluate_checkpoint(os_system_ckpt, marker, tiny_tree, capsys):
    data = tiny_tree(("2afc/val/cnn",), n=2)
    rc = main(["evaluate", str(data), "--checkpoint", str(os_system_ckpt), "--n-boot", "10", "--no-progress"])
    assert not marker.exists()
    err = capsys.readouterr().err
    assert rc == 2 and str(os_system_ckpt) in err and "--trust-plugin os:system" in err


def test_os_system_checkpoint_refused_by_evaluate_on_other_benchmarks(os_system_ckpt, marker, tmp_path, capsys):
    """A DATA that is not BAPPS goes through the benchmark runner: the checkpoint is refused there too."""
    (tmp_path / "iqa").mkdir()
    rc = main(["evaluate", str(tmp_path / "iqa"), "--checkpoint", str(os_system_ckpt), "--n-boot", "10"])
    assert not marker.exists()
    err = capsys.readouterr().err
    assert rc == 2 and "refusing to import the plugin network 'os:system'" in err


def test_os_system_run_dir_refused_by_evaluate_metrics(tmp_path, marker, tiny_tree, capsys):
    run = tmp_path / "shared_run"
    write_checkpoint(run / "latest.safetensors", plugin_meta("os:system", {"command": touch_command(marker)}))
    data = tiny_tree(("2afc/val/cnn",), n=2)
    rc = main(["evaluate", str(data), "--metrics", "l2", str(run), "--n-boot", "10", "--no-progress"])
    assert not marker.exists()
    err = capsys.readouterr().err
    assert rc == 2 and "refusing to import the plugin network 'os:system'" in err


def test_os_system_checkpoint_refused_by_score(os_system_ckpt, marker, tmp_path, capsys):
    img = np.full((64, 64, 3), 128, np.uint8)
    write_png(tmp_path / "a.png", img)
    write_png(tmp_path / "b.png", img)
    rc = main(["score", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--checkpoint", str(os_system_ckpt),
               "--no-progress"])
    assert not marker.exists()
    err = capsys.readouterr().err
    assert rc == 2 and "--trust-plugin os:system" in err


def test_trusting_another_spec_does_not_allow_it(os_system_ckpt, marker):
    with pytest.raises(CheckpointError, match=r"'os:system'.*you trusted os:popen"):
        load_metric_from_checkpoint(os_system_ckpt, trust_plugin="os:popen")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------
# specs whose import has a side effect: refused before the import

def test_module_spec_refused_before_import(tmp_path, marker, monkeypatch):
    write_side_effect_module(tmp_path / "mods", "side_effect_mod", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    ck = write_checkpoint(tmp_path / "m.safetensors", plugin_meta("side_effect_mod:Net"))
    assert_refused(lambda: load_metric_from_checkpoint(ck), marker, refused_message("side_effect_mod:Net"))
    assert "side_effect_mod" not in sys.modules


@pytest.mark.parametrize("origin", [None, {}, {"kind": "module", "module": "x"}])
def test_file_spec_refused_before_import(tmp_path, marker, origin):
    """The old code checked a file spec's digest only when the checkpoint said ``kind: file``:
    any other origin (or none) imported the file unchecked."""
    evil = write_side_effect_module(tmp_path, "evil_net", marker)
    ck = write_checkpoint(tmp_path / "f.safetensors", plugin_meta(f"{evil}:Net", origin=origin))
    text = assert_refused(lambda: load_metric_from_checkpoint(ck), marker,
                          rf"refusing to import the plugin network '{re.escape(str(evil))}:Net'")
    assert "records no SHA-256 of that file either" in text


def test_digest_is_of_the_file_imported_not_of_the_file_named_in_origin(tmp_path, marker):
    """The old code hashed ``origin.path`` but imported the spec's file: an origin pointing at
    an unchanged file let any other file through. Trusted or not, the spec's own file is hashed."""
    benign = tmp_path / "benign.py"
    benign.write_text("class Net:\n    pass\n")
    evil = write_side_effect_module(tmp_path, "evil_net", marker)
    spec = f"{evil}:Net"
    origin = {"kind": "file", "path": str(benign), "sha256": sha(benign)}
    ck = write_checkpoint(tmp_path / "f.safetensors", plugin_meta(spec, origin=origin))
    assert_refused(lambda: load_metric_from_checkpoint(ck, trust_plugin=spec), marker,
                   r"evil_net\.py.*changed since training")


def test_trusted_module_with_another_digest_is_refused_before_any_import(tmp_path, marker, monkeypatch):
    """A dotted module is located without running its package ``__init__`` (which
    ``importlib.util.find_spec`` would run); a digest that differs stops before the import."""
    write_side_effect_module(tmp_path / "mods", "side_pkg.nets", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    origin = {"kind": "module", "module": "side_pkg.nets", "sha256": "0" * 64}
    ck = write_checkpoint(tmp_path / "m.safetensors", plugin_meta("side_pkg.nets:Net", origin=origin))
    assert_refused(lambda: load_metric_from_checkpoint(ck, trust_plugin="side_pkg.nets:Net"), marker,
                   r"side_pkg/nets\.py \('side_pkg\.nets:Net'\) changed since training")
    assert "side_pkg" not in sys.modules


def test_spec_not_found_is_a_checkpoint_error(tmp_path):
    ck = write_checkpoint(tmp_path / "m.safetensors", plugin_meta("no_such_module_xyz.sub:Net"))
    with pytest.raises(CheckpointError, match=r"cannot be found: no module named 'no_such_module_xyz\.sub' on this"):
        load_metric_from_checkpoint(ck, trust_plugin="no_such_module_xyz.sub:Net")


# ------------------------------------------------------------------------------------------
# the trusted path: a real plugin network, its digest checked

def _plugin_checkpoint(path: Path, spec: str, origin: dict | None, options: dict | None = None) -> Path:
    """A checkpoint of ``spec`` built by the test itself (the test trusts its own file)."""
    model = build_plugin_lpips(spec, options)
    tensors = {f"lin.{k}.weight": torch.full((1, c, 1, 1), 0.1) for k, c in enumerate(model.channels)}
    tensors.update({f"backbone.{k}": v for k, v in model.backbone.state_dict().items()})
    return write_checkpoint(path, plugin_meta(spec, options, origin), tensors)


@pytest.fixture
def tiny_module(tmp_path, monkeypatch) -> Path:
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "tiny_trusted_net.py").write_text(TINY_NET)
    monkeypatch.syspath_prepend(str(mods))
    yield mods / "tiny_trusted_net.py"
    sys.modules.pop("tiny_trusted_net", None)


def test_trusted_module_spec_with_its_digest_loads(tiny_module, tmp_path):
    spec = "tiny_trusted_net:Net"
    origin = {"kind": "module", "module": "tiny_trusted_net", "file": str(tiny_module), "sha256": sha(tiny_module)}
    ck = _plugin_checkpoint(tmp_path / "ok.safetensors", spec, origin, {"width": 4})
    m = load_metric_from_checkpoint(ck, trust_plugin=spec)
    assert isinstance(m, PluginLPIPS) and m.channels == [4, 8]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.isfinite(m(x, x.flip(0))).all()


def test_old_module_checkpoint_without_digest(tiny_module, tmp_path):
    """Written before module digests were recorded: refused untrusted with a message that says
    so; trusted, it loads with a warning that the code could not be checked."""
    spec = "tiny_trusted_net:Net"
    ck = _plugin_checkpoint(tmp_path / "old.safetensors", spec, {"kind": "module", "module": "tiny_trusted_net"})
    sys.modules.pop("tiny_trusted_net", None)
    with pytest.raises(CheckpointError, match=r"records no SHA-256 of that code.*--trust-plugin tiny_trusted_net:Net"):
        load_metric_from_checkpoint(ck)
    assert "tiny_trusted_net" not in sys.modules
    with pytest.warns(UserWarning, match=r"records no SHA-256.*tiny_trusted_net\.py is used as it is now, unchecked"):
        m = load_metric_from_checkpoint(ck, trust_plugin=spec)
    assert m.channels == [4, 8]


def test_recorded_options_must_have_the_annotated_types(tiny_module, tmp_path):
    spec = "tiny_trusted_net:Net"
    origin = {"kind": "module", "module": "tiny_trusted_net", "sha256": sha(tiny_module)}
    ck = _plugin_checkpoint(tmp_path / "ok.safetensors", spec, origin, {"width": 4})
    bad = write_checkpoint(tmp_path / "bad.safetensors", plugin_meta(spec, {"width": "4; rm -rf ~"}, origin))
    with pytest.raises(CheckpointError, match=r"option width='4; rm -rf ~' is a str, the factory takes int"):
        load_metric_from_checkpoint(bad, trust_plugin=spec)
    nested = write_checkpoint(tmp_path / "nested.safetensors", plugin_meta(spec, {"width": {"a": 1}}, origin))
    with pytest.raises(CheckpointError, match=r"recorded option 'width'.*not an identifier with a number"):
        load_metric_from_checkpoint(nested, trust_plugin=spec)
    assert load_metric_from_checkpoint(ck, trust_plugin=spec).channels == [4, 8]


def test_entry_point_digest_and_value(tmp_path, monkeypatch):
    dist = tmp_path / "tiny_trust_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-trust-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bapps_toolkit.metrics]\ntiny-trust-net = tiny_trust_ep:Net\n")
    (tmp_path / "tiny_trust_ep.py").write_text(TINY_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    origin = {"kind": "entry-point", "value": "tiny_trust_ep:Net", "sha256": sha(tmp_path / "tiny_trust_ep.py")}
    ck = _plugin_checkpoint(tmp_path / "ep.safetensors", "tiny-trust-net", origin)
    sys.modules.pop("tiny_trust_ep", None)
    with pytest.raises(CheckpointError, match=refused_message("tiny-trust-net")):
        load_metric_from_checkpoint(ck)
    assert "tiny_trust_ep" not in sys.modules
    assert load_metric_from_checkpoint(ck, trust_plugin="Tiny-Trust-Net").channels == [4, 8]
    moved = write_checkpoint(tmp_path / "moved.safetensors",
                             plugin_meta("tiny-trust-net", {}, dict(origin, value="other_mod:Net")))
    with pytest.raises(CheckpointError, match=r"entry point 'tiny-trust-net' now names 'tiny_trust_ep:Net'"):
        load_metric_from_checkpoint(moved, trust_plugin="tiny-trust-net")
    (tmp_path / "tiny_trust_ep.py").write_text(TINY_NET + "\n# changed\n")
    sys.modules.pop("tiny_trust_ep", None)
    with pytest.raises(CheckpointError, match=r"tiny_trust_ep\.py \('tiny-trust-net'\) changed since training"):
        load_metric_from_checkpoint(ck, trust_plugin="tiny-trust-net")


def test_evaluate_cli_trust_flag_allows_the_trusted_checkpoint(tiny_module, tmp_path, tiny_tree, capsys):
    spec = "tiny_trusted_net:Net"
    origin = {"kind": "module", "module": "tiny_trusted_net", "sha256": sha(tiny_module)}
    ck = _plugin_checkpoint(tmp_path / "ok.safetensors", spec, origin)
    data = tiny_tree(("2afc/val/cnn",), n=2)
    argv = ["evaluate", str(data), "--checkpoint", str(ck), "--n-boot", "10", "--no-progress"]
    assert main(argv) == 2 and "--trust-plugin tiny_trusted_net:Net" in capsys.readouterr().err
    assert main(argv + ["--trust-plugin", spec]) == 0
    assert "lpips[tiny_trusted_net:Net]" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# run cards: bapps train --resume

@pytest.fixture
def train_data(tiny_tree) -> Path:
    return tiny_tree(("2afc/train/cnn", "2afc/val/cnn"), n=4)


def test_card_naming_os_system_is_refused_on_resume(train_data, tmp_path, marker, capsys):
    run = write_card(tmp_path / "run", train_data, "os:system", {"command": touch_command(marker)},
                     plugin_origin={"kind": "module", "module": "os"})
    rc = main(["train", str(train_data), "--resume", "--out", str(run), "--no-progress"])
    assert not marker.exists()
    err = capsys.readouterr().err
    assert rc == 2
    assert str(run / "card.json") in err and "refusing to import the plugin network 'os:system'" in err
    assert "--net os:system (or --trust-plugin os:system)" in err


def test_card_with_string_options_is_refused_before_the_import(train_data, tmp_path, marker, monkeypatch):
    """The old code typed a card's ``key=value`` option strings by the factory's signature, and
    imported the module to read it, before anything was checked."""
    write_side_effect_module(tmp_path / "mods", "card_side_mod", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    run = write_card(tmp_path / "run", train_data, "card_side_mod:Net", ["width=3"])
    assert_refused(lambda: resume_config(run, data=str(train_data)), marker, "config.net_options is not a JSON object")
    assert_refused(lambda: resume_config(run, data=str(train_data), trust_plugin="card_side_mod:Net"), marker,
                   "config.net_options is not a JSON object")
    run2 = write_card(tmp_path / "run2", train_data, "card_side_mod:Net", {"width": 3})
    assert_refused(lambda: resume_config(run2, data=str(train_data)), marker, refused_message("card_side_mod:Net"))
    assert "card_side_mod" not in sys.modules


def test_card_given_another_net_or_an_inconsistent_plugin(train_data, tmp_path, marker):
    run = write_card(tmp_path / "run", train_data, "os:system", {"command": touch_command(marker)})
    with pytest.raises(CheckpointError, match=r"--net: card os:system, given alex"):
        resume_config(run, data=str(train_data), net="alex", names={"net": "--net"})
    odd = write_card(tmp_path / "odd", train_data, "os:system", {"command": touch_command(marker)},
                     plugin_spec="json:loads")
    with pytest.raises(CheckpointError, match=r"config.net 'os:system' and backbone.plugin.spec 'json:loads' differ"):
        resume_config(odd, data=str(train_data), trust_plugin="os:system")
    assert not marker.exists()


def test_card_trusted_plugin_resumes_only_with_its_digest(train_data, tmp_path, tiny_module, monkeypatch):
    spec = "tiny_trusted_net:Net"
    origin = {"kind": "module", "module": "tiny_trusted_net", "file": str(tiny_module), "sha256": sha(tiny_module)}
    run = write_card(tmp_path / "run", train_data, spec, {"width": 4}, plugin_origin=origin)
    with pytest.raises(CheckpointError, match=r"refusing to import the plugin network 'tiny_trusted_net:Net'.*"
                                              r"--net tiny_trusted_net:Net \(or --trust-plugin tiny_trusted_net:Net\)"):
        resume_config(run, data=str(train_data))
    cfg = resume_config(run, data=str(train_data), trust_plugin=spec)
    assert cfg.net == spec and cfg.net_options == {"width": 4}
    assert resume_config(run, data=str(train_data), net=spec).net == spec
    tiny_module.write_text(TINY_NET + "\n# changed\n")
    with pytest.raises(CheckpointError, match="changed since training"):
        resume_config(run, data=str(train_data), trust_plugin=spec)
    assert "tiny_trusted_net" not in sys.modules


def test_train_trust_flag_is_for_resume_only(train_data, tmp_path, capsys):
    rc = main(["train", str(train_data), "--out", str(tmp_path / "x"), "--trust-plugin", "os:system"])
    assert rc == 2 and "--trust-plugin is for --resume" in capsys.readouterr().err


def test_card_json_is_bounded(train_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "card.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="card.json is not valid JSON"):
        resume_config(run, data=str(train_data))
    (run / "card.json").write_text(json.dumps([1, 2]))
    with pytest.raises(CheckpointError, match="holds a JSON list, not an object"):
        resume_config(run, data=str(train_data))
    card = json.loads(write_card(tmp_path / "ok", train_data, "alex").joinpath("card.json").read_text())
    for key, value, words in (("epochs_done", "abc", "epochs_done 'abc' is not an epoch count"),
                              ("history", [{"epoch": "1"}], "history is not a list of epochs"),
                              ("backbone", {"plugin": [1]}, "backbone.plugin is a list")):
        (run / "card.json").write_text(json.dumps(dict(card, **{key: value})))
        with pytest.raises(CheckpointError, match=words):
            resume_config(run, data=str(train_data))
