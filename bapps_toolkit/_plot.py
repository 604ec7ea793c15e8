"""matplotlib for the toolkit's figures: imported when a figure is drawn, written atomically.

matplotlib is the optional ``plot`` extra (``pip install 'bapps-toolkit[plot]'``) and slow to
import, so nothing imports it before a figure is asked for; the backend is Agg (files only).
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ._io import PathLike, atomic_path
from .errors import BappsError


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend, imported on first use.

    Returns:
        The ``matplotlib.pyplot`` module.

    Raises:
        BappsError: matplotlib is not installed (the message gives the pip command).
    """
    try:
        import matplotlib
    except ImportError:
        raise BappsError("plotting needs matplotlib: pip install 'bapps-toolkit[plot]' "
                         "(or pip install matplotlib)") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: PathLike, *, dpi: int) -> Path:
    """Write ``fig`` as a PNG to ``out`` (under a temporary name, then renamed) and close it.

    The figure is closed also when writing fails.

    Args:
        fig: a matplotlib figure.
        out: the PNG's path.
        dpi: its resolution.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.
    """
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        pyplot().close(fig)
    return out
