"""Weight specs ``NET=PATH`` / ``NET=random``: the one syntax every command takes for weights.

``parse_weight_specs(["alex=w.pth", "vgg=random"], ...)`` gives ``{"alex": "w.pth", "vgg":
"random"}``; ``random`` is allowed for backbone weights only. Errors start with the name of
what is given (the ``option``) and show the expected form.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import UsageError
from .nets import NETS


def _nets() -> str:
    return ", ".join(NETS)


def _form(allow_random: bool) -> str:
    return "NET=PATH or NET=random" if allow_random else "NET=PATH"


def parse_weight_specs(items: Sequence[str], option: str, *, allow_random: bool) -> dict[str, str]:
    """``["alex=PATH", "vgg=random"]`` -> ``{"alex": "PATH", "vgg": "random"}``.

    Errors start with ``option`` (the name of what is given): missing ``=`` (a bare ``random``
    is told to write ``NET=random``), unknown network, the same network twice, a file that does
    not exist, ``random`` where it is not allowed.
    """
    out: dict[str, str] = {}
    for item in items or []:
        net, sep, value = str(item).partition("=")
        net = net.strip().lower()
        if not sep and net == "random" and allow_random:
            raise UsageError(f"{option} {item}: name the network, as NET=random (e.g. alex=random); "
                             f"NET is one of {_nets()}")
        if not sep or not net or not value:
            raise UsageError(f"{option} {item}: expected {_form(allow_random)} (NET one of {_nets()}), "
                             f"e.g. alex=weights.pth")
        if net not in NETS:
            raise UsageError(f"{option} {item}: unknown network {net}; use one of {_nets()}")
        if net in out:
            raise UsageError(f"{option}: network {net} given twice")
        if value == "random":
            if not allow_random:
                raise UsageError(f"{option} {item}: random is only allowed for backbone weights")
        elif not Path(value).is_file():
            raise FileNotFoundError(f"{option} {item}: weight file {value} does not exist")
        out[net] = value
    return out


__all__ = ["NETS", "parse_weight_specs"]
