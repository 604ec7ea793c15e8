"""`bapps demo` end to end on the mini set, and its weights fallback rule."""
import shutil

import pandas as pd
import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.errors import BappsError, WeightsError
from bapps_toolkit.report import demo


def test_backbone_fallback_only_on_weights_error(monkeypatch):
    import bapps_toolkit.metrics.hub as hub

    def missing(net, **kw):
        raise WeightsError("not cached and no network")

    monkeypatch.setattr(hub, "backbone_weights_file", missing)
    bw, note = demo.lpips_backbone("alex")
    assert bw == "random" and "UNCALIBRATED" in note

    def broken(net, **kw):
        raise RuntimeError("a bug, not missing weights")

    monkeypatch.setattr(hub, "backbone_weights_file", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        demo.lpips_backbone("alex")

    monkeypatch.setattr(hub, "backbone_weights_file", lambda net, **kw: f"/cache/{net}.pth")
    assert demo.lpips_backbone("alex") == ("/cache/alex.pth", "ImageNet alex weights: /cache/alex.pth")


@pytest.mark.slow
def test_demo_end_to_end(mini_root, tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    shutil.copytree(mini_root, out / "mini")  # same seed: the demo reuses it instead of rebuilding
    assert main(["demo", "--out", str(out), "--n-boot", "200"]) == 0
    cap = capsys.readouterr()
    lines = (cap.out + cap.err).splitlines()
    assert any(line.startswith("| metric | 2AFC trad | 2AFC cnn") for line in lines)
    res = pd.read_csv(out / "results.csv")
    expected = {m for m in demo.DEMO_METRICS}
    assert expected <= set(res.metric)
    assert "lpips-alex" in set(res.metric) and "human" in set(res.metric)
    assert "lpips-alex[alex-lin/latest.safetensors]" in set(res.metric)  # the trained checkpoint
    assert set(res["mode"]) == {"2afc", "jnd"} and set(res.split) == {"val"}
    assert res.synthetic.all()
    lp = res[res.metric.str.startswith("lpips")]
    if not lp.calibrated.all():  # no cached ImageNet weights: random backbone, labelled everywhere
        assert lp.label.str.contains("UNCALIBRATED").all()
        for line in lines:
            if "lpips" in line.lower():
                assert "UNCALIBRATED" in line, line
    for line in lines:  # each line says it once (the trained label used to say "random backbone" twice)
        assert line.count("UNCALIBRATED") <= 1 and line.count("random backbone") <= 1, line
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "SYNTHETIC DATA" in (out / "results.md").read_text()


# ------------------------------------------------------------------------------------------
# --backbone-weights, and each line saying UNCALIBRATED / "random backbone" once (issue 10)

def test_merged_notes_say_random_backbone_once():
    from bapps_toolkit.metrics.provenance import merge_notes

    got = merge_notes("trained on SYNTHETIC data, not human judgments; random backbone", "random backbone (seed 5)")
    assert got == "trained on SYNTHETIC data, not human judgments; random backbone (seed 5)"
    assert merge_notes("random backbone", "", "random backbone") == "random backbone"


@pytest.fixture
def small_demo(mini_root, mini_h5, tmp_path, monkeypatch):
    """A demo folder holding the mini set and its packed file; l2 and lpips-alex on 2afc/val/cnn only."""
    import bapps_toolkit.metrics.hub as hub

    out = tmp_path / "demo"
    out.mkdir()
    shutil.copytree(mini_root, out / "mini")
    shutil.copyfile(mini_h5, out / "mini.h5")
    (out / "mini.h5.seed").write_text("0\n")
    monkeypatch.setattr(demo, "DEMO_METRICS", ("l2",))
    monkeypatch.setattr(demo, "DEMO_DATASETS", ("2afc/val/cnn",))

    def never(net, **kw):
        raise AssertionError("given backbone weights: the hub must not be consulted")

    monkeypatch.setattr(hub, "backbone_weights_file", never)
    return out


def test_demo_alex_random_labels_every_line_once(small_demo, capsys):
    assert main(["demo", "--out", str(small_demo), "--n-boot", "10", "--no-progress",
                 "--backbone-weights", "alex=random"]) == 0
    cap = capsys.readouterr()
    lines = (cap.out + cap.err).splitlines()
    assert any("alex=random given" in line for line in lines)
    for line in lines:
        assert line.count("UNCALIBRATED") <= 1 and line.count("random backbone") <= 1, line
        if "lpips-alex" in line and not line.startswith("[demo] evaluating"):
            assert "UNCALIBRATED" in line, line
    res = pd.read_csv(small_demo / "results.csv")
    lp = res[res.metric.str.startswith("lpips-alex")]
    assert len(set(lp.metric)) == 2 and not lp.calibrated.any()  # the metric and the trained checkpoint
    assert all(label.count("random backbone") == 1 for label in lp.label)


def test_demo_takes_an_alex_weights_file(small_demo, capsys, tmp_path):
    import torch

    from bapps_toolkit.evaluate import run_evaluation
    from bapps_toolkit.metrics.backbones import build_backbone

    weights = tmp_path / "alex.pth"  # torchvision layout (features.*), as a user's own file
    torch.manual_seed(0)
    torch.save(build_backbone("alex").state_dict(), weights)
    result = demo.run_demo(small_demo, n_boot=10, train_lpips=False, backbone_weights=[f"alex={weights}"])
    assert f"alex backbone weights given: {weights}" in capsys.readouterr().out
    want = run_evaluation(small_demo / "mini.h5", ["lpips-alex"], datasets=["2afc/val/cnn"], n_boot=10,
                          backbone_weights={"alex": str(weights)}, progress=False).table
    got = result.table
    assert got[got.metric == "lpips-alex"].score.tolist() == want[want.metric == "lpips-alex"].score.tolist()
    with pytest.raises(BappsError, match="alex network only; vgg given"):
        demo.run_demo(small_demo, backbone_weights=["vgg=random"])
