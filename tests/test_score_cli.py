"""`bapps score`, `bapps evaluate`, `bapps metrics` end to end (exit codes, files, messages)."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bapps_toolkit.cli.main import main


def _img(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _l2(a, b):
    return float(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2))


def _save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    arrs = {f"im{i}.png": _img(rng, 40, 48) for i in range(4)}
    for name, a in arrs.items():
        _save(tmp_path / "all" / name, a)
        _save(tmp_path / "d0" / name, a)
        _save(tmp_path / "d1" / name, np.clip(a.astype(int) + 9, 0, 255).astype(np.uint8))
    return tmp_path, arrs


def test_score_two_images(images, capsys):
    root, arrs = images
    rc = main(["score", str(root / "d0/im1.png"), str(root / "d1/im1.png"), "--metric", "l2"])
    assert rc == 0
    expected = _l2(arrs["im1.png"], np.clip(arrs["im1.png"].astype(int) + 9, 0, 255).astype(np.uint8))
    assert float(capsys.readouterr().out.split()[0]) == pytest.approx(expected, rel=1e-5)


def test_score_grayscale_and_16bit(tmp_path, capsys):
    rng = np.random.default_rng(1)
    g = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    _save(tmp_path / "g.png", g, "L")
    _save(tmp_path / "rgb.png", np.repeat(g[..., None], 3, axis=2))
    Image.fromarray(g.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit grayscale
    assert main(["score", str(tmp_path / "g.png"), str(tmp_path / "rgb.png"), "--metric", "l2"]) == 0
    assert main(["score", str(tmp_path / "g16.png"), str(tmp_path / "rgb.png"), "--metric", "l2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [float(line.split()[0]) for line in out] == [0.0, 0.0]
    assert all(line.endswith("l2: mean squared error of RGB in [0, 1], lower = more similar") for line in out)


def test_score_two_sizes_need_resize_first(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a, b = _img(rng, 30, 40), _img(rng, 60, 80)
    _save(tmp_path / "a.png", a)
    _save(tmp_path / "b.png", b)
    assert main(["score", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--metric", "l2"]) == 2
    err = capsys.readouterr().err
    assert "a.png is 40x30" in err and "b.png is 80x60" in err and "--resize first" in err
    assert main(["score", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--metric", "l2", "--resize", "first"]) == 0
    cap = capsys.readouterr()
    b_small = np.asarray(Image.fromarray(b).resize((40, 30), Image.BILINEAR))
    assert float(cap.out.split()[0]) == pytest.approx(_l2(a, b_small), rel=1e-5)
    assert "resized" in cap.err


def test_score_dirs_and_all_pairs(images, capsys):
    root, arrs = images
    out = root / "dists.csv"
    assert main(["score", "--dir0", str(root / "d0"), "--dir1", str(root / "d1"), "--metric", "l2",
                 "--out", str(out), "--batch-size", "3"]) == 0
    f = pd.read_csv(out)
    assert list(f.columns) == ["file", "distance", "unit", "direction", "resized", "metric"]
    assert set(f.direction) == {"lower = more similar"} and set(f.unit) == {"mean squared error of RGB in [0, 1]"}
    assert list(f.file) == sorted(arrs)
    for r in f.itertuples():
        a = arrs[r.file]
        assert r.distance == pytest.approx(_l2(a, np.clip(a.astype(int) + 9, 0, 255).astype(np.uint8)), rel=1e-6)
    out2 = root / "pairs.csv"
    assert main(["score", "--dir", str(root / "all"), "--all-pairs", "--metric", "l2", "--out", str(out2)]) == 0
    g = pd.read_csv(out2)
    assert len(g) == 6 and list(g.columns) == ["file0", "file1", "distance", "unit", "direction", "resized", "metric"]
    for r in g.itertuples():
        assert r.distance == pytest.approx(_l2(arrs[r.file0], arrs[r.file1]), rel=1e-6)
    # without --out the CSV goes to stdout
    capsys.readouterr()
    assert main(["score", "--dir", str(root / "all"), "--all-pairs", "--metric", "l2"]) == 0
    assert capsys.readouterr().out.startswith("file0,file1,distance,unit,direction,resized,metric")


def test_all_pairs_lpips_feature_cache_matches_direct(images, capsys):
    import torch

    from bapps_toolkit.data import to_model_input
    from bapps_toolkit.metrics import create_metric
    from bapps_toolkit.scoring.pairs import score_all_pairs

    root, arrs = images
    with pytest.warns(UserWarning):
        m = create_metric("lpips-alex", backbone_weights="random")
    files = sorted((root / "all").iterdir())
    pairs = [(files[i], files[j]) for i in range(4) for j in range(i + 1, 4)]
    got = score_all_pairs(root / "all", metric=m, device="cpu", progress=False).distances
    with torch.no_grad():
        want = [float(m(to_model_input(np.array(Image.open(a).convert("RGB"))[None]),
                        to_model_input(np.array(Image.open(b).convert("RGB"))[None]))) for a, b in pairs]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    with pytest.warns(UserWarning):
        assert main(["score", "--dir", str(root / "all"), "--all-pairs", "--backbone-weights", "alex=random"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(lines) == 6 and all("UNCALIBRATED" in line for line in lines)


def test_score_bad_inputs(images, capsys):
    root, _ = images
    (root / "d1" / "im2.png").unlink()
    (root / "d0" / "extra.png").write_bytes((root / "d0" / "im0.png").read_bytes())
    assert main(["score", "--dir0", str(root / "d0"), "--dir1", str(root / "d1"), "--metric", "l2"]) == 2
    err = capsys.readouterr().err
    assert "missing from" in err and "im2.png" in err and "extra.png" in err
    bad = root / "all" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    assert main(["score", "--dir", str(root / "all"), "--all-pairs", "--metric", "l2"]) == 2
    assert "broken.png" in capsys.readouterr().err
    assert main(["score", str(bad), str(root / "all/im0.png"), "--metric", "l2"]) == 2
    assert "broken.png" in capsys.readouterr().err
    assert main(["score", str(root / "nope.png"), str(root / "all/im0.png"), "--metric", "l2"]) == 2
    assert "nope.png" in capsys.readouterr().err
    assert main(["score", str(root / "all/im0.png"), str(root / "all/im1.png"), "--metric", "nope"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
    assert main(["score", "--dir", str(root / "all")]) == 2
    assert main(["score", str(root / "all/im0.png")]) == 2
    assert main(["score", "--dir0", str(root / "d0"), "--dir1", str(root / "nowhere"), "--metric", "l2"]) == 2
    assert "nowhere" in capsys.readouterr().err
    small = _save(root / "tiny.png", np.zeros((8, 8, 3), np.uint8))  # SSIM needs >= 11
    assert main(["score", str(small), str(small), "--metric", "ssim"]) == 2
    assert "tiny.png" in capsys.readouterr().err


def test_metrics_command(capsys):
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    from bapps_toolkit.metrics import describe_metrics

    for name, text in describe_metrics().items():
        assert any(line.startswith(name + " ") and line.endswith(text) for line in out.splitlines())
    assert main(["metrics", "--names-only"]) == 0
    assert capsys.readouterr().out.split() == sorted(describe_metrics())


def test_evaluate_cli_end_to_end(mini_h5, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "res" / "results.csv"
    args = ["evaluate", str(mini_h5), "--metrics", "l2", "psnr", "--datasets", "val/cnn", "val/traditional",
            "--out", str(out), "--n-boot", "100", "--markdown", str(tmp_path / "t.md"),
            "--latex", str(tmp_path / "t.tex"), "--json", str(tmp_path / "t.json"),
            "--plot", str(tmp_path / "f.png"), "--save-distances", str(tmp_path / "d.csv"), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    t = pd.read_csv(out)
    assert set(t.metric) == {"l2", "psnr", "human"}
    assert (t.n > 0).all() and t.synthetic.all()
    md = (tmp_path / "t.md").read_text()
    assert md == printed.rstrip("\n") + "\n" or md.strip() in printed
    assert "SYNTHETIC DATA" in md and "| l2 |" in md and "2AFC mean" in md
    assert "SYNTHETIC DATA" in (tmp_path / "t.tex").read_text()
    assert json.loads((tmp_path / "t.json").read_text())["synthetic"] is True
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(tmp_path / "d.csv")) == 2 * (300 + 300 + 250 + 250)


def test_evaluate_cli_bad_inputs(mini_h5, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["evaluate", str(tmp_path / "missing.h5"), "--metrics", "l2", "--out", str(out)]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert main(["evaluate", str(mini_h5), "--metrics", "nope", "--out", str(out)]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
    assert main(["evaluate", str(mini_h5), "--out", str(out)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert main(["evaluate", str(mini_h5), "--metrics", "l2", "--plot", str(tmp_path / "f.pdf")]) == 2
    assert main(["evaluate", str(mini_h5), "--metrics", "l2", "--backbone-weights", "alex"]) == 2
    assert "NET=PATH" in capsys.readouterr().err
    assert main(["evaluate", str(mini_h5), "--metrics", "lpips-alex", "--backbone-weights",
                 f"alex={tmp_path / 'none.pth'}"]) == 2
    assert "none.pth" in capsys.readouterr().err
    assert main(["evaluate", str(mini_h5), "--metrics", "l2", "--datasets", "val/nope", "--out", str(out)]) == 2
    assert "val/nope" in capsys.readouterr().err
    assert main(["evaluate", str(mini_h5), "--checkpoint", str(tmp_path / "run"), "--out", str(out)]) == 2
    assert not out.exists()
