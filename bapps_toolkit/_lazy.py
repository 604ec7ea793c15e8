"""Lazy public names of a package (PEP 562).

Importing the package costs nothing until a name is used: ``bapps --help`` and argument errors never
import torch or pandas.
"""
from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(package: str, lazy: Mapping[str, str],
               namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, importing each name on first use.

    A name of ``lazy`` (name -> relative module) is imported on first use and then kept in
    ``namespace`` (the package's ``globals()``).
    """

    def getattr_(name: str) -> Any:
        if name not in lazy:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(lazy[name], package), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return getattr_, dir_


class _Package(types.ModuleType):
    """A package whose public function ``name`` shares its name with a submodule ``name``.

    When the submodule is imported (which binds it as the package's attribute), the attribute stays
    the function, as with an eager ``from .name import name``.
    """

    _shadowed: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self)._shadowed and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


def keep_functions(package: str, names: Sequence[str]) -> None:
    """Keep the functions ``names`` of ``package`` bound when their same-named submodules load."""
    cls = type("_Package", (_Package,), {"_shadowed": frozenset(names), "__doc__": _Package.__doc__})
    sys.modules[package].__class__ = cls
