"""`bapps demo` end to end on the mini set, and its weights fallback rule."""
import shutil

import pandas as pd
import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.errors import WeightsError
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
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "SYNTHETIC DATA" in (out / "results.md").read_text()
