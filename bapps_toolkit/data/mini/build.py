"""Building the mini set: patches, sets, the ``SYNTHETIC.txt`` note and :func:`make_mini`.

Patches come from scikit-image's photos, one set is built per worker task, and :func:`make_mini`
is atomic, locked and deterministic.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import skimage.data
from PIL import Image
from tqdm.auto import tqdm

from ..._io import FileLock, PathLike, write_text_atomic
from ..._workers import process_pool
from ...errors import DataError
from ..decode import default_workers, make_bar
from ..layout import ALL_KEYS, folders_of, split_key
from .distortions import PAIR_MAKERS, cnn_like, to_float, to_u8, traditional
from .observer import (
    JND_TAU,
    JND_THETA,
    OBS_NOISE,
    OBS_TAU,
    observer_distance,
    observer_features,
    observer_from_features,
    sigmoid,
)

#: Bump when the generator changes what it writes (recorded in SYNTHETIC.txt).
GENERATOR_VERSION = 1

MINI_COUNTS: dict[str, int] = {
    "2afc/train/traditional": 300, "2afc/train/cnn": 300, "2afc/train/mix": 300,
    "2afc/val/traditional": 300, "2afc/val/cnn": 300, "2afc/val/superres": 280,
    "2afc/val/deblur": 280, "2afc/val/color": 260, "2afc/val/frameinterp": 250,
    "jnd/val/traditional": 250, "jnd/val/cnn": 250,
}

PHOTOS: tuple[str, ...] = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png", "brick.png", "grass.png",
    "gravel.png", "coins.png", "moon.png",
)

RATERS = {"train": 2, "val": 5}
JND_RATERS = 3

# --------------------------------------------------------------------------- photos & patches

def _photo_dir() -> Path:
    return Path(skimage.data.__file__).resolve().parent


def load_photos() -> list[np.ndarray]:
    """The wheel's photos as uint8 RGB arrays (grey replicated; very large ones halved)."""
    folder = _photo_dir()
    out = []
    for name in PHOTOS:
        path = folder / name
        if not path.is_file():
            raise DataError(f"scikit-image photo {path} is missing; make-mini needs the photos "
                            "shipped in the scikit-image wheel")
        with Image.open(path) as im:
            im = im.convert("RGB")
            if min(im.size) > 800:
                im = im.resize((im.size[0] // 2, im.size[1] // 2), Image.Resampling.BOX)
            out.append(np.asarray(im, dtype=np.uint8).copy())
    return out


def _patch(rng: np.random.Generator, photos: list[np.ndarray], half: str) -> np.ndarray:
    """A 64×64 uint8 patch from the ``"top"`` (train) or ``"bottom"`` (val) half of a photo."""
    for _ in range(100):
        img = photos[int(rng.integers(len(photos)))]
        h, w = img.shape[:2]
        rows = (0, h // 2) if half == "top" else (h - h // 2, h)
        side = int(rng.choice([64, 96, 128, 160]))
        side = min(side, rows[1] - rows[0], w)
        y = int(rng.integers(rows[0], rows[1] - side + 1))
        x = int(rng.integers(0, w - side + 1))
        win = img[y:y + side, x:x + side]
        if side != 64:
            win = np.asarray(Image.fromarray(win).resize((64, 64), Image.Resampling.BOX))
        if win.std() >= 10:
            return np.ascontiguousarray(win)
    return np.ascontiguousarray(win)  # pragma: no cover - every photo has textured areas


# --------------------------------------------------------------------------- set builders

def _save_png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=1, optimize=False)


def _save_npy(value: float, path: Path) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.array([value], dtype=np.float32), allow_pickle=False)


def _build_set(args: tuple[str, str, int, int]) -> str:
    """Generate and write one set (module level so a worker process can run it)."""
    root, key, seed, n = args
    photos = _PHOTOS_CACHE or load_photos()
    kind, split, cat = split_key(key)
    index = ALL_KEYS.index(key)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), index]))
    half = "top" if split == "train" else "bottom"
    set_dir = Path(root) / key
    for sub in folders_of(key):
        (set_dir / sub).mkdir(parents=True, exist_ok=True)
    stems = [f"{i:06d}" for i in range(n)]
    if kind == "2afc":
        make = PAIR_MAKERS[cat]
        ref = np.empty((n, 64, 64, 3), np.uint8)
        p0 = np.empty_like(ref)
        p1 = np.empty_like(ref)
        for i in range(n):
            r = _patch(rng, photos, half)
            a, b = make(to_float(r), rng)
            ref[i], p0[i], p1[i] = r, to_u8(a), to_u8(b)
        fr = observer_features(ref)
        d0 = observer_from_features(fr, observer_features(p0))
        d1 = observer_from_features(fr, observer_features(p1))
        eps = rng.normal(0, OBS_NOISE, n)
        prob = sigmoid((d0 - d1) / OBS_TAU + eps)
        raters = RATERS[split]
        judge = rng.binomial(raters, prob) / raters
        for i, s in enumerate(stems):
            _save_png(ref[i], set_dir / "ref" / f"{s}.png")
            _save_png(p0[i], set_dir / "p0" / f"{s}.png")
            _save_png(p1[i], set_dir / "p1" / f"{s}.png")
            _save_npy(float(judge[i]), set_dir / "judge" / f"{s}.npy")
    else:
        p0 = np.empty((n, 64, 64, 3), np.uint8)
        p1 = np.empty_like(p0)
        for i in range(n):
            r = _patch(rng, photos, half)
            tmax = float(rng.uniform(0.05, 0.6))
            y = traditional(to_float(r), rng, tmax) if cat == "traditional" else cnn_like(to_float(r), rng, tmax)
            p0[i], p1[i] = r, to_u8(y)
        d = observer_distance(p0, p1)
        prob = sigmoid((JND_THETA - d) / JND_TAU)
        same = rng.binomial(JND_RATERS, prob) / JND_RATERS
        for i, s in enumerate(stems):
            _save_png(p0[i], set_dir / "p0" / f"{s}.png")
            _save_png(p1[i], set_dir / "p1" / f"{s}.png")
            _save_npy(float(same[i]), set_dir / "same" / f"{s}.npy")
    return key


_PHOTOS_CACHE: list[np.ndarray] = []


def synthetic_note(seed: int) -> str:
    """Text of ``SYNTHETIC.txt`` (depends only on the seed and the generator version)."""
    counts = "\n".join(f"  {k}: {v}" for k, v in MINI_COUNTS.items())
    return (
        "SYNTHETIC DATA - NOT BAPPS, NOT HUMAN JUDGMENTS\n\n"
        "Built by `bapps make-mini` (bapps-toolkit) in the folder layout of BAPPS (Zhang et al.,\n"
        "CVPR 2018). Patches are cut from photos shipped in the scikit-image wheel:\n"
        f"  {', '.join(PHOTOS)}\n"
        "Distortions are synthetic; the judge/same values come from a simulated observer\n"
        "(hidden distance D = 0.04*E + 1.5*S: E = mean Lab distance after a Gaussian blur of\n"
        "sigma 1.5, S = 1 - mean gradient-magnitude similarity of L), turned into rater votes\n"
        "(5 per val triplet, 2 per train triplet, 3 per JND pair). Scores on this set say\n"
        "nothing about agreement with people. See bapps_toolkit/data/mini.py for the details.\n\n"
        f"seed: {int(seed)}\ngenerator version: {GENERATOR_VERSION}\nsets:\n{counts}\n"
    )


def _already_built(out: Path, note: str, force: bool) -> bool:
    """Whether ``out`` already holds the mini set whose ``SYNTHETIC.txt`` reads ``note``.

    Raises:
        FileExistsError: ``out`` holds anything else and ``force`` is false.
    """
    if not (out.is_dir() and any(out.iterdir())):
        return False
    marker = out / "SYNTHETIC.txt"
    if not force and marker.is_file() and marker.read_text(encoding="utf-8") == note:
        return True
    if not force:
        raise FileExistsError(f"{out} is not empty; pass --force (force=True) to replace it "
                              "with a freshly built mini set")
    return False


def _build_sets(jobs: list[tuple[str, str, int, int]], workers: int, bar: tqdm[Any]) -> None:
    """Run :func:`_build_set` on every job with ``workers`` processes, counting on ``bar``."""
    try:
        if workers == 1:
            for job in jobs:
                _build_set(job)
                bar.update(1)
        else:
            # Largest sets first so the last worker is not left with a long job.
            order = sorted(jobs, key=lambda j: -j[3])
            with process_pool(min(workers, len(jobs))) as ex:
                for _ in ex.map(_build_set, order):
                    bar.update(1)
    finally:
        bar.close()


def _replace_folder(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, removing what ``out`` held before only afterwards."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.build-old-{secrets.token_hex(4)}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def make_mini(out_dir: PathLike, seed: int = 0, *, force: bool = False,
              workers: int | None = None, progress: bool = True) -> Path:
    """Build the synthetic mini set into ``out_dir`` and return its path.

    The set is generated in a temporary folder beside ``out_dir`` and renamed into place only
    when complete, under a lock on ``out_dir``. If ``out_dir`` already holds the mini set of the
    same seed and generator version it is returned untouched; any other non-empty ``out_dir``
    is refused unless ``force=True`` (then it is replaced). ``workers`` processes build the
    sets in parallel (default: every usable core); the files do not depend on it.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    note = synthetic_note(int(seed))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    with FileLock(out, "mini set"):
        if _already_built(out, note, force):
            return out
        for stale in out.parent.glob(f".{out.name}.build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = out.parent / f".{out.name}.build-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir(parents=True)
        try:
            _PHOTOS_CACHE[:] = load_photos()
            jobs = [(str(tmp), key, int(seed), n) for key, n in MINI_COUNTS.items()]
            w = default_workers() if workers is None else int(workers)
            if w < 1:
                raise DataError(f"workers must be >= 1, got {workers}")
            _build_sets(jobs, w, make_bar(len(jobs), f"make-mini {out.name}", progress, unit="set"))
            write_text_atomic(tmp / "SYNTHETIC.txt", note)
            _replace_folder(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            _PHOTOS_CACHE[:] = []
    return out
