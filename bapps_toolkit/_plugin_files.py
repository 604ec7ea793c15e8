"""Importing a plugin from a ``.py`` file the user named (metric, network and benchmark plugins).

Only a file the user typed reaches this module: a plugin spec recorded in a data file is
refused or checked before (:mod:`bapps_toolkit.metrics.plugin_trust`).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["PluginFileError", "import_python_file", "is_file_spec", "resolve_spec"]


class PluginFileError(Exception):
    """A plugin file that does not exist, cannot be loaded, or fails while it is imported."""


def import_python_file(path: Path, prefix: str, *, reuse: bool = False) -> ModuleType:
    """Import ``path`` as a module named ``<prefix>_<hash of the resolved path>``.

    Args:
        path: The ``.py`` file.
        prefix: The module-name prefix, e.g. ``"_bapps_plugin"``.
        reuse: return the module imported before for the same file instead of importing the
            file's current code again.

    Returns:
        The imported module.

    Raises:
        PluginFileError: the file does not exist, is not loadable Python, or raised while
            importing (the message names the exception; the module is not kept).
    """
    if not path.is_file():
        raise PluginFileError(f"file {path} does not exist")
    mod_name = f"{prefix}_{abs(hash(str(path.resolve())))}"
    if reuse and mod_name in sys.modules:
        return sys.modules[mod_name]
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginFileError(f"{path} cannot be loaded as a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[mod_name]
        raise PluginFileError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def is_file_spec(spec: str) -> bool:
    """True for ``path/to/file.py:attr`` (the plugin lives in a file, not an importable module).

    Args:
        spec: a plugin spec.

    Returns:
        Whether the part before the last ``:`` is a ``.py`` file or holds a path separator.

    Example:
        >>> is_file_spec("plugins/mine.py:Mine"), is_file_spec("mypkg.metrics:Mine")
        (True, False)
    """
    where, sep, _attr = str(spec).rpartition(":")
    return bool(sep) and (where.endswith(".py") or "/" in where or "\\" in where)


def resolve_spec(spec: str, prefix: str, *, expected: str, reuse: bool = False) -> object:
    """The object that ``package.module:attr`` or ``path/to/file.py:attr`` names.

    Entry points are the caller's concern (each plugin kind has its own group).

    Args:
        spec: the spec the user typed.
        prefix: the module-name prefix for a file spec (:func:`import_python_file`).
        expected: the accepted forms in words, for the message on a malformed spec.
        reuse: for a file spec, return the module imported before for the same file.

    Returns:
        The attribute (dotted attributes are followed).

    Raises:
        PluginFileError: the spec is malformed, its file or module does not import, or the
            attribute is missing; the message does not repeat the spec (callers prefix it).
    """
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise PluginFileError(f"expected {expected}")
    if is_file_spec(spec):
        obj: object = import_python_file(Path(where), prefix, reuse=reuse)
    else:
        try:
            obj = importlib.import_module(where)
        except Exception as exc:
            raise PluginFileError(f"importing {where!r} failed: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginFileError(f"{where!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj
