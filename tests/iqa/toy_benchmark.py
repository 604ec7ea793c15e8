"""A toy benchmark's source and a folder in its layout, for the plugin tests (not a test module).

The layout: ``toy_scores.csv`` (``ref,dist,mos``) and ``images/`` holding the PNG files it names.
The scores are SYNTHETIC (made from the noise strength), and the folder says so.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from .replicas import NOTE, photos

#: One file adds a data set: this class, registered by ``--benchmark-plugin FILE.py:Toy`` or an entry point.
TOY_SOURCE = '''
from collections.abc import Mapping
from pathlib import Path
import csv

import numpy as np

from bapps_toolkit.data.iqa import CaseResolver, CorrelationBenchmark, CorrelationSet
from bapps_toolkit.data.iqa.base import is_synthetic


class Toy(CorrelationBenchmark):
    name = "NAME"
    title = "Toy"
    description = "a few noisy photos, made-up MOS (higher = better)"
    citation = "none: a test set"
    signature = ("toy_scores.csv", "images")
    manual = "Nothing to download: build {dest} yourself."

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet:
        files = CaseResolver(root, self.name)
        with open(files.need("toy_scores.csv"), newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return CorrelationSet(
            self.name, root,
            dist=[files.need("images", r["dist"]) for r in rows],
            ref=[files.need("images", r["ref"]) for r in rows],
            ref_id=[r["ref"] for r in rows],
            score=np.array([float(r["mos"]) for r in rows]),
            dist_type=["noise"] * len(rows), level=np.full(len(rows), -1),
            higher_is_better=True, score_name="MOS (toy_scores.csv)",
            synthetic=is_synthetic(root)).check()
'''


def toy_source(name: str) -> str:
    """:data:`TOY_SOURCE` with the benchmark named ``name``."""
    return TOY_SOURCE.replace('"NAME"', repr(name))


def build_toy(root: Path, n_refs: int = 3, levels: tuple[float, ...] = (4.0, 15.0, 40.0)) -> Path:
    """A toy set in ``root``: ``n_refs`` photos, one noisy copy per level, MOS falling with the noise."""
    images = root / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, img in enumerate(photos(n_refs, (48, 40))):
        ref = f"ref{i}.png"
        Image.fromarray(img).save(images / ref)
        for k, sigma in enumerate(levels):
            noisy = np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
            dist = f"ref{i}_noise{k}.png"
            Image.fromarray(noisy).save(images / dist)
            rows.append({"ref": ref, "dist": dist, "mos": f"{9 - 2 * k - 0.1 * i:.2f}"})
    with open(root / "toy_scores.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["ref", "dist", "mos"])
        writer.writeheader()
        writer.writerows(rows)
    (root / "SYNTHETIC.txt").write_text(NOTE)
    return root
