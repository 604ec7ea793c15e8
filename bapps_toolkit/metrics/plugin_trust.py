"""Whether the plugin code that a file names may run: a file is data, never a reason to import code.

A checkpoint or a run card of a plugin network (``bapps train --net SPEC``) records the spec, the
factory's options and where the code came from. Rebuilding the network imports and runs that
code, so it happens only when both hold:

1. **the user names the same spec**: ``trust_plugin=SPEC`` in Python (a string or several),
   ``--trust-plugin SPEC`` on the command line (``--net SPEC`` too for ``bapps train --resume``).
   File specs compare as absolute paths, entry-point names without regard to case.
2. **the code is the code of training time**: the SHA-256 recorded then equals the SHA-256 of the
   file found now: the ``.py`` file of a file spec, the module's file of ``package.module:attr``,
   the file of the entry point's module. The digest covers that one file, not what it imports.
   A checkpoint written before module digests were recorded loads, when trusted, with a warning
   that the code could not be checked; a file spec always has one.

Both are decided before anything is imported: :func:`locate` finds a module's file through the
finders of :data:`sys.meta_path` as the import system would, walking a dotted name one package at
a time through ``submodule_search_locations``, so no package ``__init__`` runs (unlike
:func:`importlib.util.find_spec`, which imports the parents). Nothing here imports torch.
"""
from __future__ import annotations

import importlib.machinery
import importlib.metadata
import shlex
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from .._io import sha256_file
from ..errors import CheckpointError, UsageError
from .plugin_specs import entry_points, is_file_spec, normalise_plugin_net

#: What ``trust_plugin=`` takes: one spec, several, or ``None`` (trust nothing).
TrustArg = str | Iterable[str] | None


class PluginOrigin(TypedDict, total=False):
    """Where a plugin's code came from, as a checkpoint and a run card record it (JSON)."""

    kind: str  # "file", "module" or "entry-point"
    path: str  # file spec: the absolute path of the .py file
    module: str  # module spec / entry point: the module's dotted name
    file: str  # module spec / entry point: the module's file, where it has one
    sha256: str  # SHA-256 of ``path`` / ``file``
    value: str  # entry point: its value, ``module:attr``
    distribution: str
    version: str


@dataclass(frozen=True)
class CodeLocation:
    """The code a spec names, found without importing it.

    Fields: ``kind`` (``file``, ``module``,
    ``entry-point``), the module's dotted name (empty for a file spec), its file (``None`` for a
    module built into the interpreter) and, for an entry point, its value.
    """

    kind: str
    module: str
    file: Path | None
    value: str = ""


class PluginNotFound(UsageError):
    """The code a spec names cannot be found (the message names the spec)."""


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _module_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """The spec the import system would use for module ``name``, found without executing code."""
    known = sys.modules.get(name)
    if known is not None:
        return getattr(known, "__spec__", None)
    parent, _, _ = name.rpartition(".")
    path: list[str] | None = None
    if parent:
        above = _module_spec(parent)
        if above is None or above.submodule_search_locations is None:
            return None
        path = list(above.submodule_search_locations)
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        found: importlib.machinery.ModuleSpec | None = find(name, path, None)
        if found is not None:
            return found
    return None


def module_file(name: str) -> Path | None:
    """The file module ``name`` is (or would be) imported from, found without importing it.

    ``None`` for a module built into the interpreter. :class:`PluginNotFound` when there is none.
    """
    if not _dotted(name):
        raise PluginNotFound(f"{name!r} is not a module name (dotted Python identifiers)")
    known = sys.modules.get(name)
    if known is not None and getattr(known, "__file__", None):
        return Path(str(known.__file__)).resolve()
    spec = _module_spec(name)
    if spec is None:
        raise PluginNotFound(f"no module named {name!r} on this Python path")
    if spec.has_location and spec.origin:
        return Path(spec.origin).resolve()
    frozen = getattr(spec.loader_state, "filename", None)  # a frozen stdlib module: its source file
    return Path(frozen).resolve() if frozen else None


def locate(spec: str) -> CodeLocation:
    """Where the code of ``spec`` is (see module); :class:`PluginNotFound` naming it otherwise."""
    spec = str(spec)
    ep = entry_points().get(spec.lower())
    if ep is not None:
        return CodeLocation("entry-point", ep.module, module_file(ep.module), value=ep.value)
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not _dotted(attr):
        raise PluginNotFound(f"{spec!r} is not a plugin spec (module:attr, path/to/file.py:attr or an "
                             "entry-point name)")
    if is_file_spec(spec):
        if "\x00" in where:
            raise PluginNotFound(f"{spec!r}: a file name with a NUL character")
        return CodeLocation("file", "", Path(where).expanduser().resolve())
    return CodeLocation("module", where, module_file(where))


def _distribution_of(module_name: str) -> dict[str, str]:
    top = module_name.split(".", 1)[0]
    dists = importlib.metadata.packages_distributions().get(top) or []
    if not dists:
        return {}
    try:
        return {"distribution": dists[0], "version": importlib.metadata.version(dists[0])}
    except importlib.metadata.PackageNotFoundError:
        return {"distribution": dists[0]}


def code_origin(spec: str) -> PluginOrigin:
    """What a checkpoint records of ``spec``'s code (no import).

    Its kind, file and SHA-256, and the distribution and version of a module or entry point where known.
    :class:`PluginNotFound` when the code cannot be found.
    """
    loc = locate(spec)
    if loc.kind == "file":
        if loc.file is None or not loc.file.is_file():
            raise PluginNotFound(f"{spec!r}: file {loc.file} does not exist")
        return {"kind": "file", "path": str(loc.file), "sha256": sha256_file(loc.file)}
    out: PluginOrigin = {"kind": loc.kind, "module": loc.module}
    if loc.kind == "entry-point":
        out["value"] = loc.value
        ep = entry_points()[str(spec).lower()]
        if ep.dist is not None:
            out.update({"distribution": ep.dist.metadata["Name"], "version": ep.dist.version})
    else:
        out.update(_distribution_of(loc.module))  # type: ignore[typeddict-item]
    if loc.file is not None and loc.file.is_file():
        out.update({"file": str(loc.file), "sha256": sha256_file(loc.file)})
    return out


def _key(spec: str) -> str:
    spec = str(spec)
    if spec.lower() in entry_points():
        return spec.lower()
    try:
        return normalise_plugin_net(spec)
    except (OSError, ValueError, RuntimeError):
        return spec


def trusted_specs(trust: TrustArg) -> frozenset[str]:
    """The specs ``trust`` names, normalised for comparison (file specs absolute)."""
    if trust is None:
        return frozenset()
    items = [trust] if isinstance(trust, str) else list(trust)
    return frozenset(_key(str(t)) for t in items if str(t))


def is_trusted(spec: str, trusted: frozenset[str]) -> bool:
    """True when ``spec`` is one of ``trusted`` (from :func:`trusted_specs`)."""
    return _key(spec) in trusted


def how_to_allow(spec: str, *, resume: bool = False) -> str:
    """The sentence that says how a user allows ``spec``."""
    cli = f"--trust-plugin {shlex.quote(spec)}"
    if resume:
        cli = f"--net {shlex.quote(spec)} (or {cli})"
    return (f"if you trust that code, name the spec yourself: {cli} on the bapps command line, or "
            f"trust_plugin={spec!r} in Python")


def _shown(options: Mapping[str, Any] | None) -> str:
    if not options:
        return ""
    text = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return f" with options {text[:300]}{'…' if len(text) > 300 else ''}"


def refusal(where: str, spec: str, origin: Mapping[str, Any], trusted: frozenset[str], *,
            options: Mapping[str, Any] | None = None, resume: bool = False) -> CheckpointError:
    """The error for a file that names code the user did not trust."""
    others = f" (you trusted {', '.join(sorted(trusted))})" if trusted else ""
    unchecked = ""
    if not origin.get("sha256"):
        unchecked = ("; it records no SHA-256 of that file either, which a checkpoint of a file spec always has"
                     if is_file_spec(spec) and spec.lower() not in entry_points() else
                     "; it records no SHA-256 of that code (files of older bapps-toolkit versions do not), so if "
                     "you trust the spec its code is loaded as it is now, unchecked")
    return CheckpointError(
        f"{where}: refusing to import the plugin network {spec!r}{_shown(options)} that this file names: "
        f"a file never decides which code runs{others}{unchecked}; {how_to_allow(spec, resume=resume)}")


def _check_digest(where: str, spec: str, origin: Mapping[str, Any], loc: CodeLocation) -> None:
    recorded = origin.get("sha256")
    if loc.kind == "entry-point" and origin.get("value") and origin.get("value") != loc.value:
        raise CheckpointError(f"{where}: the entry point {spec!r} now names {loc.value!r}, not {origin.get('value')!r} "
                              "as at training time; reinstall the package it was trained with, or train again")
    if loc.file is None:
        return  # a module built into the interpreter: no file to check
    if not loc.file.is_file():
        raise CheckpointError(f"{where}: trained on the plugin network {spec!r}, whose file {loc.file} no longer "
                              "exists; restore it to load this checkpoint")
    if not recorded:
        if loc.kind == "file":
            raise CheckpointError(f"{where}: records no SHA-256 of the plugin network file {loc.file} ({spec!r}); "
                                  "a checkpoint of a file spec always has one: the file is damaged or forged")
        warnings.warn(f"{where}: records no SHA-256 of the code of the plugin network {spec!r} (an older "
                      f"bapps-toolkit wrote it); {loc.file} is used as it is now, unchecked, because you trusted "
                      "the spec", UserWarning, stacklevel=3)
        return
    if sha256_file(loc.file) != recorded:
        raise CheckpointError(f"{where}: the plugin network code {loc.file} ({spec!r}) changed since training "
                              "(SHA-256 differs); restore the file as it was, or train again")


#: Longest plugin spec a file may name.
MAX_SPEC_CHARS = 1024


def check_spec_text(where: str, spec: Any) -> str:
    """``spec`` as text fit for a message.

    A printable string of at most :data:`MAX_SPEC_CHARS`
    characters (a file could otherwise put terminal escape sequences into the error); a
    :class:`CheckpointError` naming ``where`` otherwise.
    """
    if not isinstance(spec, str) or not spec.isprintable() or not 0 < len(spec) <= MAX_SPEC_CHARS:
        shown = repr(spec)[:80] if isinstance(spec, str) else type(spec).__name__
        raise CheckpointError(f"{where}: names the plugin network {shown}, which is not a plugin spec (a printable "
                              f"string of at most {MAX_SPEC_CHARS} characters); refused, nothing imported")
    return spec


def check_plugin_allowed(where: str | Path, spec: str, origin: Mapping[str, Any], trusted: frozenset[str], *,
                         options: Mapping[str, Any] | None = None, resume: bool = False) -> CodeLocation:
    """Decide, before anything is imported, whether the plugin ``spec`` named by a file may be imported.

    ``where`` is that file (see module); returns where its code is.

    Args:
        where: the file (checkpoint, run card) that names the spec, for the messages.
        spec: the spec the file records.
        origin: what the file records of the code (:class:`PluginOrigin`; may be empty).
        trusted: the specs the user named (:func:`trusted_specs`).
        options: the factory options the file records (shown in the refusal).
        resume: word the refusal for ``bapps train --resume`` (which also takes ``--net SPEC``).

    Raises:
        CheckpointError: naming ``where``, the spec and how to allow it, when the user did not
            name the spec; naming the file, when the code cannot be found or its SHA-256 differs
            from the recorded one.
    """
    text = str(where)
    spec = check_spec_text(text, spec)
    if not is_trusted(spec, trusted):
        raise refusal(text, spec, origin, trusted, options=options, resume=resume)
    try:
        loc = locate(spec)
    except PluginNotFound as exc:
        raise CheckpointError(f"{text}: the plugin network {spec!r} it was trained on cannot be found: {exc}") from None
    _check_digest(text, spec, origin, loc)
    return loc


__all__ = ["PluginOrigin", "CodeLocation", "PluginNotFound", "TrustArg", "module_file", "locate", "code_origin",
           "trusted_specs", "is_trusted", "how_to_allow", "refusal", "check_spec_text", "check_plugin_allowed",
           "MAX_SPEC_CHARS"]
