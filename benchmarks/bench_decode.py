"""PNG decoders on the toolkit's path: milliseconds per image of ``read_image`` with each of its
decoders (PIL; libspng through imagecodecs, the ``fast-decode`` extra), of PIL alone (open,
``convert('RGB')``, array) and of the other PNG decoders where they are installed (pyspng,
OpenCV's ``imdecode``, imagecodecs' libpng ``png_decode``), with whether each gives PIL's pixels
on these files. Process CPU time and wall time, best of 5 passes over the same files (the
``bench_score.py`` pairs: smooth patterns plus noise, both folders). Also printed by
``bench_score.py`` before its pairs/s table.

    python benchmarks/bench_decode.py [--sizes 256 512] [--files 32]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image


@contextlib.contextmanager
def png_decoder_env(value: str | None) -> Iterator[None]:
    """``BAPPS_PNG_DECODER`` set to ``value`` (None: as it was) for the block."""
    from bapps_toolkit.data.fast_png import DECODER_ENV

    saved = os.environ.get(DECODER_ENV)
    if value is not None:
        os.environ[DECODER_ENV] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(DECODER_ENV, None)
        else:
            os.environ[DECODER_ENV] = saved


def _pil_array(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _decoders() -> dict[str, Callable[[Path], np.ndarray | None]]:
    """Name → function(path) → uint8 RGB, for the toolkit's reader and every PNG decoder here."""
    from bapps_toolkit.data.fast_png import png_decoder
    from bapps_toolkit.scoring.pair_stream import read_image

    def toolkit(env: str) -> Callable[[Path], np.ndarray]:
        def run(p: Path) -> np.ndarray:
            with png_decoder_env(env):
                return read_image(p)
        return run

    out: dict[str, Callable[[Path], np.ndarray | None]] = {"toolkit read_image, PIL": toolkit("pil")}
    if png_decoder() != "pil":
        out["toolkit read_image, imagecodecs (chosen)"] = toolkit("auto")
    out["PIL alone"] = _pil_array
    with contextlib.suppress(ImportError):
        import imagecodecs  # optional: compared where installed

        out["imagecodecs.spng_decode (libspng)"] = lambda p: imagecodecs.spng_decode(p.read_bytes())
        out["imagecodecs.png_decode (libpng)"] = lambda p: imagecodecs.png_decode(p.read_bytes())
    with contextlib.suppress(ImportError):
        import pyspng  # optional: compared where installed

        out["pyspng (libspng)"] = lambda p: pyspng.load(p.read_bytes(), "RGB")
    with contextlib.suppress(ImportError):
        import cv2  # optional: compared where installed

        flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
        out["OpenCV imdecode (libpng)"] = lambda p: cv2.imdecode(np.fromfile(p, np.uint8), flags)
    return out


def decoder_table(work: Path, sizes: list[int], files: int) -> None:
    """Milliseconds per image of each decoder on ``files`` generated PNGs per size (both folders)."""
    decoders = _decoders()
    print(f"decoders: ms per image, best of 5 passes (cpu = process CPU time, wall = elapsed); "
          f"'same' = PIL's pixels on every file; load {os.getloadavg()[0]:.2f}")
    print("| decoder | " + " | ".join(f"{s}² cpu | {s}² wall" for s in sizes) + " | same |")
    print("|---|" + "---:|---:|" * len(sizes) + "---|")
    rows: dict[str, list[str]] = {name: [] for name in decoders}
    same = dict.fromkeys(decoders, True)
    for size in sizes:
        from bench_score import make_pairs  # the same generated files as the pairs/s table

        d0, d1 = make_pairs(work / f"dec{size}", files // 2, size, seed=2)
        paths = sorted(d0.iterdir()) + sorted(d1.iterdir())
        reference = [_pil_array(p) for p in paths]
        for name, fn in decoders.items():
            got = [fn(p) for p in paths]
            same[name] &= all(g is not None and g.shape == r.shape and np.array_equal(g, r)
                              for g, r in zip(got, reference, strict=True))
            cpu = wall = float("inf")
            for _ in range(5):
                c0, w0 = time.process_time(), time.perf_counter()
                for p in paths:
                    fn(p)
                cpu = min(cpu, (time.process_time() - c0) / len(paths))
                wall = min(wall, (time.perf_counter() - w0) / len(paths))
            rows[name] += [f"{cpu * 1e3:.3f}", f"{wall * 1e3:.3f}"]
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + f" | {'yes' if same[name] else 'NO'} |")
    print(f"load {os.getloadavg()[0]:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sides")
    ap.add_argument("--files", type=int, default=32, help="PNG files per size (half per folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bapps-bench-decode-") as tmp:
        decoder_table(Path(tmp), args.sizes, args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
