"""The LPIPS backbone names: one list and one validator for every module that takes ``net``.

``backbones`` (building the trunk) and ``hub`` (finding its ImageNet weights) both call
:func:`check_net`; the error it raises is both a :class:`ValueError` (a bad argument) and a
:class:`~bapps_toolkit.errors.WeightsError` (no weights exist for that name), so callers that
catch either keep working.
"""

from __future__ import annotations

from ..errors import WeightsError

#: The three LPIPS backbones, in the paper's order.
NETS: tuple[str, ...] = ("alex", "vgg", "squeeze")
#: Other spellings accepted for a backbone (torchvision's name for VGG).
NET_ALIASES: dict[str, str] = {"vgg16": "vgg"}


class UnknownNetError(WeightsError, ValueError):
    """A backbone name that is not one of :data:`NETS`."""


def check_net(net: str) -> str:
    """Validate a backbone name (``alex``, ``vgg``/``vgg16`` or ``squeeze``, any case); return the key."""
    key = str(net).lower()
    key = NET_ALIASES.get(key, key)
    if key not in NETS:
        raise UnknownNetError(f"unknown backbone {net!r}; expected one of {', '.join(NETS)}")
    return key


__all__ = ["NETS", "UnknownNetError", "check_net"]
