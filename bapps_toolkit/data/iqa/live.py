"""LIVE Image Quality Assessment Database, Release 2 (Sheikh, Sabir & Bovik, IEEE TIP 2006).

29 references, 779 distorted BMP images in five types; DMOS, **higher = worse**. Layout::

    jp2k/ jpeg/ wn/ gblur/ fastfading/   img<k>.bmp (+ info.txt)
    refimgs/<name>.bmp
    dmos.mat             dmos (1×982), orgs (1×982)
    dmos_realigned.mat   dmos_new, dmos_std, orgs
    refnames_all.mat     refnames_all (1×982 cell of reference names)

Global index ``i`` (1-based) → folder and ``img<i − offset>.bmp`` with jp2k 1–227, jpeg 228–460,
wn 461–634, gblur 635–808, fastfading 809–982. Entries with ``orgs == 1`` are copies of the
references inside the distortion folders (203 of them) and are dropped → 779 images.

The score is chosen explicitly: ``scores="realigned"`` (default; ``dmos_new`` of
``dmos_realigned.mat``, as Sheikh et al. 2006 and DBCNN-style code report) or ``scores="dmos"``
(``dmos.mat``, as pyiqa uses). The set's name carries the choice (``live`` vs ``live-dmos``).
``info.txt`` is not read (its third token and line order are unconfirmed ⚠). Image sizes vary
(typically 768×512 ⚠). LIVE has no levels (``level = -1``).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..._io import PathLike
from ...errors import DataError
from .base import CaseResolver, CorrelationSet, is_synthetic
from .defaults import CorrelationBenchmark
from .registry import Remote, register_benchmark

NAME = "live"
SIGNATURE = ("refnames_all.mat", "refimgs")
FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
TOTAL = sum(n for _, n in FOLDERS)
SCORES = {"realigned": ("dmos_realigned.mat", "dmos_new"), "dmos": ("dmos.mat", "dmos")}


def _mat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    try:
        m = loadmat(str(path))
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{NAME}: cannot read {path}: {exc}") from None
    missing = [k for k in keys if k not in m]
    if missing:
        raise DataError(f"{NAME}: {path} has no variable(s) {', '.join(missing)}")
    out = {k: np.asarray(m[k]).reshape(-1) for k in keys}
    for k, v in out.items():
        if v.size != TOTAL:
            raise DataError(f"{NAME}: {path} variable {k} has {v.size} entries, expected {TOTAL}")
    return out


def _refname(cell: object) -> str:
    v = np.asarray(cell).reshape(-1)
    return str(v[0]) if v.size else ""


def _folder_of(i: int) -> tuple[str, int]:
    offset = 0
    for folder, n in FOLDERS:
        if i < offset + n:
            return folder, i - offset + 1
        offset += n
    raise IndexError(i)


def load(root: PathLike, scores: str = "realigned") -> CorrelationSet:
    """Load LIVE from the folder ``root`` (layout in the module docstring).

    A ``databaserelease2/`` subfolder is accepted.

    Args:
        root: the set folder.
        scores: ``"realigned"`` (``dmos_new``) or ``"dmos"`` (``dmos.mat``).

    Raises:
        DataError: an unknown ``scores``, or a file or folder is missing or malformed.
    """
    if scores not in SCORES:
        raise DataError(f"{NAME}: scores={scores!r}; choose 'realigned' (dmos_new) or 'dmos' (dmos.mat)")
    root = Path(root)
    if not (root / "refnames_all.mat").exists() and (root / "databaserelease2").is_dir():
        root = root / "databaserelease2"
    r = CaseResolver(root, NAME)
    file, key = SCORES[scores]
    vals = _mat(r.need(file), (key, "orgs"))
    names = _mat(r.need("refnames_all.mat"), ("refnames_all",))["refnames_all"]
    r.need_dir("refimgs")
    dist, ref, ref_id, score, types = [], [], [], [], []
    for i in range(TOTAL):
        if int(vals["orgs"][i]) == 1:
            continue
        folder, k = _folder_of(i)
        r.need_dir(folder)
        name = _refname(names[i])
        dist.append(r.need(folder, f"img{k}.bmp", what="distorted image"))
        ref.append(r.need("refimgs", name, what="reference image"))
        ref_id.append(Path(name).stem)
        score.append(float(vals[key][i]))
        types.append(folder)
    return CorrelationSet(NAME if scores == "realigned" else "live-dmos", r.root, dist, ref, ref_id,
                          np.array(score), types, np.full(len(dist), -1), higher_is_better=False,
                          score_name=f"{key} ({file})", synthetic=is_synthetic(r.root),
                          notes=[f"LIVE: {key} from {file}; orgs==1 reference copies dropped"]).check()


@register_benchmark
class LIVEBenchmark(CorrelationBenchmark):
    """LIVE in the benchmark registry (:mod:`.registry`)."""

    name = NAME
    title = "LIVE"
    description = "Release 2, 779 distorted images of 29 references, DMOS (higher = worse)"
    citation = ("Sheikh, Sabir & Bovik, A statistical evaluation of recent full reference image quality "
                "assessment algorithms, IEEE TIP 2006")
    signature = SIGNATURE
    nested: tuple[str, ...] = ("databaserelease2",)
    sources: tuple[Remote, ...] = ()
    manual = ("LIVE Release 2 needs the registration form at https://live.ece.utexas.edu/research/quality/ ; "
              "you receive the password of databaserelease2.zip. Unpack it so that {dest}/databaserelease2/ "
              "holds jp2k/ jpeg/ wn/ gblur/ fastfading/ refimgs/ dmos.mat dmos_realigned.mat refnames_all.mat.")
    after_download = ""

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet:
        """Read the set (:func:`load`)."""
        return load(root, scores=options.get("live_scores", "realigned"))
