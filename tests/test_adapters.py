"""Adapters piq:/pyiqa:/torchmetrics: against stand-ins of the libraries (``adapter_stubs``) that
return the outputs recorded with the real libraries (``reference/adapters.npz``) for the recorded
inputs: per-item values, direction and its label, input ranges, argument order, options, the
errors (missing library, unknown name, weights that cannot be downloaded), ``bapps metrics`` and
``bapps evaluate``. The real libraries: ``test_adapters_live.py``."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import bapps_toolkit as bt
from bapps_toolkit.cli.main import main
from bapps_toolkit.metrics.adapters import AdapterError, WeightsUnavailableError
from bapps_toolkit.metrics.plugins import parse_metric_options

try:
    import adapter_stubs as stubs
except ImportError:  # pragma: no cover - run from the repository root as a package
    from tests import adapter_stubs as stubs

REF, GROUPS = stubs.REF, stubs.GROUPS

#: adapter name -> (recorded key, how the similarity is flipped; None = already a distance)
PIQ = {"ssim": ("piq:ssim", "1-x"), "ms_ssim": ("piq:multi_scale_ssim", "1-x"), "psnr": ("piq:psnr", "-x"),
       "fsim": ("piq:fsim", "1-x"), "gmsd": ("piq:gmsd", None), "ms_gmsd": ("piq:multi_scale_gmsd", None),
       "vif_p": ("piq:vif_p", "-x"), "haarpsi": ("piq:haarpsi", "1-x"), "mdsi": ("piq:mdsi", None),
       "srsim": ("piq:srsim", "1-x"), "dss": ("piq:dss", "1-x")}
PYIQA = {"psnr": "-x", "ssim": "1-x", "ms_ssim": "1-x", "fsim": "1-x", "gmsd": None, "vif": "-x", "nlpd": None,
         "mad": None}
TM = {"ssim": ("torchmetrics:structural_similarity_index_measure", "1-x"),
      "ms_ssim": ("torchmetrics:multiscale_structural_similarity_index_measure", "1-x"),
      "psnr": ("torchmetrics:peak_signal_noise_ratio", "-x")}
CASES = ([("piq", n, *v) for n, v in PIQ.items()] + [("pyiqa", n, f"pyiqa:{n}", f) for n, f in PYIQA.items()]
         + [("torchmetrics", n, *v) for n, v in TM.items()])


def expected(raw: np.ndarray, flip: str | None) -> np.ndarray:
    return {None: raw, "1-x": 1 - raw, "-x": -raw}[flip]


@pytest.fixture
def all_stubs(monkeypatch):
    stubs.install(monkeypatch)


@pytest.mark.parametrize(("lib", "name", "key", "flip"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_recorded_outputs_become_per_item_distances(all_stubs, lib, name, key, flip):
    """Toolkit inputs in [-1, 1] -> the library's [0, 1], (distorted, reference) order, one value
    per item (a mean would fail the shape check), flipped as the label says."""
    m = bt.create_metric(f"{lib}:{name}")
    if lib == "pyiqa":  # the flag the real pyiqa reported decides the direction
        assert (flip is None) == bool(REF[f"pyiqa:{name}__lower_better"])
    version = stubs.VERSIONS[lib]
    assert m.label == (f"{lib}:{name} ({lib} {version})" if flip is None
                       else f"{lib}:{name} as {flip[:-1]}{name} ({lib} {version})")
    for gi, (ref, dist) in enumerate(GROUPS):
        raw = REF[key][REF["group"] == gi]
        if np.isnan(raw).all():  # the library fails at this size (recorded): so does the adapter
            with pytest.raises(ValueError, match=r"too small|161|Kernel size"):
                m(ref * 2 - 1, dist * 2 - 1)
            continue
        d = m(ref * 2 - 1, dist * 2 - 1)
        assert d.shape == (len(raw),) and d.dtype == torch.float32
        np.testing.assert_allclose(d.double().numpy(), expected(raw, flip), rtol=1e-6, atol=1e-6)
        _, first, second, _ = stubs.CALLS[-1]
        torch.testing.assert_close(first, dist, atol=2e-6, rtol=0)  # library range and order
        torch.testing.assert_close(second, ref, atol=2e-6, rtol=0)


def test_input_range_option_and_fixed_library_arguments(all_stubs):
    ref, dist = GROUPS[0]
    m = bt.create_metric("piq:ssim", input_range=(0, 255))
    np.testing.assert_allclose(m(ref * 255, dist * 255).numpy(), 1 - REF["piq:ssim"][:4], rtol=1e-5, atol=1e-6)
    assert stubs.CALLS[-1][3] == {"data_range": 1.0, "reduction": "none"}
    bt.create_metric("torchmetrics:psnr", input_range=(0, 1))(ref, dist)
    assert stubs.CALLS[-1][3] == {"data_range": 1.0, "reduction": "none", "dim": (1, 2, 3)}
    with pytest.raises(ValueError, match="outside the declared input_range"):
        bt.create_metric("piq:ssim")(ref * 3, dist)  # the toolkit's own range check comes first


def test_round_off_outside_the_range_is_clamped_for_the_library(all_stubs):
    x = torch.rand(2, 3, 32, 32)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = -5e-5, 1 + 5e-5  # inside the toolkit's tolerance, outside [0, 1]
    for spec in ("piq:ssim", "pyiqa:ssim"):  # both libraries reject any value outside [0, 1]
        bt.create_metric(spec, input_range=(0, 1))(x, x.flip(0))
        _, first, second, _ = stubs.CALLS[-1]
        assert float(first.min()) == 0.0 and float(second.max()) == 1.0


def test_library_errors_name_the_metric(all_stubs):
    m = bt.create_metric("pyiqa:ssim", input_range=(0, 1))
    m.spec.library_range = (0.0, 2.0)  # a wrong mapping: pyiqa's own assert must surface, named
    with pytest.raises(ValueError, match=r"'pyiqa:ssim' \(pyiqa 0.1.16\) failed .*AssertionError: Input must be "
                       r"normalized to \[0, 1\]"):
        m(torch.ones(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


def test_gradients_flow_through_piq(all_stubs):
    x0, x1 = torch.rand(2, 3, 32, 32) * 2 - 1, (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    bt.create_metric("piq:ssim")(x0, x1).sum().backward()
    assert x1.grad is not None and bool(x1.grad.abs().sum() > 0)


def test_identical_inputs_are_zero_distance_for_bounded_flips(all_stubs):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for spec in ("piq:ssim", "pyiqa:fsim", "torchmetrics:ssim", "piq:gmsd"):
        torch.testing.assert_close(bt.create_metric(spec)(x, x), torch.zeros(2))


def test_torchmetrics_lpips_per_item_in_symmetric_range(all_stubs, monkeypatch):
    monkeypatch.setattr(stubs.StubLPIPS, "online", True)
    ref, dist = GROUPS[0]
    m = bt.create_metric("torchmetrics:lpips", input_range=(0, 1))
    assert m.label == "torchmetrics:lpips (torchmetrics 1.9.0)"
    d = m(ref, dist)
    calls = [c for c in stubs.CALLS if c[0] == "torchmetrics.lpips"]
    assert len(calls) == 4 and all(c[3] == {"normalize": False} for c in calls)
    for i, (_, first, second, _) in enumerate(calls):  # [-1, 1], one item per call, distorted first
        torch.testing.assert_close(first, dist[i:i + 1] * 2 - 1)
        torch.testing.assert_close(second, ref[i:i + 1] * 2 - 1)
    torch.testing.assert_close(d, 2 * (dist - ref).abs().flatten(1).mean(1))  # on [-1, 1] values
    assert m.library_modules[0].net_type == "alex"
    assert bt.create_metric("torchmetrics:lpips-vgg").library_modules[0].net_type == "vgg"


def test_options_typed_and_forwarded(all_stubs):
    spec = "piq:ssim"
    opts = parse_metric_options([f"{spec}.kernel_size=7", f"{spec}.downsample=false", f"{spec}.k1=0.02"], [spec])
    assert opts == {spec: {"kernel_size": 7, "downsample": False, "k1": 0.02}}
    assert parse_metric_options([f"{spec}.input_range=0,1"], [spec]) == {spec: {"input_range": (0, 1)}}
    x = torch.rand(2, 3, 32, 32)
    bt.create_metric(spec, input_range=(0, 1), **opts[spec])(x, x)
    assert stubs.CALLS[-1][3] == {"data_range": 1.0, "reduction": "none", "kernel_size": 7, "downsample": False,
                                  "k1": 0.02}
    with pytest.raises(AdapterError, match="'torchmetrics:psnr': option reduction is set by the adapter"):
        bt.create_metric("torchmetrics:psnr", reduction="mean")
    with pytest.raises(AdapterError, match="'pyiqa:ssim': option as_loss is set by the adapter"):
        bt.create_metric("pyiqa:ssim", as_loss=True)


@pytest.mark.parametrize("lib", ["piq", "pyiqa", "torchmetrics"])
def test_missing_library_names_pip_install(monkeypatch, lib, mini_root, capsys):
    monkeypatch.setitem(sys.modules, lib, None)  # import fails as when not installed
    with pytest.raises(AdapterError, match=rf"'{lib}:ssim' needs the {lib} library.*pip install {lib}"):
        bt.create_metric(f"{lib}:ssim")
    assert main(["evaluate", str(mini_root), "--metrics", "l2", f"{lib}:ssim", "--no-progress"]) != 0
    assert f"pip install {lib}" in capsys.readouterr().err


def test_unknown_names_list_the_library(all_stubs):
    with pytest.raises(AdapterError, match=r"'piq:dist'.*did you mean piq:dists.*known piq names: .*ms_ssim"):
        bt.create_metric("piq:dist")
    with pytest.raises(AdapterError, match=r"'pyiqa:lpipz'.*did you mean pyiqa:lpips.*known pyiqa names: dists"):
        bt.create_metric("pyiqa:lpipz")
    with pytest.raises(AdapterError, match=r"'pyiqa:niqe'.* no-reference metric"):
        bt.create_metric("pyiqa:niqe")
    with pytest.raises(AdapterError, match=r"'torchmetrics:sim'.*did you mean torchmetrics:ssim"):
        bt.create_metric("torchmetrics:sim")
    with pytest.raises(AdapterError, match="give a piq metric name"):
        bt.create_metric("piq:")
    with pytest.raises(AdapterError, match=r"'piq:ssim' has no option window.*accepts .*kernel_size"):
        bt.create_metric("piq:ssim", window=3)


@pytest.mark.parametrize("spec", list(REF["offline_names"]))
def test_weights_that_cannot_be_downloaded_are_an_error(all_stubs, spec):
    lib = spec.split(":")[0]
    assert REF["offline_types"][list(REF["offline_names"]).index(spec)] == "urllib.error.URLError"
    with pytest.raises(WeightsUnavailableError, match=rf"'{spec}': the weights of {lib}'s .* could not be "
                       r"downloaded or read \(URLError: .*Name or service not known.*No substitute") as info:
        bt.create_metric(spec)
    assert isinstance(info.value, ValueError) and isinstance(info.value, OSError)


def test_missing_dependency_of_the_library_is_named(all_stubs, monkeypatch):
    """torchmetrics 1.9.0's LPIPS without torchvision (seen with the real library next to this torch)."""
    def no_torchvision(self, *args, **kwargs):
        raise ModuleNotFoundError("LPIPS metric requires that torchvision is installed. Either install as "
                                  "`pip install torchmetrics[image]` or `pip install torchvision`.")

    monkeypatch.setattr(stubs.StubLPIPS, "__init__", no_torchvision)
    with pytest.raises(AdapterError, match=r"'torchmetrics:lpips': torchmetrics's LPIPS \(alex\) needs a package "
                       r"that is not installed.*requires that torchvision is installed"):
        bt.create_metric("torchmetrics:lpips")


def test_bapps_metrics_lists_each_library(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyiqa", None)
    monkeypatch.setitem(sys.modules, "torchmetrics", None)
    stubs.install(monkeypatch, "piq")
    assert main(["metrics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    piq_line = next(line for line in lines if line.startswith("piq:<name>"))
    assert "piq 0.8.0" in piq_line and "dists" in piq_line and "ms_ssim" in piq_line
    assert any(line.startswith("pyiqa:<name>") and line.endswith("not installed (pip install pyiqa)") for line in lines)
    assert any(line.startswith("psnr ") for line in lines)  # built-ins still listed
    assert "piq:<name>" in bt.describe_metrics() and "piq:ssim" not in bt.list_metrics()


def _row(md: str, text: str) -> str:
    rows = [line for line in md.splitlines() if line.startswith("|") and text in line]
    assert rows, f"{text!r} not in table:\n{md}"
    return rows[0]


def test_evaluate_table_next_to_builtins(all_stubs, mini_root, capsys, tmp_path):
    out = tmp_path / "res.csv"
    rc = main(["evaluate", str(mini_root), "--metrics", "ssim", "piq:ssim", "pyiqa:nlpd", "torchmetrics:psnr",
               "--n-boot", "10", "--no-progress", "--datasets", "val/cnn", "--out", str(out)])
    assert rc == 0
    md = capsys.readouterr().out
    assert _row(md, "| ssim ")
    _row(md, "piq:ssim as 1-ssim (piq 0.8.0)")
    _row(md, "pyiqa:nlpd (pyiqa 0.1.16)")
    _row(md, "torchmetrics:psnr as -psnr (torchmetrics 1.9.0)")
    labels = set(__import__("pandas").read_csv(out)["label"])
    assert "piq:ssim as 1-ssim (piq 0.8.0)" in labels


def test_same_ranking_as_builtin_for_a_flipped_similarity(all_stubs, mini_root):
    """-psnr ranks pairs like the built-in psnr distance, so the 2AFC score is the same."""
    res = bt.evaluate(mini_root, ["psnr", "piq:psnr"], n_boot=5, progress=False, datasets=["val/cnn"])
    table = res.table if hasattr(res, "table") else res
    scores = table.groupby("metric")["score"].first()
    assert scores["psnr"] == pytest.approx(scores["piq:psnr"])


def test_score_command_takes_adapter_names(all_stubs, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        for name in ("x.png", "y.png"):
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / d / name)
    out = tmp_path / "scores.csv"
    assert main(["score", "--dir0", str(tmp_path / "a"), "--dir1", str(tmp_path / "b"), "--metric", "pyiqa:ssim",
                 "--out", str(out)]) == 0
    table = __import__("pandas").read_csv(out)
    assert set(table["metric"]) == {"pyiqa:ssim as 1-ssim (pyiqa 0.1.16)"}
    assert main(["score", str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"), "--metric", "piq:gmsd"]) == 0
    printed = float(capsys.readouterr().out.split()[0])
    _, first, second, _ = stubs.CALLS[-1]  # distorted (IMG1) first, both in [0, 1]
    img1 = np.asarray(Image.open(tmp_path / "b" / "x.png"), dtype=np.float32).transpose(2, 0, 1) / 255
    torch.testing.assert_close(first[0], torch.from_numpy(img1), atol=1e-6, rtol=0)
    assert printed == pytest.approx(float((first - second).abs().mean()), rel=1e-5)


@pytest.mark.parametrize("spec", ["piq:ssim", "piq:gmsd", "pyiqa:psnr", "torchmetrics:ms_ssim"])
def test_metric_contract_for_adapters(all_stubs, spec):
    """The parts of tests/test_metric_contract.py that apply (adapters are not registry names)."""
    m = bt.create_metric(spec)
    assert isinstance(m, bt.Metric) and not m.training and m.calibrated
    size = max(m.min_size, 16)
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.rand(1, 3, size, size, generator=g) * 2 - 1, torch.rand(1, 3, size, size, generator=g) * 2 - 1
    d = m(x0, x1)
    assert d.shape == (1,) and torch.isfinite(d).all()
    torch.testing.assert_close(m.train()(x0, x1), d)
    with pytest.raises(ValueError, match=rf"{spec}: x0 must be 4-D"):
        m(x0[0], x1[0])
    with pytest.raises(ValueError, match=rf"{spec}: expected 1 or 3 channels"):
        m(x0[:, :2], x1[:, :2])
    with pytest.raises(ValueError, match=rf"{spec}: x0 and x1 must have the same shape"):
        m(x0, x1[..., 1:])
