"""Plugin specs as text: which names are plugin specs, where their file is, how labels show them.

No torch here (the training configuration checks ``net`` with these before anything heavy is
imported). A spec is ``package.module:attr``, ``path/to/file.py:attr`` or an entry-point name of
the group :data:`ENTRY_POINT_GROUP`; :mod:`.plugins` loads what it names.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

from .._plugin_files import is_file_spec
from .nets import NET_ALIASES, NETS

#: Entry-point group through which an installed distribution adds metric (and network) names.
ENTRY_POINT_GROUP = "bapps_toolkit.metrics"


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """``{name: entry point}`` of the :data:`ENTRY_POINT_GROUP` group (first one wins)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name.lower(), ep)
    return found


def is_plugin_spec(name: str) -> bool:
    """True for ``module:attr`` / ``file.py:attr`` specs and entry-point names."""
    return ":" in name or name.lower() in entry_points()


def is_plugin_net(net: str) -> bool:
    """Whether ``net`` is a plugin spec naming your own network (:mod:`.plugin_net`).

    True when ``net`` is not one of the LPIPS backbones (:data:`~.nets.NETS` or an alias).
    """
    key = str(net).lower()
    return NET_ALIASES.get(key, key) not in NETS and is_plugin_spec(str(net))


def normalise_plugin_net(spec: str) -> str:
    """A ``file.py:attr`` spec with its file made absolute; other specs unchanged.

    So a run resumes, and its checkpoint loads, from another working directory.
    """
    if not is_file_spec(spec):
        return str(spec)
    where, _, attr = str(spec).rpartition(":")
    return f"{Path(where).expanduser().resolve()}:{attr}"


def short_plugin_name(spec: str) -> str:
    """The spec as labels show it: ``my_net.py:Net`` for a file, the spec itself otherwise."""
    if not is_file_spec(spec):
        return str(spec)
    where, _, attr = str(spec).rpartition(":")
    return f"{Path(where).name}:{attr}"


__all__ = ["ENTRY_POINT_GROUP", "entry_points", "is_plugin_spec", "is_file_spec", "is_plugin_net",
           "normalise_plugin_net", "short_plugin_name"]
