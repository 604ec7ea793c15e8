"""CSIQ (Larson & Chandler, Journal of Electronic Imaging 2010).

30 references, 866 distorted PNG images (512×512 ⚠) in six types (contrast: 4 levels, the others
5); DMOS in [0, 1], **higher = worse**. Layout::

    csiq.DMOS.xlsx                      sheet all_by_image: image, dst_idx, dst_type, dst_lev, dmos_std, dmos
    src_imgs/<image>.png
    dst_imgs/<folder>/<image>.<TOKEN>.<lev>.png

``dst_type`` → folder/token: noise → awgn/AWGN, blur → blur/BLUR, contrast → contrast/contrast,
fnoise → fnoise/fnoise, jpeg → jpeg/JPEG, ``jpeg 2000`` → jpeg2000/jpeg2000. Folders and names
are matched case-insensitively (repacks use ``AWGN/``, ``BLUR/``, ``JPEG/``). The header row is
searched for in the first 20 rows of the sheet (its exact row is unconfirmed ⚠). Needs openpyxl
(``pip install 'bapps-toolkit[iqa]'``).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..._io import PathLike
from ...errors import DataError
from ..cells import parse_finite
from .base import CaseResolver, CorrelationSet, is_synthetic
from .defaults import CorrelationBenchmark
from .registry import Remote, register_benchmark

NAME = "csiq"
SIGNATURE = ("csiq.DMOS.xlsx", "dst_imgs")
SHEET = "all_by_image"
TYPES = {"noise": ("awgn", "AWGN"), "blur": ("blur", "BLUR"), "contrast": ("contrast", "contrast"),
         "fnoise": ("fnoise", "fnoise"), "jpeg": ("jpeg", "JPEG"), "jpeg 2000": ("jpeg2000", "jpeg2000")}
_NEEDED = ("image", "dst_type", "dst_lev", "dmos")


def _text(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "" if v is None else str(v).strip()


def read_sheet(path: Path) -> list[dict[str, str]]:
    """Rows of ``all_by_image`` as dicts of stripped text, keyed by the header names."""
    try:
        import openpyxl  # optional dependency (extra "iqa")
    except ImportError:
        raise DataError(f"{NAME}: reading {path} needs openpyxl: pip install 'bapps-toolkit[iqa]'") from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise DataError(f"{NAME}: cannot read {path}: {exc}") from None
    if SHEET not in wb.sheetnames:
        raise DataError(f"{NAME}: {path} has no sheet {SHEET!r} (sheets: {wb.sheetnames})")
    rows = [[_text(v) for v in row] for row in wb[SHEET].iter_rows(values_only=True)]
    wb.close()
    for h, row in enumerate(rows[:20]):
        names = [c.lower() for c in row]
        if all(c in names for c in _NEEDED):
            return [dict(zip(names, r, strict=False)) for r in rows[h + 1:] if any(r)]
    raise DataError(f"{NAME}: {path} sheet {SHEET}: no header row with {', '.join(_NEEDED)}")


def load(root: PathLike) -> CorrelationSet:
    """Load CSIQ from the folder ``root`` (layout in the module docstring).

    Raises:
        DataError: a file or folder is missing or a label is malformed, naming it.
    """
    r = CaseResolver(root, NAME)
    sheet = r.need("csiq.DMOS.xlsx")
    r.need_dir("src_imgs")
    r.need_dir("dst_imgs")
    dist, ref, ref_id, score, types, levels = [], [], [], [], [], []
    for k, row in enumerate(read_sheet(sheet), 1):
        where = f"{sheet} sheet {SHEET} data row {k}"
        kind = row["dst_type"].lower()
        if kind not in TYPES:
            raise DataError(f"{where}: unknown dst_type {row['dst_type']!r} (known: {', '.join(TYPES)})")
        folder, token = TYPES[kind]
        image, lev = row["image"], int(parse_finite(row["dst_lev"], f"{where} dst_lev"))
        dist.append(r.need("dst_imgs", folder, f"{image}.{token}.{lev}.png", what="distorted image"))
        ref.append(r.need("src_imgs", f"{image}.png", what="reference image"))
        ref_id.append(image)
        score.append(parse_finite(row["dmos"], f"{where} dmos"))
        types.append(folder)
        levels.append(lev)
    return CorrelationSet(NAME, r.root, dist, ref, ref_id, np.array(score), types, np.array(levels),
                          higher_is_better=False, score_name="DMOS (csiq.DMOS.xlsx)",
                          synthetic=is_synthetic(r.root)).check()


@register_benchmark
class CSIQBenchmark(CorrelationBenchmark):
    """CSIQ in the benchmark registry (:mod:`.registry`)."""

    name = NAME
    title = "CSIQ"
    description = "866 distorted images of 30 references, DMOS (higher = worse)"
    citation = ("Larson & Chandler, Most apparent distortion: full-reference image quality assessment and "
                "the role of strategy, Journal of Electronic Imaging 2010")
    signature = SIGNATURE
    nested: tuple[str, ...] = ()
    sources: tuple[Remote, ...] = (Remote("https://s2.smu.edu/~eclarson/csiq/csiq.DMOS.xlsx", "csiq.DMOS.xlsx", False),
               Remote("https://s2.smu.edu/~eclarson/csiq/src_imgs.zip", "src_imgs.zip", True),
               Remote("https://s2.smu.edu/~eclarson/csiq/dst_imgs.zip", "dst_imgs.zip", True))
    manual = ""
    after_download = ""

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet:
        """Read the set (:func:`load`)."""
        return load(root)
