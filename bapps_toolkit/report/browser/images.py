"""The pictures of the failure browser: triplets, the metrics' spatial distance maps, as PNG.

The triplets are read back from the data; both they and the maps are encoded as PNG.

* :func:`load_triplets` reads only the chosen items (by their position in the set) and checks
  that each still has the stem the evaluation saw.
* :func:`spatial_maps` runs a copy of the metric with ``spatial=True`` on those items: for LPIPS
  the per-layer distance maps upsampled to the image size and summed (the official
  ``spatial=True``), for SSIM the map ``(1 − SSIM)/2`` over the valid windows, for L2 the
  per-pixel map; a metric without a map gives none. The maps are computed in fp32 whatever
  precision the evaluation ran in.
* :func:`heatmap_png` draws a map with a fixed perceptual colour scale (dark = 0, light =
  ``vmax``); the two maps of an item share ``vmax`` so they can be compared.
"""
from __future__ import annotations

import copy
import dataclasses
import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ...data import TwoAFCDataset, to_model_input
from ...errors import DataError
from ...metrics import Metric

__all__ = ["Triplet", "load_triplets", "spatial_maps", "heatmap_png", "image_png", "map_caption", "COLOURS"]

#: Anchors ``(t, r, g, b)`` of the heat-map colour scale (dark purple → red → orange → pale yellow).
COLOURS = np.array([(0.00, 0, 0, 4), (0.25, 87, 16, 110), (0.50, 188, 55, 84), (0.75, 249, 142, 9),
                    (1.00, 252, 255, 164)], dtype=np.float64)
_MAP_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Triplet:
    """The three uint8 ``H×W×3`` images of a 2AFC item."""

    ref: np.ndarray
    p0: np.ndarray
    p1: np.ndarray


def load_triplets(source: object, wanted: Sequence[tuple[str, int, str]]) -> dict[tuple[str, int], Triplet]:
    """The images of each ``(set key, index, stem)`` in ``wanted``, keyed by ``(key, index)``.

    Raises:
        DataError: an index is out of range, or the item there has another stem than the
            evaluation recorded (the data changed since).
    """
    out: dict[tuple[str, int], Triplet] = {}
    for key in dict.fromkeys(k for k, _, _ in wanted):
        ds = TwoAFCDataset(source, [key], in_memory=False, output="uint8")  # type: ignore[arg-type]
        try:
            for k, index, stem in wanted:
                if k != key or (k, index) in out:
                    continue
                if not 0 <= index < len(ds):
                    raise DataError(f"{source}: set {key} has {len(ds)} items, no item {index}")
                item = ds[index]
                if str(item["stem"]) != stem:
                    raise DataError(f"{source}: item {index} of {key} is {item['stem']!r}, not {stem!r}; "
                                    "the data changed since the evaluation")
                out[(k, index)] = Triplet(*(item[f].numpy() for f in ("ref", "p0", "p1")))
        finally:
            ds.close()
    return out


def _device_of(metric: Metric) -> torch.device:
    for t in list(metric.parameters()) + list(metric.buffers()):
        return t.device
    return torch.device("cpu")


def spatial_maps(metric: Metric, triplets: Sequence[Triplet]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``(map of d(ref, p0), map of d(ref, p1))`` per triplet, or None when ``metric`` has no map."""
    if not metric.supports_spatial or not triplets:
        return None
    twin = copy.deepcopy(metric).float().eval()
    twin.spatial = True
    device = _device_of(twin)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    with torch.inference_mode():
        for i in range(0, len(triplets), _MAP_BATCH):
            chunk = triplets[i:i + _MAP_BATCH]
            ref, p0, p1 = (to_model_input(np.stack([getattr(t, f) for t in chunk]), device=device)
                           for f in ("ref", "p0", "p1"))
            m0, m1 = twin.pair_distances(ref, p0, p1)
            out += [(a[0].double().cpu().numpy(), b[0].double().cpu().numpy()) for a, b in zip(m0, m1, strict=True)]
    return out


def map_caption(metric: Metric) -> str:
    """What the spatial map of ``metric`` is, in a few words."""
    name = metric.name.lower()
    if name.startswith("lpips"):
        return "LPIPS map: per-layer distances upsampled to the image and summed (spatial=True)"
    if name.startswith("ssim"):
        return "(1 - SSIM)/2 map over the valid 11x11 windows"
    return f"{metric.name} spatial distance map"


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def image_png(image: np.ndarray) -> bytes:
    """A uint8 ``H×W×3`` image (or ``H×W×1``) as PNG bytes."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return _png(arr)


def heatmap_png(values: np.ndarray, vmax: float) -> bytes:
    """A 2-D map as a PNG heat map: 0 (and below) darkest, ``vmax`` (and above) lightest."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    t = np.clip(v / vmax, 0.0, 1.0) if vmax > 0 else np.zeros_like(v)
    rgb = np.stack([np.interp(t, COLOURS[:, 0], COLOURS[:, c]) for c in (1, 2, 3)], axis=-1)
    return _png(np.rint(rgb))
