"""Tiny replicas of the IQA benchmarks in each set's exact layout, built from scikit-image photos.

Every replica carries ``SYNTHETIC.txt``: its subjective scores are SYNTHETIC, made from the
distortion strength (``score = top - slope * strength + noise``), so they say nothing about
agreement with people. Quirks reproduced: TID2013's lower-case ``i25.bmp`` next to ``I01.BMP``
and distorted files on disk with a capital ``I`` while ``mos_with_names.txt`` says ``i``; LIVE's
982-entry ``.mat`` files with ``orgs == 1`` reference copies inside the distortion folders;
PieAPP's CSV headers with leading spaces, a duplicated per-image row and a test pair whose A is
the reference; NIGHTS' column order and rows with fewer than 6 votes; CSIQ's xlsx sheet with
``jpeg 2000`` and its lower-case folder / upper-case token names; KADID's ``dmos.csv``; PIPAL's
``Train_Label`` text files.
"""
from __future__ import annotations

import csv
import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bapps_toolkit.data.mini import load_photos

NOTE = ("SYNTHETIC replica built by tests/iqa/replicas.py from scikit-image photos; its "
        "subjective scores are simulated from the distortion strength, not measured on people.\n")


@functools.lru_cache(maxsize=1)
def _all_photos() -> tuple[np.ndarray, ...]:
    return tuple(load_photos())


def photos(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n`` photo crops resized to ``size`` = (width, height)."""
    out = []
    for im in _all_photos()[:n]:
        out.append(np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR), dtype=np.uint8))
    return out


def distort(img: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """One of a few distortions; ``strength`` in (0, 1]."""
    pil = Image.fromarray(img)
    if kind in ("blur", "gblur"):
        out = np.asarray(pil.filter(ImageFilter.GaussianBlur(0.3 + 3 * strength)))
    elif kind in ("jpeg", "jp2k", "fastfading"):
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=int(max(2, 60 - 57 * strength)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        if kind == "fastfading":
            out = np.clip(out + rng.normal(0, 10 * strength, out.shape), 0, 255)
    elif kind == "contrast":
        out = (img.astype(np.float64) - 128) * (1 - 0.8 * strength) + 128
    else:
        out = img + rng.normal(0, 60 * strength, img.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


KINDS = ("noise", "blur", "jpeg", "contrast")


def _score(strength: float, rng, top: float, slope: float) -> float:
    return round(top - slope * strength + float(rng.normal(0, abs(slope) * 0.05)), 4)


def _save(arr: np.ndarray, path: Path, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, fmt)


def _mark(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "SYNTHETIC.txt").write_text(NOTE)
    return root


def tid2013(root: Path, seed: int = 0, size=(64, 48)) -> Path:
    """refs I01, I02 and i25; types 01 (noise), 08 (blur), 10 (jpeg); 5 levels; I02's files on disk as I02_…"""
    rng = np.random.default_rng(seed)
    _mark(root)
    lines, stds = [], []
    for img, rid in zip(photos(3, size), (1, 2, 25), strict=True):
        ref_name = "i25.bmp" if rid == 25 else f"I{rid:02d}.BMP"
        _save(img, root / "reference_images" / ref_name, "BMP")
        for code, kind in (("01", "noise"), ("08", "blur"), ("10", "jpeg")):
            for lev in range(1, 6):
                name = f"i{rid:02d}_{code}_{lev}.bmp"
                disk = name.replace("i", "I", 1) if rid == 2 else name
                _save(distort(img, kind, lev / 5, rng), root / "distorted_images" / disk, "BMP")
                lines.append(f"{_score(lev / 5, rng, 7.0, 6.0):.5f} {name}")
                stds.append("0.12")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    (root / "mos_std.txt").write_text("\n".join(stds) + "\n")
    return root


def kadid10k(parent: Path, seed: int = 0, size=(64, 48)) -> Path:
    rng = np.random.default_rng(seed)
    root = _mark(parent / "kadid10k")
    (parent / "SYNTHETIC.txt").write_text(NOTE)
    rows = [["dist_img", "ref_img", "dmos", "var"]]
    for r, img in enumerate(photos(3, size), 1):
        _save(img, root / "images" / f"I{r:02d}.png")
        for t, kind in enumerate(KINDS, 1):
            for lev in range(1, 6):
                name = f"I{r:02d}_{t:02d}_{lev:02d}.png"
                _save(distort(img, kind, lev / 5, rng), root / "images" / name)
                rows.append([name, f"I{r:02d}.png", f"{_score(lev / 5, rng, 4.8, 3.6):.2f}", "0.5"])
    with open(root / "dmos.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return parent


def pipal(root: Path, seed: int = 0, size=(48, 48)) -> Path:
    rng = np.random.default_rng(seed)
    _mark(root)
    for r, img in enumerate(photos(3, size), 1):
        rid = f"A{r * 2 - 1:04d}"  # gaps in numbering, as A0001, A0003, ...
        _save(img, root / "Train_Ref" / f"{rid}.bmp", "BMP")
        lines = []
        for g, kind in enumerate(KINDS):
            for k in range(4):
                name = f"{rid}_{g:02d}_{k:02d}.bmp"
                s = (k + 1) / 4
                _save(distort(img, kind, s, rng), root / f"Distortion_{1 + (r % 4)}" / name, "BMP")
                lines.append(f"{name},{_score(s, rng, 1800.0, 800.0):.4f}")
        (root / "Train_Label").mkdir(exist_ok=True)
        (root / "Train_Label" / f"{rid}.txt").write_text("\n".join(lines) + "\n")
    return root


def live(parent: Path, seed: int = 0, size=(64, 48)) -> Path:
    """All 982 entries (tiny images); orgs==1 entries are copies of their reference."""
    from scipy.io import savemat

    from bapps_toolkit.data.iqa.live import FOLDERS

    rng = np.random.default_rng(seed)
    root = _mark(parent / "databaserelease2")
    (parent / "SYNTHETIC.txt").write_text(NOTE)
    names = ["bikes.bmp", "buildings.bmp", "caps.bmp", "house.bmp"]
    refs = photos(len(names), size)
    for img, name in zip(refs, names, strict=True):
        _save(img, root / "refimgs" / name, "BMP")
    dmos, orgs, refnames = [], [], []
    for folder, n in FOLDERS:
        kind = {"wn": "noise", "gblur": "blur"}.get(folder, folder)
        for k in range(1, n + 1):
            j = k % len(names)
            copy = k % 7 == 0
            s = 0.0 if copy else float(rng.uniform(0.05, 1.0))
            img = refs[j] if copy else distort(refs[j], kind, s, rng)
            _save(img, root / folder / f"img{k}.bmp", "BMP")
            dmos.append(0.0 if copy else _score(s, rng, 10.0, -70.0))
            orgs.append(1 if copy else 0)
            refnames.append(names[j])
        (root / folder / "info.txt").write_text("")
    dmos_a = np.array([dmos], dtype=np.float64)
    orgs_a = np.array([orgs], dtype=np.float64)
    cells = np.empty((1, len(refnames)), dtype=object)
    cells[0, :] = refnames
    savemat(root / "dmos.mat", {"dmos": dmos_a, "orgs": orgs_a})
    savemat(root / "dmos_realigned.mat", {"dmos_new": dmos_a * 0.9 + 2, "dmos_std": dmos_a * 0 + 1,
                                          "orgs": orgs_a})
    savemat(root / "refnames_all.mat", {"refnames_all": cells})
    (root / "readme.txt").write_text("replica\n")
    return parent


CSIQ_TYPES = (("noise", "awgn", "AWGN"), ("blur", "blur", "BLUR"), ("jpeg 2000", "jpeg2000", "jpeg2000"),
              ("contrast", "contrast", "contrast"))


def csiq(root: Path, seed: int = 0, size=(48, 48)) -> Path:
    import openpyxl

    rng = np.random.default_rng(seed)
    _mark(root)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "all_by_image"
    ws.append(["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"])
    for img, name in zip(photos(3, size), (1600, "aerial_city", "boston"), strict=True):
        _save(img, root / "src_imgs" / f"{name}.png")
        for idx, (dst_type, folder, token) in enumerate(CSIQ_TYPES, 1):
            for lev in range(1, 5 if dst_type == "contrast" else 6):
                s = lev / 5
                kind = {"noise": "noise", "jpeg 2000": "jp2k"}.get(dst_type, dst_type)
                _save(distort(img, kind, s, rng), root / "dst_imgs" / folder / f"{name}.{token}.{lev}.png")
                ws.append([name, idx, dst_type, lev, 0.05, _score(s, rng, 0.0, -0.9)])
    wb.create_sheet("experiment_1")
    wb.save(root / "csiq.DMOS.xlsx")
    return root


def pieapp(parent: Path, seed: int = 0, size=(48, 48)) -> Path:
    rng = np.random.default_rng(seed)
    root = _mark(parent / "PieAPP_dataset_CVPR_2018")
    (parent / "SYNTHETIC.txt").write_text(NOTE)
    imgs = photos(4, size)
    for split, refs in (("train", (1, 2)), ("test", (3, 4))):
        (root / f"{split}_reference_list.txt").write_text("".join(f"ref_{n}.png\n" for n in refs))
        for n in refs:
            img = imgs[n - 1]
            _save(img, root / "reference_images" / split / f"ref_{n}.png")
            names, strengths = [], []
            for k, kind in enumerate(KINDS * 2):
                s = float(rng.uniform(0.05, 1))
                name = f"distort_{n}_{kind}_{'inter' if k % 2 else 'intra'}_{k}.png"
                _save(distort(img, kind, s, rng), root / "distorted_images" / split / f"ref_{n}" / name)
                names.append(name)
                strengths.append(s)
            _pie_labels(root / "labels" / split, n, names, strengths, rng, test=split == "test")
    return parent


def _pie_labels(folder: Path, n: int, names, strengths, rng, test: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ref = f"ref_{n}.png"
    head = ["ref. image", " distorted image A", " distorted image B", " raw probability of preference for A"]
    if not test:
        head.append(" processed probability of preference for A")
    rows = []
    pool = [(ref, 0.0), *zip(names, strengths, strict=True)] if test else list(zip(names, strengths, strict=True))
    for i in range(len(pool)):
        for j in range(i + 1, len(pool)):
            p = float(1 / (1 + np.exp(6 * (pool[i][1] - pool[j][1]))))
            row = [ref, " " + pool[i][0], " " + pool[j][0], " " if (i + j) % 5 == 0 else f" {p:.3f}"]
            if not test:
                row.append(f" {p:.3f}")
            rows.append(row)
    with open(folder / f"ref_{n}_pairwise_labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([head, *rows])
    if test:
        per = [["ref. image", " distorted image", " score for distorted image"]]
        per += [[ref, " " + nm, f" {6 * s + rng.normal(0, 0.2):.4f}"] for nm, s in zip(names, strengths, strict=True)]
        per.append(per[1])  # a duplicated row
        with open(folder / f"ref_{n}_per_image_score.csv", "w", newline="") as f:
            csv.writer(f).writerows(per)


def nights(parent: Path, seed: int = 0, size=(64, 64), n_refs: int = 12) -> Path:
    """Columns id,left_vote,right_vote,votes,ref_path,left_path,right_path,split,is_imagenet,prompt."""
    rng = np.random.default_rng(seed)
    root = _mark(parent / "nights")
    (parent / "SYNTHETIC.txt").write_text(NOTE)
    rows = [["id", "left_vote", "right_vote", "votes", "ref_path", "left_path", "right_path", "split",
             "is_imagenet", "prompt"]]
    base = photos(6, size)
    for i in range(n_refs):
        img = base[i % len(base)]
        ref_p, l_p, r_p = f"ref/000/{i:03d}.png", f"distort/000/{i:03d}_0.png", f"distort/000/{i:03d}_1.png"
        sl, sr = rng.uniform(0.1, 1, 2)
        _save(img, root / ref_p)
        _save(distort(img, KINDS[i % 4], float(sl), rng), root / l_p)
        _save(distort(img, KINDS[(i + 1) % 4], float(sr), rng), root / r_p)
        right = int(sr < sl)
        votes = 5 if i % 6 == 5 else 6
        split = ("train", "val", "test")[i % 3]
        rows.append([str(i), str(1 - right), str(right), str(votes), ref_p, l_p, r_p, split,
                     str(i % 4 == 2), "An image of a thing"])
    with open(root / "data.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return parent


BUILDERS = {"tid2013": tid2013, "kadid10k": kadid10k, "pipal": pipal, "live": live, "csiq": csiq,
            "pieapp": pieapp, "nights": nights}


def build_all(parent: Path, seed: int = 0) -> Path:
    """Every replica in its own sub-folder of ``parent`` (plus ``SYNTHETIC.txt``)."""
    _mark(parent)
    for name, fn in BUILDERS.items():
        fn(parent / name, seed=seed)
    return parent
