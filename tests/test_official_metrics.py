"""The ``*-official`` metrics against the official LPIPS code (``tests/reference/official.npz``,
recorded by ``make_official_reference.py`` with lpips 0.1.4 on the mini set's val sets).

Per-item distances: absolute tolerance 1e-7 for L2 (Lab and RGB) and 5e-6 for DSSIM (the
official DSSIM-Lab runs scikit-image's SSIM on float32 Lab values; ours runs in the input's
dtype). 2AFC decisions (sign of d0 - d1) are equal item by item, so the 2AFC scores and JND mAPs
equal the official ones (to 1e-9, the official code reads the judgments as float32). Every 2AFC
tie of this set is a pixel-identical p0/p1 (d0 == d1 exactly on both sides); a tie that only
float summation order breaks would move a 300-item score by 0.17 pt and is not excluded by the
method in general. The float64 input gives the float32 loader's numbers (``official_float32``).

The mini set is generated (numpy, scipy, Pillow), and a few of its images can come out differently
on another machine or with other library versions (seen: 2 of 300 images of one set). The
reference stores a digest per item; items whose files differ from the recorded ones are left out
of the per-item comparisons (at most 2 % of any set, else the test fails and says how to
re-record), and a set's recorded 2AFC score / mAP is compared only where every item matches.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bapps_toolkit import create_metric
from bapps_toolkit.data import load_2afc, load_jnd, to_model_input
from bapps_toolkit.scores import jnd_map, score_2afc

REF = Path(__file__).resolve().parent / "reference" / "official.npz"
NAMES = {"l2_lab": "l2-lab-official", "ssim_lab": "ssim-lab-official",
         "l2_rgb": "l2-rgb-official", "ssim_rgb": "ssim-rgb-official"}
# float32 means of 12 288 values: a few ulp (ulp(0.5) = 6e-8) of summation-order noise against numpy
TOL = {"l2_lab": 1e-7, "l2_rgb": 3e-7, "ssim_lab": 5e-6, "ssim_rgb": 5e-6}


@pytest.fixture(scope="module")
def recorded(mini_root):
    with np.load(REF) as z:
        ref = {k: z[k] for k in z.files}
    sys.path.insert(0, str(REF.parent))
    from make_official_reference import item_sha256

    sets = load_2afc(mini_root, "val") + load_jnd(mini_root, "val")
    same: dict[str, np.ndarray] = {}
    for s in sets:
        name = s.key.replace("/", "_")
        assert list(s.stems) == [str(v) for v in ref[name + "__stems"]]
        here = item_sha256(Path(mini_root) / s.key, list(s.stems), s.key.split("/")[0])
        same[s.key] = np.asarray(here) == ref[name + "__item_sha256"]
        if same[s.key].mean() < 0.98:
            pytest.fail(f"{s.key}: {int((~same[s.key]).sum())} of {len(here)} items of the mini set built here "
                        f"differ from the ones {REF.name} was recorded on ({', '.join(map(str, ref['versions']))}); "
                        "re-record it with tests/reference/make_official_reference.py (see its docstring)")
    return sets, ref, same


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("metric", sorted(NAMES))
def test_official_metrics_reproduce_the_official_code(recorded, metric, dtype):
    sets, ref, same = recorded
    m = create_metric(NAMES[metric])
    for s in sets:
        key = f"{s.key.replace('/', '_')}__{metric}__f32"
        ok, whole = same[s.key], bool(same[s.key].all())
        with torch.no_grad():
            if s.key.startswith("2afc"):
                r, a, b = (to_model_input(t, dtype=dtype) for t in (s.ref, s.p0, s.p1))
                d0, d1 = (x.double().numpy() for x in m.pair_distances(r, a, b))
                e0, e1 = ref[key + "__d0"], ref[key + "__d1"]
                assert np.abs(d0 - e0)[ok].max() < TOL[metric] and np.abs(d1 - e1)[ok].max() < TOL[metric], s.key
                assert np.array_equal(np.sign(d0 - d1)[ok], np.sign(e0 - e1)[ok]), s.key
                if whole:
                    assert score_2afc(d0, d1, s.judge) == pytest.approx(float(ref[key + "__score"]), abs=1e-9)
            else:
                a, b = (to_model_input(t, dtype=dtype) for t in (s.p0, s.p1))
                d = m(a, b).double().numpy()
                assert np.abs(d - ref[key + "__d"])[ok].max() < TOL[metric], s.key
                if whole:
                    assert jnd_map(d, s.same) == pytest.approx(float(ref[key + "__score"]), abs=1e-9)


def test_ties_of_the_mini_set_are_pixel_identical(recorded):
    sets, ref, same = recorded
    for s in sets:
        if s.key.startswith("2afc"):
            key = f"{s.key.replace('/', '_')}__l2_rgb__f32"
            e0, e1 = ref[key + "__d0"], ref[key + "__d1"]
            equal = np.all(np.asarray(s.p0) == np.asarray(s.p1), axis=(1, 2, 3))
            ok = same[s.key]
            assert np.array_equal((e0 == e1)[ok], equal[ok]), s.key


def test_float64_official_code_differs_and_ours_does_not(recorded):
    """The official code truncates float64 tensors at levels 1..95 (recorded ramp); our
    official path gives the float32 loader's levels 1..63 for both dtypes."""
    ref = recorded[1]
    from bapps_toolkit.metrics.functional import quantize_official

    lv = torch.arange(256, dtype=torch.float64).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    x64 = (lv / 255.0 - 0.5) / 0.5
    x32 = (lv.float() / 255.0 - 0.5) / 0.5
    np.testing.assert_array_equal(quantize_official(x32)[0, 0, 0].numpy(), ref["ramp_f32"])
    np.testing.assert_array_equal(quantize_official(x64)[0, 0, 0].numpy(), ref["ramp_f32"])
    assert not np.array_equal(ref["ramp_f32"], ref["ramp_f64"])


def test_official_names_fix_their_options():
    with pytest.raises(ValueError, match="fixed by the metric name"):
        create_metric("l2-lab-official", official=False)
    assert create_metric("ssim-rgb-official").label == "ssim-rgb-official"
