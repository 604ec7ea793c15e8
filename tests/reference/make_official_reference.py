"""Record the official LPIPS repository's L2 / SSIM (``--model l2|ssim``, ``--colorspace Lab|RGB``)
per item on a BAPPS-layout set, with its 2AFC score and JND mAP.

Run with the reference environment (lpips 0.1.4, torch/torchvision from the registry), on the
synthetic mini set built by the toolkit (``bapps make-mini /tmp/refmini --seed 0``, main venv)::

    /tmp/refvenv/bin/python tests/reference/make_official_reference.py /tmp/refmini

The distances come from calling ``lpips.L2`` / ``lpips.DSSIM`` (the classes the official
``Trainer`` builds for ``--model l2`` / ``ssim``) on tensors made like the official loader
(PIL ``convert('RGB')``, ``Resize(64)``, ``ToTensor``, ``Normalize(0.5, 0.5)``, batch size 1).
``lpips.dssim`` calls ``skimage.measure.compare_ssim``, removed from scikit-image in 2020; it is
provided here as ``structural_similarity(p0, p1, data_range=range, channel_axis=-1)`` at the
defaults (7x7 uniform window, sample covariance), the modern spelling of the same call.
Scores use the formulas of ``lpips.trainer.score_2afc_dataset`` / ``score_jnd_dataset`` (judges
loaded as float32 like the official loader, ``lpips.voc_ap``).

``official.npz`` keys (SET is e.g. ``2afc_val_cnn`` or ``jnd_val_traditional``; METRIC is one of
``l2_lab``, ``ssim_lab``, ``l2_rgb``, ``ssim_rgb``; INPUT is ``f32`` (the official loader's float32
tensors) or ``f64`` (the same pixels as a float64 tensor ``(x/255 - 0.5)/0.5`` passed to the
same classes)):

* ``sets``: the SET names; ``SET__stems``: file stems (``000000`` ...), in order.
* 2AFC: ``SET__judge`` (float64, the stored ``.npy``), ``SET__METRIC__INPUT__d0`` / ``__d1``
  (float64 copies of what the official class returns, i.e. float32-rounded values),
  ``SET__METRIC__INPUT__score`` (0-d, the official 2AFC score).
* JND: ``SET__same``, ``SET__METRIC__INPUT__d``, ``SET__METRIC__INPUT__score`` (0-d, mAP).
* ``SET__METRIC__INPUT__raw0`` / ``raw1`` / ``raw`` for Lab / ssim: the float64 value of
  ``lpips.l2`` / ``lpips.dssim`` before the class wraps it in a float32 tensor.
* ``ramp_levels`` (0..255), ``ramp_f32`` / ``ramp_f64``: ``lpips.tensor2im`` of a grey ramp built
  as float32 / float64 loader tensors (shows the truncation ``v -> v - 1``).
* ``trunc_counts_f32`` / ``trunc_counts_f64`` [256]: per input level, how many channel values
  of all images read came back as ``v - 1`` from ``tensor2im``; ``trunc_total`` [2]: channel
  values read (f32, f64 counts are over the same total).
* ``versions``: library versions; ``SET__item_sha256``: :func:`item_sha256` of each item (the
  test compares item by item where the mini set built on another machine differs in a few images).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
OUT = HERE / "official.npz"
CAP = 300
METRICS = ("l2_lab", "ssim_lab", "l2_rgb", "ssim_rgb")


def _install_compare_ssim() -> None:
    import skimage.measure
    from skimage.metrics import structural_similarity

    def compare_ssim(p0, p1, data_range, multichannel):
        return structural_similarity(p0, p1, data_range=data_range, channel_axis=-1 if multichannel else None)

    skimage.measure.compare_ssim = compare_ssim


def _loader():
    import torchvision.transforms as T

    return T.Compose([T.Resize(64), T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])


def _load(path: Path, transform):
    from PIL import Image

    img = Image.open(path).convert("RGB")
    t32 = transform(img)[None]
    u8 = np.asarray(img, dtype=np.float64).transpose(2, 0, 1)[None]
    t64 = torch.from_numpy((u8 / 255.0 - 0.5) / 0.5)
    return t32, t64, np.asarray(img)


class Official:
    def __init__(self) -> None:
        import lpips

        self.lp = lpips
        self.nets = {
            "l2_lab": lpips.L2(use_gpu=False, colorspace="Lab"),
            "ssim_lab": lpips.DSSIM(use_gpu=False, colorspace="Lab"),
            "l2_rgb": lpips.L2(use_gpu=False, colorspace="RGB"),
            "ssim_rgb": lpips.DSSIM(use_gpu=False, colorspace="RGB"),
        }

    def dist(self, m: str, a: torch.Tensor, b: torch.Tensor) -> float:
        out = self.nets[m].forward(a, b).data.cpu().numpy()
        assert out.shape == (1,), out.shape  # scalars per item: the JND nested-list defect does not apply
        return float(out[0])

    def raw(self, m: str, a: torch.Tensor, b: torch.Tensor) -> float:
        lp = self.lp
        if m == "l2_rgb":
            return np.nan
        if m == "ssim_rgb":
            return float(lp.dssim(1.0 * lp.tensor2im(a.data), 1.0 * lp.tensor2im(b.data), range=255.0))
        la = lp.tensor2np(lp.tensor2tensorlab(a.data, to_norm=False))
        lb = lp.tensor2np(lp.tensor2tensorlab(b.data, to_norm=False))
        fn = lp.l2 if m == "l2_lab" else lp.dssim
        return float(fn(la, lb, range=100.0))


def score_2afc(d0: np.ndarray, d1: np.ndarray, gts: np.ndarray) -> float:
    scores = (d0 < d1) * (1.0 - gts) + (d1 < d0) * gts + (d1 == d0) * 0.5
    return float(np.mean(scores))


def score_jnd(ds: np.ndarray, sames: np.ndarray, voc_ap) -> float:
    idx = np.argsort(ds)
    s = sames[idx]
    tp = np.cumsum(s)
    fp = np.cumsum(1 - s)
    fn = np.sum(s) - tp
    return float(voc_ap(tp / (tp + fn), tp / (tp + fp)))


class Counter:
    def __init__(self, lp) -> None:
        self.lp = lp
        self.f32 = np.zeros(256, np.int64)
        self.f64 = np.zeros(256, np.int64)
        self.total = 0

    def add(self, u8: np.ndarray, t32: torch.Tensor, t64: torch.Tensor) -> None:
        for t, acc in ((t32, self.f32), (t64, self.f64)):
            back = self.lp.tensor2im(t).astype(np.int64)
            d = u8.astype(np.int64) - back
            assert set(np.unique(d)) <= {0, 1}, np.unique(d)
            acc += np.bincount(u8[d == 1].ravel(), minlength=256)
        self.total += u8.size


def run_set(root: Path, kind: str, cat: str, off: Official, cnt: Counter, transform, out: dict) -> None:
    d = root / kind / "val" / cat
    name = f"{kind}_val_{cat}"
    stems = sorted(p.stem for p in (d / "p0").glob("*.png"))[:CAP]
    out[f"{name}__stems"] = np.array(stems)
    imgs, lab_key = set_files(kind)
    out[f"{name}__item_sha256"] = np.array(item_sha256(d, stems, kind))
    labels = np.array([float(np.load(d / lab_key / f"{s}.npy").reshape(())) for s in stems])
    out[f"{name}__{lab_key}"] = labels
    lab32 = labels.astype(np.float32).astype(np.float64)
    cols: dict = {}
    for s in stems:
        t = {k: _load(d / k / f"{s}.png", transform) for k in imgs}
        for k in imgs:
            cnt.add(t[k][2], t[k][0], t[k][1])
        pairs = {"d0": ("ref", "p0"), "d1": ("ref", "p1")} if kind == "2afc" else {"d": ("p0", "p1")}
        for m in METRICS:
            for j, inp in enumerate(("f32", "f64")):
                for dk, (a, b) in pairs.items():
                    cols.setdefault(f"{name}__{m}__{inp}__{dk}", []).append(off.dist(m, t[a][j], t[b][j]))
                    if m != "l2_rgb":
                        raw_key = "raw" + dk[1:]
                        cols.setdefault(f"{name}__{m}__{inp}__{raw_key}", []).append(off.raw(m, t[a][j], t[b][j]))
    for k, v in cols.items():
        out[k] = np.asarray(v, dtype=np.float64)
    for m in METRICS:
        for inp in ("f32", "f64"):
            p = f"{name}__{m}__{inp}"
            if kind == "2afc":
                sc = score_2afc(out[p + "__d0"], out[p + "__d1"], lab32)
                ties = int(np.sum(out[p + "__d0"] == out[p + "__d1"]))
            else:
                sc = score_jnd(out[p + "__d"], lab32, off.lp.voc_ap)
                ties = len(out[p + "__d"]) - len(np.unique(out[p + "__d"]))
            out[p + "__score"] = np.float64(sc)
            print(f"{name:24s} {m:8s} {inp}: score {100 * sc:7.3f}  ties {ties}")


def ramp(lp) -> tuple[np.ndarray, np.ndarray]:
    lv = np.arange(256, dtype=np.float64)
    x64 = np.broadcast_to(lv, (3, 1, 256)).copy()
    t32 = torch.from_numpy(((x64.astype(np.float32) / np.float32(255)) - np.float32(0.5)) / np.float32(0.5))[None]
    t64 = torch.from_numpy((x64 / 255.0 - 0.5) / 0.5)[None]
    return lp.tensor2im(t32)[0, :, 0].astype(np.int64), lp.tensor2im(t64)[0, :, 0].astype(np.int64)


def set_files(kind: str) -> tuple[tuple[str, ...], str]:
    """The image folders and the label folder of an item of a ``kind`` ("2afc" or "jnd") set."""
    return (("ref", "p0", "p1"), "judge") if kind == "2afc" else (("p0", "p1"), "same")


def item_sha256(d: Path, stems, kind: str) -> list[str]:
    """Per item (stem) of the ``kind`` set folder ``d``: the first 16 hex digits of the SHA-256 over
    the bytes of its image files (:func:`set_files` order) and its label file."""
    import hashlib

    imgs, lab_key = set_files(kind)
    out = []
    for s in stems:
        h = hashlib.sha256()
        for k in imgs:
            h.update((d / k / f"{s}.png").read_bytes())
        h.update((d / lab_key / f"{s}.npy").read_bytes())
        out.append(h.hexdigest()[:16])
    return out


def main(root: Path) -> None:
    import lpips
    import PIL
    import skimage
    import torchvision

    _install_compare_ssim()
    off = Official()
    cnt = Counter(lpips)
    transform = _loader()
    out: dict = {}
    sets = []
    for kind in ("2afc", "jnd"):
        for cat in sorted(p.name for p in (root / kind / "val").iterdir() if p.is_dir()):
            run_set(root, kind, cat, off, cnt, transform, out)
            sets.append(f"{kind}_val_{cat}")
    out["sets"] = np.array(sets)
    out["ramp_levels"] = np.arange(256)
    out["ramp_f32"], out["ramp_f64"] = ramp(lpips)
    out["trunc_counts_f32"], out["trunc_counts_f64"] = cnt.f32, cnt.f64
    out["trunc_total"] = np.array([cnt.total, cnt.total])
    out["versions"] = np.array([f"lpips {getattr(lpips, '__version__', '0.1.4')}", f"torch {torch.__version__}",
                                f"torchvision {torchvision.__version__}", f"scikit-image {skimage.__version__}",
                                f"numpy {np.__version__}", f"Pillow {PIL.__version__}"])
    for tag, c in (("f32", cnt.f32), ("f64", cnt.f64)):
        lv = np.flatnonzero(c)
        span = f"{lv.min()}..{lv.max()}" if lv.size else "-"
        print(f"truncated {tag}: {c.sum()} / {cnt.total} channel values, levels {span}")
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/refmini"))
