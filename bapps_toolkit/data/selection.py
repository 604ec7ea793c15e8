"""Which sets a dataset selection names: one rule for ``bapps evaluate``, ``bapps train`` and the loaders.

:func:`select_keys` is the only implementation; :func:`bapps_toolkit.data.layout.expand_datasets`
(training, the data loaders) and :func:`bapps_toolkit.evaluate.select_sets` (evaluation) call it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import DataError

#: The set kinds, in key order.
KINDS = ("2afc", "jnd")


@dataclass(frozen=True)
class Selection:
    """The keys a selection chose, and what a short form chose that its text does not say.

    Attributes:
        keys: the chosen keys, in the order of the sets present.
        notes: one line per selector that matched sets of both kinds
            (``"val/cnn selected 2afc/val/cnn, jnd/val/cnn"``).
    """

    keys: list[str]
    notes: list[str] = field(default_factory=list)


def _parts(selector: object) -> list[str]:
    if not isinstance(selector, str):
        raise TypeError(f"datasets entries must be strings, got {type(selector).__name__}")
    return [p.lower() for p in selector.strip().split("/") if p]


def matches(parts: Sequence[str], key: str) -> bool:
    """Whether the selector ``parts`` (lower case) name the set ``key`` (the rule of :func:`select_keys`)."""
    have = key.lower().split("/")
    n = len(parts)
    return bool(parts) and (have[:n] == list(parts) or have[1:1 + n] == list(parts))


def _no_hit(item: str, parts: Sequence[str], avail: Sequence[str], valid: Sequence[str], kinds: Sequence[str],
            where: str) -> str:
    """The message for a selector that names no present set: unknown, or known but absent."""
    shown = "/".join(k.upper() for k in kinds)
    valid = list(dict.fromkeys(k for k in valid if k.split("/", 1)[0] in kinds))
    if not any(matches(parts, k) for k in valid):
        return (f"unknown {shown} dataset {item!r}; valid: {', '.join(valid)} "
                "(or short forms like 'val/cnn', 'val')")
    return f"dataset {item!r} is not present in {where} (present: {', '.join(avail) or 'none'})"


def select_keys(present: Sequence[str], selectors: str | Sequence[str] | None, *,
                kinds: Sequence[str] = KINDS, default_split: str | None = "val",
                known: Sequence[str] = (), where: str = "the source") -> Selection:
    """The keys of ``present`` that ``selectors`` name: the one dataset-selection rule.

    A set key is ``kind/split/category`` (``2afc/val/cnn``). A selector, compared without regard
    to case, names a key when its ``/``-separated parts equal

    * the key's leading parts: ``2afc``, ``jnd/val``, ``2afc/val/cnn``; or
    * the parts after the kind: ``val``, ``train``, ``val/cnn``, ``train/mix``.

    Only keys of ``kinds`` are considered (training reads 2AFC sets only), so ``val/cnn`` names
    ``2afc/val/cnn`` and ``jnd/val/cnn`` where both kinds are wanted and present, and
    ``2afc/val/cnn`` alone where only 2AFC is; a selector that names keys of both kinds gets a
    note saying which. Several selectors add up; duplicates are dropped.

    Args:
        present: the keys the source holds, in the order the result keeps.
        selectors: one selector, a list of them, or ``None`` for the default.
        kinds: the kinds of set that may be chosen.
        default_split: what ``None`` chooses: every set of that split (evaluation: ``"val"``,
            the paper's Table 5; training sets only by name), or every set when ``None``.
        known: keys that exist somewhere (BAPPS's), so that a selector naming none of them and
            none present is reported as unknown rather than as absent.
        where: the source, for messages.

    Returns:
        The chosen keys (in the order of ``present``) and the notes.

    Raises:
        DataError: nothing of ``kinds`` (of the default split) is present, a selector names no
            present set, or ``selectors`` is an empty list.
        TypeError: a selector is not a string.

    Example:
        >>> select_keys(["2afc/val/cnn", "jnd/val/cnn"], "val/cnn").keys
        ['2afc/val/cnn', 'jnd/val/cnn']
        >>> select_keys(["2afc/val/cnn", "jnd/val/cnn"], "val/cnn", kinds=["2afc"]).keys
        ['2afc/val/cnn']
    """
    avail = [k for k in present if k.split("/", 1)[0] in kinds]
    shown = "/".join(k.upper() for k in kinds)
    if selectors is None:
        chosen = [k for k in avail if default_split is None or k.split("/")[1:2] == [default_split]]
        if not chosen:
            which = f"{default_split} " if default_split else ""
            raise DataError(f"no {shown} {which}sets in {where} (found: {', '.join(present) or 'none'})"
                            + ("; train sets are used only when named, e.g. datasets=['train']"
                               if default_split == "val" else ""))
        return Selection(chosen)
    items = [selectors] if isinstance(selectors, str) else list(selectors)
    if not items:
        raise DataError("datasets is an empty list; pass None for the default sets")
    picked: set[str] = set()
    notes = []
    for item in items:
        parts = _parts(item)
        hits = [k for k in avail if matches(parts, k)]
        if not hits:
            raise DataError(_no_hit(item, parts, avail, [*known, *present], kinds, where))
        if len({k.split("/", 1)[0] for k in hits}) > 1:
            notes.append(f"{item} selected {', '.join(hits)}")
        picked.update(hits)
    return Selection([k for k in avail if k in picked], notes)


__all__ = ["KINDS", "Selection", "matches", "select_keys"]
