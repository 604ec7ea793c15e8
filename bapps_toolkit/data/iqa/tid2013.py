"""TID2013 (Ponomarenko et al., Signal Processing: Image Communication 2015).

25 references × 24 distortion types × 5 levels = 3,000 BMP images (512×384); MOS in [0, 9],
**higher = better**. Layout::

    reference_images/I01.BMP ... I24.BMP, i25.bmp       (note the lower-case i25.bmp)
    distorted_images/i01_01_1.bmp ...                   (ref_type_level; some start with 'I')
    mos_with_names.txt                                  ("MOS name" per line, no header)

Every name is resolved case-insensitively: the archive mixes ``I``/``i`` and ``.BMP``/``.bmp``
(which files carry a capital ``I`` is unconfirmed ⚠, so no case is assumed). ``mos_std.txt`` is
read when present (one value per line, aligned with ``mos_with_names.txt``) but not required.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..._io import PathLike
from ...errors import DataError
from ..cells import parse_finite
from .base import CaseResolver, CorrelationSet, is_synthetic, read_lines
from .defaults import CorrelationBenchmark
from .registry import Remote, register_benchmark

NAME = "tid2013"
SIGNATURE = ("mos_with_names.txt", "distorted_images", "reference_images")
_DIST = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)


def load(root: PathLike) -> CorrelationSet:
    """Load TID2013 from the folder ``root`` (layout in the module docstring).

    Raises:
        DataError: a file or folder is missing or a label is malformed, naming it.
    """
    r = CaseResolver(root, NAME)
    labels = r.need("mos_with_names.txt")
    r.need_dir("distorted_images")
    r.need_dir("reference_images")
    dist, ref, ref_id, score, types, levels = [], [], [], [], [], []
    for k, line in enumerate(read_lines(labels, NAME), 1):
        where = f"{labels} line {k}"
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{where}: expected 'MOS name', got {line!r}")
        m = _DIST.match(parts[1])
        if not m:
            raise DataError(f"{where}: {parts[1]!r} is not a name like i01_01_1.bmp")
        rid = f"I{m.group(1)}"
        score.append(parse_finite(parts[0], where))
        dist.append(r.need("distorted_images", parts[1], what="distorted image"))
        ref.append(r.need("reference_images", f"{rid}.BMP", what="reference image"))
        ref_id.append(rid)
        types.append(m.group(2))
        levels.append(int(m.group(3)))
    return CorrelationSet(NAME, r.root, dist, ref, ref_id, np.array(score), types, np.array(levels),
                          higher_is_better=True, score_name="MOS (mos_with_names.txt)",
                          synthetic=is_synthetic(r.root)).check()


@register_benchmark
class TID2013Benchmark(CorrelationBenchmark):
    """TID2013 in the benchmark registry (:mod:`.registry`)."""

    name = NAME
    title = "TID2013"
    description = "3,000 distorted images of 25 references, MOS (higher = better)"
    citation = "Ponomarenko et al., Image database TID2013, Signal Processing: Image Communication 2015"
    signature = SIGNATURE
    nested: tuple[str, ...] = ()
    sources: tuple[Remote, ...] = (Remote("http://www.ponomarenko.info/tid2013/tid2013.rar", "tid2013.rar", False),)
    manual = ""
    after_download = ("TID2013 is a .rar archive, which this toolkit does not unpack (no well-kept pure-Python "
                      "extractor). Unpack {dest}/tid2013.rar with `bsdtar -xf` (Debian package libarchive-tools) or "
                      "`unar` into {dest}/ so that it holds reference_images/ distorted_images/ mos_with_names.txt.")

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet:
        """Read the set (:func:`load`)."""
        return load(root)
