"""Importing a plugin from a ``.py`` file the user named (metric, network and benchmark plugins).

Only a file the user typed reaches this module: a plugin spec recorded in a data file is
refused or checked before (:mod:`bapps_toolkit.metrics.plugin_trust`).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["PluginFileError", "import_python_file"]


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
