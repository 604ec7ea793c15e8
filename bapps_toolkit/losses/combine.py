"""Weighted sums of losses and :func:`create_loss`, the one entry point.

Specification strings (parsed with a regular expression, never evaluated)::

    spec   := term ("+" term)*
    term   := [weight "*"] name
    weight := a positive decimal number (``0.1``, ``2``, ``1e-3``)
    name   := a loss name: ``l1`` or any registered metric (``lpips-vgg``, a plugin's name)

so ``"l1+0.1*lpips-vgg"`` is ``1·L1 + 0.1·LPIPS-VGG``. Whitespace is ignored; a name may appear
once. There is no subtraction (``-`` belongs to names such as ``ms-ssim``) and no negative
weight: every term is a loss to be lowered.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..metrics import check_reduction, list_metrics, reduce
from .base import L1Loss, Loss, MetricLoss

_NAME = r"[a-z0-9][a-z0-9._-]*"
_WEIGHT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
_TERM = re.compile(rf"^(?:(?P<w>{_WEIGHT})\*)?(?P<name>{_NAME})$")


def list_losses() -> list[str]:
    """Names :func:`create_loss` accepts as terms: ``l1`` and every registered metric."""
    return sorted({"l1", *list_metrics()})


def parse_loss_spec(spec: str) -> dict[str, float]:
    """``"l1+0.1*lpips-vgg"`` → ``{"l1": 1.0, "lpips-vgg": 0.1}`` (order kept).

    Raises ``ValueError`` naming the offending term: empty term, malformed weight, unknown
    name (the message lists the known ones), duplicate name, weight not finite and > 0.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"loss specification must be a non-empty string, got {spec!r}")
    known = set(list_losses())
    terms: dict[str, float] = {}
    for raw in spec.lower().replace(" ", "").split("+"):
        m = _TERM.match(raw)
        if not m:
            raise UsageError(f"loss specification {spec!r}: cannot read term {raw!r} "
                             f"(expected NAME or WEIGHT*NAME, e.g. 0.1*lpips-vgg)")
        name = m.group("name")
        weight = float(m.group("w")) if m.group("w") else 1.0
        if name not in known:
            raise UsageError(f"loss specification {spec!r}: unknown loss {name!r}; known: {', '.join(sorted(known))}")
        if name in terms:
            raise UsageError(f"loss specification {spec!r}: {name!r} appears twice")
        if not (math.isfinite(weight) and weight > 0):
            raise UsageError(f"loss specification {spec!r}: weight of {name!r} must be finite and > 0, got {weight}")
        terms[name] = weight
    return terms


def _format_weight(w: float) -> str:
    return f"{w:g}"


class CombinedLoss(Loss):
    """``Σ_k w_k · loss_k(input, target)``, each term computed per image, then reduced.

    Args:
        terms: ``{name: weight}`` (names and weights as in :func:`parse_loss_spec`).
        reduction, input_range: as for every loss (applied to all terms).
        options: ``{name: {metric option: value}}`` for individual terms.
    """

    def __init__(self, terms: Mapping[str, float], *, reduction: str = "mean",
                 input_range: Sequence[float] = (-1.0, 1.0),
                 options: Mapping[str, Mapping[str, object]] | None = None):
        super().__init__(reduction=reduction, input_range=input_range)
        if not terms:
            raise UsageError("CombinedLoss needs at least one term")
        options = dict(options or {})
        unused = sorted(set(options) - set(terms))
        if unused:
            raise UsageError(f"options given for {unused}, which are not terms of the loss ({sorted(terms)})")
        self.weights: dict[str, float] = {}
        self.losses = nn.ModuleDict()
        for name, w in terms.items():
            weight = float(w)
            if not (math.isfinite(weight) and weight > 0):
                raise UsageError(f"weight of {name!r} must be finite and > 0, got {w!r}")
            self.weights[name] = weight
            self.losses[name.replace(".", "_")] = _single(name, "none", self.input_range, dict(options.get(name, {})))
        parts = [n if w == 1.0 else f"{_format_weight(w)}*{n}" for n, w in self.weights.items()]
        self.name = "+".join(parts)
        mods = self._modules_list()
        self.channels_in = tuple(c for c in (1, 3) if all(c in m.channels_in for m in mods))
        self.min_size = max(int(m.min_size) for m in mods)

    def _modules_list(self) -> list[Loss]:
        return [m for m in self.losses.values() if isinstance(m, Loss)]

    @property
    def calibrated(self) -> bool:
        """Whether every term is the published metric."""
        return all(m.calibrated for m in self._modules_list())

    @property
    def label(self) -> str:
        """The name, with the uncalibrated terms' notes in an ``[UNCALIBRATED: …]`` tag."""
        notes = sorted({m.metric.calibration_note for m in self.losses.values()
                        if isinstance(m, MetricLoss) and not m.calibrated})
        return self.name if not notes else f"{self.name} [UNCALIBRATED: {'; '.join(notes)}]"

    def per_image(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the terms' per-image values.

        Args:
            x: the images being optimised.
            target: the target images.

        Returns:
            One value per image, ``[N]``.

        Raises:
            UsageError: the loss has no term.
        """
        total: torch.Tensor | None = None
        for (w, mod) in zip(self.weights.values(), self._modules_list(), strict=True):
            term = w * mod.per_image(x, target)
            total = term if total is None else total + term
        if total is None:
            raise UsageError("a combined loss needs at least one term")
        return total

    def terms(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term's unweighted value, reduced like the loss (for logging)."""
        self.check(x, target)
        return {n: reduce(m.per_image(x, target), self.reduction)
                for n, m in zip(self.weights, self._modules_list(), strict=True)}


def _single(name: str, reduction: str, input_range: Sequence[float], options: dict[str, Any]) -> Loss:
    if name == "l1":
        if options:
            raise UsageError(f"l1 takes no options, got {sorted(options)}")
        return L1Loss(reduction=reduction, input_range=input_range)
    return MetricLoss(name, reduction=reduction, input_range=input_range, **options)


def create_loss(name: str, *, reduction: str = "mean", input_range: Sequence[float] = (-1.0, 1.0),
                per_term: Mapping[str, Mapping[str, object]] | None = None, **options: Any) -> Loss:
    """Build a loss from a metric name or a weighted sum of them.

    For example ``create_loss("ms-ssim")``, ``create_loss("lpips-vgg", backbone_weights=p)``,
    ``create_loss("l1+0.1*lpips-vgg", per_term={"lpips-vgg": {"backbone_weights": p}})``.

    ``name`` is ``l1``, any registered metric (plugins included) or a weighted sum of them
    (:func:`parse_loss_spec`). ``**options`` go to the metric of a single-term loss; for a sum
    give them per term with ``per_term``. The result is an ``nn.Module`` called as
    ``loss(input, target)``; see :mod:`bapps_toolkit.losses.base` for what it promises.
    """
    check_reduction(reduction)
    terms = parse_loss_spec(name)
    if len(terms) == 1 and next(iter(terms.values())) == 1.0:
        only = next(iter(terms))
        extra = dict((per_term or {}).get(only, {}))
        unused = sorted(set(per_term or {}) - {only})
        if unused:
            raise UsageError(f"per_term names {unused}, which are not terms of {name!r}")
        return _single(only, reduction, input_range, {**extra, **options})
    if options:
        raise UsageError(f"options {sorted(options)} are ambiguous for the combined loss {name!r}; "
                         f"pass them per term with per_term={{'<name>': {{...}}}}")
    return CombinedLoss(terms, reduction=reduction, input_range=input_range, options=per_term)
