"""The settings of a judgment study: their defaults and their validation.

Settings are fixed when a study database is created (:func:`~bapps_toolkit.judge.store.create_study`)
and stored in its ``config`` table.
"""
from __future__ import annotations

from typing import Any

from ..errors import UsageError

DEFAULTS: dict[str, Any] = {
    "judgments_per_item": 5, "items_per_rater": 0, "sentinel_share": 0.1, "seed": 0,
    "break_every": 50, "display_px": 256, "scaling": "nearest", "reassign_after_s": 900,
    "jnd_ref_ms": 1000, "jnd_blank_ms": 250, "jnd_dist_ms": 1000,
    "instructions": ("2AFC: which of the two images (left or right) is more similar to the middle "
                     "reference? Keys: A or Left arrow = left, L or Right arrow = right.\n"
                     "JND: an image is shown for a second, then a blank, then a second image. "
                     "Were they the same? Keys: S = same, D = different."),
}


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` completed with the defaults and checked.

    Args:
        cfg: study settings by name; ``None`` values take the default.

    Returns:
        Every setting of :data:`DEFAULTS`, with the given values.

    Raises:
        ValueError: an unknown setting or a value out of its range (names the setting).
    """
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise UsageError(f"unknown study settings: {', '.join(sorted(unknown))}")
    out = {**DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    for k in ("judgments_per_item", "break_every", "display_px", "jnd_ref_ms", "jnd_blank_ms", "jnd_dist_ms"):
        if not isinstance(out[k], int) or out[k] < 1:
            raise UsageError(f"{k} must be a positive integer, got {out[k]!r}")
    if not isinstance(out["items_per_rater"], int) or out["items_per_rater"] < 0:
        raise UsageError(f"items_per_rater must be >= 0 (0 = every item), got {out['items_per_rater']!r}")
    if not 0.0 <= float(out["sentinel_share"]) < 0.5:
        raise UsageError(f"sentinel_share must be in [0, 0.5), got {out['sentinel_share']!r}")
    r = out["reassign_after_s"]
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1e9:
        raise UsageError(f"reassign_after_s must be seconds >= 0 (0 = never reassign), got {r!r}")
    if out["scaling"] not in ("nearest", "bilinear"):
        raise UsageError(f"scaling must be 'nearest' or 'bilinear', got {out['scaling']!r}")
    return out
