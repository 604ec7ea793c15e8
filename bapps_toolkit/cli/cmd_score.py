"""``bapps score``: distances between your own images (the official lpips_2imgs / lpips_2dirs /
lpips_1dir_allpairs scripts, batched).

Forms::

    bapps score IMG0 IMG1 [--metric NAME]                 # prints one distance
    bapps score --dir0 D0 --dir1 D1 [--out dists.csv]    # pairs files with the same name
    bapps score --dir D --all-pairs [--out dists.csv]    # every unordered pair of D's images

Image rule (written down, tested):

* Files are decoded with PIL. The header size is checked before decoding: more than
  :data:`MAX_PIXELS` pixels (or a side over :data:`MAX_SIDE`) is refused, and PIL's
  decompression-bomb check stays on. An unreadable file is an error that names it.
* Colour: grayscale, palette, CMYK, RGBA… go through PIL's ``convert("RGB")`` (grayscale is
  replicated to three channels; an alpha channel is dropped, not composited). 16-bit grayscale
  is scaled to 8 bits (``value / 257``) first.
* Size: the two images of a pair must have the same size; **if they differ, the second image
  is resized to the first image's size** with PIL's bilinear filter (which antialiases when
  shrinking) and a note naming both files is printed on stderr. The pair's CSV row says
  ``resized=1``. Images are otherwise used at their own size (no resize to 64×64).
* A metric's smallest accepted size (e.g. MS-SSIM's) is checked first and the error names the
  file. Very large images: memory is metric-specific (a VGG on a 4k image needs several GB);
  pairs are batched by a pixel budget (``--max-batch-pixels``), a pair larger than the budget
  runs alone.

Output: a single pair prints ``<distance>`` (with the metric's label when it is UNCALIBRATED);
folder forms write CSV (``file,distance,resized,metric`` or ``file0,file1,distance,resized,
metric``) atomically to ``--out`` or print it to stdout.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
#: Largest side accepted (pixels).
MAX_SIDE = 32768
#: Largest pixel count accepted before decoding (256 MPix).
MAX_PIXELS = 256 * 1024 * 1024
#: Default pixel budget of one batch (sum of H*W over the pairs of a batch).
DEFAULT_BATCH_PIXELS = 8 * 1024 * 1024


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "score", help="distance between two images, two folders of images, or all pairs of a folder",
        description=__doc__.split("\n\n")[0] + "\n\nResize rule: the second image of a pair is "
        "resized (bilinear) to the first's size when they differ.",
    )
    p.add_argument("images", nargs="*", metavar="IMG", help="two image files (IMG0 IMG1)")
    p.add_argument("--dir0", help="folder of first images (paired with --dir1 by file name)")
    p.add_argument("--dir1", help="folder of second images")
    p.add_argument("--dir", help="folder for --all-pairs")
    p.add_argument("--all-pairs", action="store_true", help="score every unordered pair of --dir")
    p.add_argument("--metric", default="lpips-alex", help="metric name (default lpips-alex; see `bapps metrics`)")
    p.add_argument("--checkpoint", help="use a metric trained by `bapps train` (checkpoint file) instead of --metric")
    p.add_argument("--backbone-weights", action="append", default=[], metavar="NET=PATH|NET=random",
                   help="backbone weights for a network (alex, vgg, squeeze); 'random' = UNCALIBRATED")
    p.add_argument("--lin-weights", action="append", default=[], metavar="NET=PATH",
                   help="LPIPS linear-layer weights for a network")
    p.add_argument("--out", help="CSV file for the folder forms (default: print to stdout)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--batch-size", type=int, default=64, help="most pairs per batch (default 64)")
    p.add_argument("--max-batch-pixels", type=int, default=DEFAULT_BATCH_PIXELS,
                   help=f"pixel budget of one batch (default {DEFAULT_BATCH_PIXELS})")
    p.set_defaults(func=run)
    return p


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def read_image(path) -> np.ndarray:  # noqa: F821
    """Decode ``path`` to ``uint8 [H, W, 3]`` RGB by the module's rule; errors name the file."""
    from ..data.images import read_rgb

    return read_rgb(Path(path), max_side=MAX_SIDE, max_pixels=MAX_PIXELS, scale_16bit=True)


def _resize_to(arr, size_hw: tuple[int, int]):
    import numpy as np
    from PIL import Image

    h, w = size_hw
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.BILINEAR), dtype=np.uint8)


def list_images(folder) -> dict[str, Path]:
    """``{file name: path}`` of the image files directly in ``folder`` (hidden files skipped)."""
    from ..errors import DataError

    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"folder {d} does not exist" if not d.exists() else f"{d} is not a folder")
    files = {p.name: p for p in sorted(d.iterdir())
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS}
    if not files:
        raise DataError(f"folder {d} holds no image files ({', '.join(IMAGE_EXTS)})")
    return files


def _name_list(names: Sequence[str], limit: int = 10) -> str:
    names = sorted(names)
    more = f" … and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def pair_dirs(dir0, dir1) -> list[tuple[str, Path, Path]]:
    """Pairs ``(name, dir0/name, dir1/name)``; an error lists the names missing on either side."""
    from ..errors import DataError

    a, b = list_images(dir0), list_images(dir1)
    only0, only1 = set(a) - set(b), set(b) - set(a)
    if only0 or only1:
        parts = []
        if only0:
            parts.append(f"{len(only0)} file(s) of {dir0} missing from {dir1}: {_name_list(only0)}")
        if only1:
            parts.append(f"{len(only1)} file(s) of {dir1} missing from {dir0}: {_name_list(only1)}")
        raise DataError("folders do not match (files are paired by name): " + "; ".join(parts))
    return [(n, a[n], b[n]) for n in sorted(a)]


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------
Prepared = tuple[Path, Path, "np.ndarray", "np.ndarray", bool]  # noqa: F821


def prepare_pairs(pairs: Sequence[tuple[Path, Path]], *, notes=None) -> list[Prepared]:
    """Decode every image once and apply the resize rule: ``(p0, p1, a, b, resized)`` per pair."""
    cache: dict[Path, np.ndarray] = {}  # noqa: F821

    def img(p: Path):
        if p not in cache:
            cache[p] = read_image(p)
        return cache[p]

    prepared = []
    notes = sys.stderr if notes is None else notes
    for p0, p1 in pairs:
        a, b = img(p0), img(p1)
        resized = a.shape[:2] != b.shape[:2]
        if resized:
            print(f"bapps score: note: {p1} is {b.shape[1]}x{b.shape[0]}, {p0} is "
                  f"{a.shape[1]}x{a.shape[0]}: resizing {p1} to {a.shape[1]}x{a.shape[0]} (bilinear)",
                  file=notes)
            b = _resize_to(b, a.shape[:2])
        prepared.append((p0, p1, a, b, resized))
    return prepared


def score_prepared(metric, prepared: Sequence[Prepared], *, device=None, batch_size: int = 64,
                   max_batch_pixels: int = DEFAULT_BATCH_PIXELS) -> list[float]:
    """Distances of prepared pairs, in order; pairs of equal size are batched by a pixel budget."""
    import numpy as np
    import torch

    from ..data import to_model_input
    from ..errors import DataError

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    metric = metric.to(dev).eval()
    min_size = int(getattr(metric, "min_size", 1))
    by_shape: dict[tuple[int, int], list[int]] = {}
    for k, (p0, _, a, _, _) in enumerate(prepared):
        if min(a.shape[:2]) < min_size:
            raise DataError(f"image {p0} is {a.shape[1]}x{a.shape[0]}: metric {metric.name} needs "
                            f"both sides >= {min_size} pixels")
        by_shape.setdefault(a.shape[:2], []).append(k)
    dist = [float("nan")] * len(prepared)
    if _can_reuse_features(metric, prepared):
        with torch.inference_mode():
            _score_with_feature_cache(metric, prepared, dist, dev, batch_size, max_batch_pixels)
        return dist
    with torch.inference_mode():
        for (h, w), idx in by_shape.items():
            per_batch = max(1, min(int(batch_size), int(max_batch_pixels) // max(1, h * w)))
            for s in range(0, len(idx), per_batch):
                chunk = idx[s:s + per_batch]
                x0 = to_model_input(np.stack([prepared[k][2] for k in chunk]), device=dev)
                x1 = to_model_input(np.stack([prepared[k][3] for k in chunk]), device=dev)
                d = metric(x0, x1).reshape(len(chunk)).double().cpu().numpy()
                for k, v in zip(chunk, d, strict=False):
                    dist[k] = float(v)
    return dist


#: Largest total of pixels over the distinct images whose deep features are kept for reuse.
FEATURE_CACHE_PIXELS = 64 * 1024 * 1024


def _can_reuse_features(metric, prepared: Sequence[Prepared]) -> bool:
    """LPIPS-like metrics (``features`` + ``distance_from_features``) on pairs that share
    images (``--all-pairs``): each distinct image goes through the network once."""
    if not (hasattr(metric, "features") and hasattr(metric, "distance_from_features")):
        return False
    if getattr(metric, "spatial", False):
        return False
    distinct = {(p[0], p[2].shape) for p in prepared} | {(p[1], p[3].shape) for p in prepared}
    pixels = sum(shape[0] * shape[1] for _, shape in distinct)
    return len(distinct) < 2 * len(prepared) and pixels <= FEATURE_CACHE_PIXELS


def _score_with_feature_cache(metric, prepared, dist, dev, batch_size, max_batch_pixels) -> None:
    import numpy as np
    import torch

    from ..data import to_model_input

    index: dict[tuple, int] = {}
    images = []
    for p0, p1, a, b, _ in prepared:
        for key, arr in (((p0, a.shape), a), ((p1, b.shape), b)):
            if key not in index:
                index[key] = len(images)
                images.append(arr)
    feats: list = [None] * len(images)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for k, arr in enumerate(images):
        by_shape.setdefault(arr.shape[:2], []).append(k)
    for (h, w), idx in by_shape.items():
        per_batch = max(1, min(int(batch_size), int(max_batch_pixels) // max(1, h * w)))
        for s in range(0, len(idx), per_batch):
            chunk = idx[s:s + per_batch]
            x = to_model_input(np.stack([images[k] for k in chunk]), device=dev)
            metric.validate(x, x)
            fs = metric.features(x)
            for j, k in enumerate(chunk):
                feats[k] = [f[j:j + 1] for f in fs]
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (p0, p1, a, b, _) in enumerate(prepared):
        groups.setdefault(a.shape[:2], []).append(k)
    step = max(1, int(batch_size))
    for idx in groups.values():
        for s in range(0, len(idx), step):
            chunk = idx[s:s + step]
            i0 = [index[(prepared[k][0], prepared[k][2].shape)] for k in chunk]
            i1 = [index[(prepared[k][1], prepared[k][3].shape)] for k in chunk]
            n_layers = len(feats[i0[0]])
            f0 = [torch.cat([feats[i][l] for i in i0], dim=0) for l in range(n_layers)]
            f1 = [torch.cat([feats[j][l] for j in i1], dim=0) for l in range(n_layers)]
            d = metric.distance_from_features(f0, f1).reshape(len(chunk)).double().cpu().numpy()
            for k, v in zip(chunk, d, strict=False):
                dist[k] = float(v)


def score_pairs(metric, pairs: Sequence[tuple[Path, Path]], *, device=None, batch_size: int = 64,
                max_batch_pixels: int = DEFAULT_BATCH_PIXELS, notes=None,
                ) -> tuple[list[float], list[bool]]:
    """Distances of ``pairs`` of image files (resize rule of the module) and the resized flags."""
    prepared = prepare_pairs(pairs, notes=notes)
    dist = score_prepared(metric, prepared, device=device, batch_size=batch_size,
                          max_batch_pixels=max_batch_pixels)
    return dist, [p[4] for p in prepared]


def _build_metric(args):
    from ..evaluate.runner import parse_weight_specs, resolve_metric

    if args.checkpoint:
        return resolve_metric(args.checkpoint)
    return resolve_metric(
        args.metric,
        backbone_weights=parse_weight_specs(args.backbone_weights, "--backbone-weights", allow_random=True),
        lin_weights=parse_weight_specs(args.lin_weights, "--lin-weights", allow_random=False),
    )


def _write_csv(rows: list[dict], columns: Sequence[str], out: str | None) -> None:
    import csv

    from .._io import atomic_write

    if out is None:
        w = csv.DictWriter(sys.stdout, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    with atomic_write(out, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def run(args) -> int:
    from ..errors import BappsError
    from ..evaluate.runner import metric_label

    has_pair = bool(args.images)
    has_dirs = bool(args.dir0 or args.dir1)
    has_all = bool(args.dir or args.all_pairs)
    if sum((has_pair, has_dirs, has_all)) != 1:
        raise BappsError("give exactly one of: IMG0 IMG1 | --dir0 D0 --dir1 D1 | --dir D --all-pairs")
    if has_pair and len(args.images) != 2:
        raise BappsError(f"give two images (IMG0 IMG1), got {len(args.images)}")
    if has_dirs and not (args.dir0 and args.dir1):
        raise BappsError("--dir0 and --dir1 go together")
    if has_all and not (args.dir and args.all_pairs):
        raise BappsError("--all-pairs needs --dir D (and --dir needs --all-pairs)")
    if args.batch_size < 1 or args.max_batch_pixels < 1:
        raise BappsError("--batch-size and --max-batch-pixels must be >= 1")
    if args.out is not None and has_pair:
        raise BappsError("--out is for the folder forms; a single pair prints its distance")

    if has_pair:
        pairs = [(Path(args.images[0]), Path(args.images[1]))]
    elif has_dirs:
        pairs = [(a, b) for _, a, b in pair_dirs(args.dir0, args.dir1)]
    else:
        files = list_images(args.dir)
        if len(files) < 2:
            raise BappsError(f"--all-pairs needs at least two images in {args.dir}, found {len(files)}")
        names = sorted(files)
        pairs = [(files[a], files[b]) for a, b in itertools.combinations(names, 2)]
    prepared = prepare_pairs(pairs)  # unreadable files are named before any network work
    mid, metric = _build_metric(args)
    label = metric_label(mid, metric)
    dist = score_prepared(metric, prepared, device=args.device,
                          batch_size=args.batch_size, max_batch_pixels=args.max_batch_pixels)
    if has_pair:
        tag = "" if metric.calibrated else f"  ({label})"
        print(f"{dist[0]:.6g}{tag}")
        return 0
    rows = []
    for (p0, p1, _, _, resized), d in zip(prepared, dist, strict=False):
        row = {"distance": f"{d:.8g}", "resized": int(resized), "metric": label}
        if has_dirs:
            row["file"] = p0.name
        else:
            row["file0"], row["file1"] = p0.name, p1.name
        rows.append(row)
    cols = ["file", "distance", "resized", "metric"] if has_dirs else ["file0", "file1", "distance", "resized", "metric"]
    _write_csv(rows, cols, args.out)
    if args.out is not None:
        warn = "" if metric.calibrated else f" — {label}"
        print(f"wrote {len(rows)} distances to {args.out}{warn}", file=sys.stderr)
    return 0
