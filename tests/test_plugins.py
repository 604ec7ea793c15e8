"""Metric plugins: module / file / entry-point specs in `bapps evaluate`, options, every error."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import bapps_toolkit as bt
from bapps_toolkit.cli.main import main
from bapps_toolkit.metrics import plugins
from bapps_toolkit.metrics.plugins import PluginError, create_plugin_metric, parse_metric_options

PLUGIN_SRC = textwrap.dedent('''
    import torch
    from torch import nn

    def l1(x0, x1):
        """Mean absolute difference per item (a plain callable)."""
        return (x0 - x1).abs().mean(dim=(1, 2, 3))

    class Scaled(nn.Module):
        def __init__(self, scale: float = 1.0, squared: bool = False):
            super().__init__()
            self.scale, self.squared = scale, squared

        def forward(self, x0, x1):
            d = (x0 - x1).abs()
            return self.scale * (d * d if self.squared else d).mean(dim=(1, 2, 3))

    def make(scale: float = 1.0):
        return Scaled(scale)

    def similarity(x0, x1):
        return -(x0 - x1).abs().mean(dim=(1, 2, 3))
    similarity.higher_is_better = True

    def mean_only(x0, x1):
        return (x0 - x1).abs().mean()

    NOT_A_METRIC = 42
''')


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(PLUGIN_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_metrics", None)
    yield tmp_path / "my_metrics.py"
    sys.modules.pop("my_metrics", None)


def _x(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, torch.rand(n, 3, 16, 16, generator=g) * 2 - 1


def _table(capsys, mini_root, *metrics, extra=()):
    rc = main(["evaluate", str(mini_root), "--metrics", *metrics, "--n-boot", "10", "--no-progress",
               "--datasets", "val/cnn", *extra])
    assert rc == 0
    return capsys.readouterr().out


def _row(md: str, name: str) -> str:
    rows = [line for line in md.splitlines() if line.startswith("|") and name in line]
    assert rows, f"{name} not in table:\n{md}"
    return rows[0]


def test_module_plugin_in_evaluate_table(plugin_module, mini_root, capsys):
    md = _table(capsys, mini_root, "l2", "my_metrics:l1")
    assert _row(md, "| l2 ") and _row(md, "my_metrics:l1")


def test_file_plugin_in_evaluate_table_with_options(plugin_module, mini_root, capsys):
    spec = f"{plugin_module}:make"
    md = _table(capsys, mini_root, "ssim", spec, extra=["--metric-option", f"{spec}.scale=3"])
    assert "ssim" in md and _row(md, "my_metrics.py:make")


def test_entry_point_plugin(plugin_module, tmp_path, monkeypatch, mini_root, capsys):
    dist = tmp_path / "my_metrics_pkg-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-metrics-pkg\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[bapps_toolkit.metrics]\nmy-l1 = my_metrics:l1\n")
    assert "my-l1" in bt.list_metrics()
    desc = bt.describe_metrics()["my-l1"]
    assert "my-metrics-pkg 1.2" in desc and "my_metrics:l1" in desc
    assert main(["metrics"]) == 0 and "my-metrics-pkg 1.2" in capsys.readouterr().out
    md = _table(capsys, mini_root, "l2", "my-l1")
    assert _row(md, "my-l1") and _row(md, "| l2 ")


def test_contract_and_flip(plugin_module):
    x0, x1 = _x()
    m = create_plugin_metric("my_metrics:l1")
    torch.testing.assert_close(m(x0, x1), (x0 - x1).abs().mean(dim=(1, 2, 3)))
    s = bt.create_metric("my_metrics:similarity")
    torch.testing.assert_close(s(x0, x1), m(x0, x1))
    assert "flipped" in s.label
    with pytest.raises(ValueError, match="outside"):
        m(x0 * 3, x1)  # declared range [-1, 1] is validated
    u = bt.create_metric("my_metrics:l1", input_range=(0, 1))
    assert u.input_range == (0.0, 1.0)


def test_options_typed_by_signature(plugin_module):
    spec = "my_metrics:Scaled"
    opts = parse_metric_options([f"{spec}.scale=2.5", f"{spec}.squared=yes"], [spec])
    assert opts == {spec: {"scale": 2.5, "squared": True}}
    x0, x1 = _x()
    m = create_plugin_metric(spec, **opts[spec])
    torch.testing.assert_close(m(x0, x1), 2.5 * ((x0 - x1) ** 2).mean(dim=(1, 2, 3)))
    with pytest.raises(PluginError, match="expected float, got 'big'"):
        parse_metric_options([f"{spec}.scale=big"], [spec])
    with pytest.raises(PluginError, match="do not fit"):
        create_plugin_metric(spec, nope=1)
    with pytest.raises(PluginError, match="expected NAME.key=value"):
        parse_metric_options(["scale2"], [spec])
    with pytest.raises(PluginError, match="not one of the metrics"):
        parse_metric_options(["other:x.scale=1"], [spec])


def test_error_import_fails_with_its_own_message(tmp_path):
    with pytest.raises(PluginError, match=r"no_such_pkg_xyz:f.*ModuleNotFoundError.*No module named 'no_such_pkg_xyz'"):
        create_plugin_metric("no_such_pkg_xyz:f")
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('plugin exploded here')\n")
    with pytest.raises(PluginError, match="plugin exploded here"):
        create_plugin_metric(f"{bad}:f")
    with pytest.raises(PluginError, match="does not exist"):
        create_plugin_metric(f"{tmp_path / 'absent.py'}:f")


def test_error_missing_attribute(plugin_module):
    with pytest.raises(PluginError, match="'my_metrics:nope'.*has no attribute 'nope'"):
        create_plugin_metric("my_metrics:nope")


def test_error_not_a_metric(plugin_module):
    with pytest.raises(PluginError, match="'my_metrics:NOT_A_METRIC' is a int, not a metric"):
        create_plugin_metric("my_metrics:NOT_A_METRIC")


def test_error_wrong_shape(plugin_module, mini_root):
    x0, x1 = _x()
    m = create_plugin_metric("my_metrics:mean_only")
    with pytest.raises(PluginError, match=r"my_metrics:mean_only.*returned shape \(\) for a batch of 3"):
        m(x0, x1)
    with pytest.raises(PluginError, match="mean_only"):
        bt.evaluate(mini_root, ["my_metrics:mean_only"], n_boot=5, progress=False, datasets=["val/cnn"])


def test_registry_names_unchanged():
    assert not plugins.is_plugin_spec("lpips-alex")
    with pytest.raises(ValueError, match="unknown metric"):
        bt.create_metric("not-a-metric")
