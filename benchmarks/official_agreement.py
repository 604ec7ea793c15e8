"""Scores of the default and the official-path L2 / SSIM metrics against the official LPIPS code.

    python benchmarks/official_agreement.py [--root bapps_demo/mini]

Compares, set by set on the mini set's val sets, the 2AFC score / JND mAP of ``l2-lab``,
``ssim-lab`` (the toolkit's defaults), their ``*-official`` variants and ``l2-rgb-official`` /
``ssim-rgb-official`` with the official code's numbers recorded in
``tests/reference/official.npz`` (``tests/reference/make_official_reference.py``). The mini set
is synthetic: the figures show agreement with the official code, not with people.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bapps_toolkit import create_metric
from bapps_toolkit.data import load_2afc, load_jnd, make_mini, to_model_input
from bapps_toolkit.scores import jnd_map, score_2afc

REF = Path(__file__).resolve().parents[1] / "tests" / "reference" / "official.npz"
ROWS = [("l2_lab", "l2-lab"), ("l2_lab", "l2-lab-official"), ("ssim_lab", "ssim-lab"),
        ("ssim_lab", "ssim-lab-official"), ("l2_rgb", "l2-rgb-official"), ("ssim_rgb", "ssim-rgb-official")]


def _score(metric, s) -> float:
    with torch.no_grad():
        if s.key.startswith("2afc"):
            d0, d1 = metric.pair_distances(*(to_model_input(t) for t in (s.ref, s.p0, s.p1)))
            return float(score_2afc(d0.double().numpy(), d1.double().numpy(), s.judge))
        d = metric(to_model_input(s.p0), to_model_input(s.p1))
        return float(jnd_map(d.double().numpy(), s.same))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="bapps_demo/mini", help="mini set folder (built if missing)")
    root = Path(ap.parse_args().root)
    if not (root / "2afc").exists():
        make_mini(root, seed=0)
    sets = load_2afc(root, "val") + load_jnd(root, "val")
    ref = np.load(REF)
    print("SYNTHETIC mini set; official = lpips 0.1.4 recorded numbers; cells: ours - official (pt)")
    print("| metric | " + " | ".join(s.key for s in sets) + " | max |pt| |")
    print("|---" * (len(sets) + 2) + "|")
    for off, name in ROWS:
        m = create_metric(name)
        diffs = [100 * (_score(m, s) - float(ref[f"{s.key.replace('/', '_')}__{off}__f32__score"])) for s in sets]
        print(f"| {name} | " + " | ".join(f"{d:+.2f}" for d in diffs) + f" | {max(abs(d) for d in diffs):.2f} |")


if __name__ == "__main__":
    main()
