"""Settings of a loss study; every size is a field (and a ``bapps loss-study`` flag).

Imports nothing heavy (the command line reads its defaults from here); loss and metric names
are checked by :func:`bapps_toolkit.study.runner.run_loss_study` before anything is trained.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import UsageError

TASKS: tuple[str, ...] = ("denoise", "deblur", "sr2", "sr4", "jpeg", "autoencode")

DEFAULT_LOSSES: tuple[str, ...] = ("l1", "l2", "ssim", "ms-ssim", "lpips-alex", "pdl-vgg", "0.16*l1+0.84*ms-ssim")
DEFAULT_EVAL: tuple[str, ...] = ("psnr", "ssim", "ms-ssim", "lpips-alex", "lpips-vgg", "pdl-vgg")
DEEP_PREFIXES = ("lpips", "pdl", "dists")
#: Networks a deep metric's backbone can be (the ``NET`` of ``NET=PATH``).
BACKBONE_NETS = ("alex", "vgg", "squeeze")

#: Fields that decide what a per-loss checkpoint contains (a resumed run must match them).
TRAINING_FIELDS = ("task", "sigma", "blur_sigma", "jpeg_quality", "images", "test_fraction", "split_seed",
                   "patch_size", "train_patches", "batch_size", "steps", "lr", "width", "blocks",
                   "bottleneck", "seed", "backbone_weights")


@dataclass
class LossStudyConfig:
    """What ``run_loss_study`` trains and evaluates (defaults: the documented default run)."""

    out_dir: str = "loss-study"
    task: str = "denoise"
    losses: tuple[str, ...] = DEFAULT_LOSSES
    eval_metrics: tuple[str, ...] = DEFAULT_EVAL
    images: str | None = None  # folder of images; None = scikit-image's photos
    test_fraction: float = 0.3
    split_seed: int = 0
    sigma: float = 0.1  # denoise: noise std on [0, 1]
    blur_sigma: float = 1.5  # deblur: Gaussian std in pixels
    jpeg_quality: int = 15
    patch_size: int = 32
    train_patches: int = 1024
    batch_size: int = 8
    steps: int = 200
    lr: float = 2e-3
    width: int = 64
    blocks: int = 2
    bottleneck: int = 8
    eval_size: int = 64
    eval_crops: int = 3  # crops per test image
    grid_crops: int = 3
    n_boot: int = 1000
    seed: int = 0
    checkpoint_every: int = 20
    #: Backbones of the deep metrics and losses: empty = torchvision's ImageNet weights (torch hub
    #: cache, downloaded when missing; refused when they cannot be had), ``"random"`` = seeded random
    #: backbones for every network (UNCALIBRATED), or ``NET=PATH`` / ``NET=random`` per network.
    backbone_weights: str | tuple[str, ...] = ()
    device: str = "auto"

    def validate(self) -> LossStudyConfig:
        """Check every field; raise ``ValueError`` naming the field. Returns ``self``."""
        if self.task not in TASKS:
            raise UsageError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        self.losses = tuple(str(s).strip() for s in self.losses)
        self.eval_metrics = tuple(str(s).strip().lower() for s in self.eval_metrics)
        if not self.losses or len(set(self.losses)) != len(self.losses):
            raise UsageError(f"losses must be a non-empty list without repeats, got {list(self.losses)}")
        if not self.eval_metrics or len(set(self.eval_metrics)) != len(self.eval_metrics):
            raise UsageError(f"eval_metrics must be a non-empty list without repeats, got {list(self.eval_metrics)}")
        for name in ("train_patches", "batch_size", "steps", "width", "blocks", "eval_crops", "grid_crops",
                     "n_boot", "checkpoint_every", "patch_size", "eval_size"):
            if int(getattr(self, name)) < (0 if name in ("blocks", "grid_crops") else 1):
                raise UsageError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise UsageError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        for name in ("sigma", "blur_sigma", "lr"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise UsageError(f"{name} must be > 0, got {v}")
        if not 1 <= int(self.jpeg_quality) <= 95:
            raise UsageError(f"jpeg_quality must lie in 1..95, got {self.jpeg_quality}")
        for name in ("patch_size", "eval_size"):
            if int(getattr(self, name)) % 4:
                raise UsageError(f"{name} must be a multiple of 4 (the network halves it twice), "
                                 f"got {getattr(self, name)}")
        self.backbone_weights = _backbone_specs(self.backbone_weights)
        return self

    def backbone_choice(self) -> dict[str, str]:
        """``{net: "random" | PATH}`` for the networks given in :attr:`backbone_weights`.

        Returns:
            The per-network choice; ``{"*": "random"}`` when every backbone is random; empty
            when every backbone takes torchvision's ImageNet weights.
        """
        specs = _backbone_specs(self.backbone_weights)
        if specs == ("random",):
            return {"*": "random"}
        return {net: where for net, _, where in (item.partition("=") for item in specs)}

    def training_fingerprint(self) -> dict[str, object]:
        """The fields that decide what a per-loss checkpoint holds (a resumed run must match).

        Returns:
            ``{field: value}``; the backbones as the earlier string form (``"random"``,
            ``"imagenet"``) where one applies, so checkpoints of earlier runs still resume.
        """
        d = asdict(self)
        d["backbone_weights"] = _fingerprint_backbones(_backbone_specs(self.backbone_weights))
        return {k: d[k] for k in TRAINING_FIELDS}

    def to_dict(self) -> dict[str, object]:
        """The settings as JSON values (tuples as lists).

        Returns:
            ``{field: value}`` for every field.
        """
        d = asdict(self)
        d["losses"], d["eval_metrics"] = list(self.losses), list(self.eval_metrics)
        d["backbone_weights"] = list(_backbone_specs(self.backbone_weights))
        return {f.name: d[f.name] for f in fields(self)}

    @property
    def out(self) -> Path:
        """The output folder as a path."""
        return Path(self.out_dir)

    def deep_options(self, name: str) -> dict[str, str | None]:
        """Options of a deep metric or loss term named ``name``; ``{}`` for the others.

        Args:
            name: a metric name (``lpips-alex``, ``pdl-vgg``, ``dists`` …).

        Returns:
            ``{"backbone_weights": "random" | PATH | None}`` (``None``: ImageNet weights).
        """
        net = backbone_net(name)
        if net is None:
            return {}
        choice = self.backbone_choice()
        return {"backbone_weights": choice.get("*", choice.get(net))}


def backbone_net(name: str) -> str | None:
    """The backbone network of a deep metric name (``lpips-alex`` → ``alex``, ``dists`` → ``vgg``).

    Args:
        name: a metric or loss-term name.

    Returns:
        The network, or ``None`` for a metric without a backbone.
    """
    if not name.startswith(DEEP_PREFIXES):
        return None
    parts = name.split("-")
    return parts[1] if len(parts) > 1 and parts[1] in BACKBONE_NETS else "vgg"


def _backbone_specs(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``backbone_weights`` in its checked tuple form (see :class:`LossStudyConfig`)."""
    items = [value] if isinstance(value, str) else list(value)
    items = [str(v).strip() for v in items if str(v).strip() and str(v).strip() != "imagenet"]
    if "random" in items:
        if len(items) > 1:
            raise ValueError("backbone_weights: 'random' makes every backbone random; "
                             "give it alone, or NET=random for one network")
        return ("random",)
    seen: set[str] = set()
    for item in items:
        net, sep, where = item.partition("=")
        if not sep or net not in BACKBONE_NETS or not where:
            raise ValueError(f"backbone_weights {item!r}: expected NET=PATH or NET=random (NET one of "
                             f"{', '.join(BACKBONE_NETS)}), or random for every network")
        if net in seen:
            raise ValueError(f"backbone_weights: network {net} given twice")
        seen.add(net)
    return tuple(items)


def _fingerprint_backbones(specs: tuple[str, ...]) -> str | list[str]:
    if specs == ("random",):
        return "random"
    return "imagenet" if not specs else list(specs)
