"""The one default-device rule: CUDA when present, else the CPU; an explicit device wins."""
from __future__ import annotations

from typing import Any

import torch


def pick_device(device: Any = None) -> torch.device:
    """``device`` as a :class:`torch.device`; ``None`` or ``"auto"``: ``cuda`` when available, else ``cpu``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
