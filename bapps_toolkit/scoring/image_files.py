"""The image files of a folder, and two folders' files paired by name."""
from __future__ import annotations

from pathlib import Path

from .._io import PathLike
from ..errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")



# Files

def list_images(folder: PathLike) -> dict[str, Path]:
    """``{file name: path}`` of the image files directly in ``folder`` (hidden files skipped)."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"folder {d} does not exist" if not d.exists() else f"{d} is not a folder")
    files = {p.name: p for p in sorted(d.iterdir())
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS}
    if not files:
        raise DataError(f"folder {d} holds no image files ({', '.join(IMAGE_EXTS)})")
    return files


def _name_list(names: set[str], limit: int = 10) -> str:
    ordered = sorted(names)
    more = f" … and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def pair_dirs(dir0: PathLike, dir1: PathLike) -> list[tuple[str, Path, Path]]:
    """Pairs ``(name, dir0/name, dir1/name)``; an error lists the names missing on either side."""
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


__all__ = ["IMAGE_EXTS", "list_images", "pair_dirs"]
