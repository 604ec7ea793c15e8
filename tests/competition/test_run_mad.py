"""run_mad / ``bapps mad``: the written set, the manifest, resuming, the start and reference
options, plugins, random backbones (UNCALIBRATED everywhere) and the grid figure."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.cli.main import main
from bapps_toolkit.competition import MadConfig, read_manifest, run_mad
from bapps_toolkit.competition.output import pixel_digest
from bapps_toolkit.data.images import read_rgb
from bapps_toolkit.errors import DataError, WeightsError
from bapps_toolkit.judge import read_items

FAST = dict(size=32, limit=2, max_steps=6)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mad") / "l2-ssim"
    return run_mad(MadConfig("l2", "ssim", out=str(out), grid=str(out / "grid.png"), **FAST)), out


def test_the_set_is_bapps_layout_and_the_judge_reads_it_as_is(small_run):
    run, out = small_run
    key = "2afc/val/mad-l2-ssim"
    assert sorted(p.name for p in (out / key / "p0").iterdir()) == ["000000.png", "000001.png", "000002.png",
                                                                    "000003.png"]
    items = read_items(out)
    assert {(it.key, it.stem) for it in items} == {(key, f"{i:06d}") for i in range(4)}
    assert (out / "competition.csv").read_text().startswith("key,stem,kind,source,held,pushed")


def test_the_manifest_says_what_each_item_is_and_matches_the_images(small_run):
    run, out = small_run
    man = read_manifest(out / "competition.json")
    assert [(it.held, it.pushed) for it in man.items] == [("l2", "ssim"), ("ssim", "l2")] * 2
    assert [it.source for it in man.items] == ["astronaut", "astronaut", "chelsea", "chelsea"]
    for it in man.items:
        assert it.max_drift <= 0.01  # held metric within 1 % on the saved 8-bit images
        assert it.pushed_span > 1.0 and len(it.steps) == 2 and len(it.converged) == 2
        lo_side = it.pushed_prefers
        assert it.values[it.pushed][0 if lo_side == "p0" else 1] == min(it.values[it.pushed])
        for role in ("ref", "p0", "p1"):
            assert pixel_digest(read_rgb(out / it.key / role / f"{it.stem}.png")) == it.digests[role]
    assert man.settings["metric_a"] == "l2" and man.kind == "mad" and not man.uncalibrated


def test_values_in_the_manifest_are_the_metrics_on_the_saved_images(small_run):
    import torch

    from bapps_toolkit.competition.metricspec import build_metric

    run, out = small_run
    it = read_manifest(out).items[1]
    imgs = {r: torch.from_numpy(read_rgb(out / it.key / r / f"{it.stem}.png")).permute(2, 0, 1)[None].float() / 255
            for r in ("ref", "p0", "p1")}
    for name in ("l2", "ssim"):
        m = build_metric(name)
        got = (float(m(imgs["ref"], imgs["p0"])), float(m(imgs["ref"], imgs["p1"])))
        assert got == pytest.approx(it.values[name], rel=1e-5)


def test_a_rerun_resumes_and_other_settings_are_refused(small_run, tmp_path):
    import shutil

    run, out = small_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / ".competition" / "items" / "000003.json").unlink()  # as if killed before its record
    again = run_mad(MadConfig("l2", "ssim", out=str(copy), **FAST))
    assert again.made == 1 and len(again.manifest.items) == 4
    old, new = run.manifest.items, again.manifest.items
    assert [it.digests for it in new[:3]] == [it.digests for it in old[:3]]  # finished items kept as they were
    # the redone item ran in a batch of its own: the same seeded start, sides and iteration, but float
    # rounding differs from the two-reference batch, so its figures agree closely, not bit for bit
    assert new[3].source == old[3].source and new[3].pushed_prefers == old[3].pushed_prefers
    assert new[3].max_drift <= 0.01
    assert new[3].values["l2"] == pytest.approx(old[3].values["l2"], rel=0.05)
    with pytest.raises(ValueError, match="other settings.*noise_mse"):
        run_mad(MadConfig("l2", "ssim", out=str(copy), noise_mse=64.0, **FAST))


def test_the_same_settings_give_the_same_images(small_run, tmp_path):
    run, _ = small_run
    again = run_mad(MadConfig("l2", "ssim", out=str(tmp_path / "again"), **FAST))
    assert [it.digests for it in again.manifest.items] == [it.digests for it in run.manifest.items]


def test_the_grid_figure_is_written(small_run):
    run, out = small_run
    with Image.open(out / "grid.png") as im:
        assert im.size[0] > 600 and im.size[1] > 200


def test_user_references_and_start_images(tmp_path):
    rng = np.random.default_rng(0)
    refs, starts = tmp_path / "refs", tmp_path / "starts"
    refs.mkdir()
    starts.mkdir()
    for name in ("a", "b"):
        img = rng.integers(40, 200, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(img).save(refs / f"{name}.png")
        noisy = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(starts / f"{name}.png")
    run = run_mad(MadConfig("l2", "ssim", out=str(tmp_path / "out"), references=str(refs), start=str(starts),
                            size=32, max_steps=4))
    assert [it.source for it in run.manifest.items] == ["a", "a", "b", "b"]
    Image.fromarray(read_rgb(refs / "a.png")).save(starts / "b.png")  # b's start is now another image
    (starts / "a.png").unlink()
    with pytest.raises(DataError, match="no image for reference"):
        run_mad(MadConfig("l2", "ssim", out=str(tmp_path / "o2"), references=str(refs), start=str(starts), size=32))


def test_a_plugin_metric_competes(tmp_path):
    plugin = tmp_path / "myplugin.py"
    plugin.write_text(textwrap.dedent("""
        def mean_abs(x0, x1):
            return (x0 - x1).abs().flatten(1).mean(1)
        mean_abs.input_range = (0.0, 1.0)
    """))
    spec = f"{plugin}:mean_abs"
    run = run_mad(MadConfig("l2", spec, out=str(tmp_path / "out"), category="mad-plugin", **FAST))
    assert {it.pushed for it in run.manifest.items} == {"l2", spec}
    assert all(it.max_drift <= 0.01 for it in run.manifest.items)


def test_random_backbone_is_uncalibrated_in_every_output_and_missing_weights_fail(tmp_path, capsys):
    out = tmp_path / "lp"
    rc = main(["mad", "ssim", "lpips-alex", "--backbone-weights", "alex=random", "--out", str(out), "--size", "32",
               "--limit", "1", "--steps", "3", "--grid", str(out / "grid.png")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "UNCALIBRATED" in err
    man = read_manifest(out)
    assert any("UNCALIBRATED" in lab for lab in man.uncalibrated)
    assert "UNCALIBRATED" in (out / "competition.csv").read_text()
    assert any("UNCALIBRATED" in n for n in json.loads((out / "competition.json").read_text())["notes"])
    with pytest.raises(WeightsError):
        run_mad(MadConfig("ssim", "lpips-alex", out=str(tmp_path / "none"), **FAST))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["mad", "l2", "l2", "--out", str(tmp_path / "x")]) == 2
    assert "two different metrics" in capsys.readouterr().err
    assert main(["mad", "l2", "nosuchmetric", "--out", str(tmp_path / "x")]) == 2
    assert "unknown metric" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["mad", "l2", "ssim", "--out", str(tmp_path / "x"), "--noise-mse", "0"])
    assert "argument --noise-mse: must lie in" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written before the inputs are checked
