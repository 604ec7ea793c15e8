"""The metadata a trained checkpoint records about its model (backbone, calibration, start)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._version import __version__
from ..metrics.provenance import PROVENANCE_KEY, provenance_json
from . import checkpoint
from .config import TrainConfig
from .records import BackboneSource, ModelMeta


def model_meta(cfg: TrainConfig, lpips: Any, backbone: BackboneSource, calibrated: bool, note: str) -> ModelMeta:
    """The metadata of the run's weights files.

    Args:
        cfg: the run's settings.
        lpips: the metric being trained.
        backbone: where its backbone comes from.
        calibrated: the trained metric is a calibrated LPIPS.
        note: why not, when it is not.

    Returns:
        The record (:meth:`ModelMeta.to_metadata` gives the file's strings).
    """
    trained_bb = cfg.variant in ("tune", "scratch")
    plugin = backbone.get("plugin")
    extra = {} if plugin is None else {  # what rebuilds a plugin net (metrics.plugin_net.plugin_from_checkpoint)
        "plugin_spec": plugin["spec"], "plugin_options": json.dumps(plugin["options"], sort_keys=True),
        "plugin_origin": json.dumps(plugin["origin"], sort_keys=True), "plugin_kind": lpips.kind,
        "plugin_scaling": type(lpips.scaling).__name__, "label": lpips.name}
    text = {
        "format": checkpoint.FORMAT, "format_version": str(checkpoint.FORMAT_VERSION),
        "toolkit_version": __version__,
        "net": cfg.net, "version": lpips.version, "variant": cfg.variant,
        "channels": json.dumps([int(c) for c in lpips.channels]),
        **extra,
        "backbone_file": checkpoint.BACKBONE_FILE if (backbone["source"] == "random" and not trained_bb) else "",
        "backbone_source": str(backbone["source"]),
        "backbone_sha256": str(backbone.get("sha256", "")),
        "calibration_note": note,
        PROVENANCE_KEY: provenance_json(
            "trained", calibrated=calibrated, note=note, variant=cfg.variant,
            data=str(Path(cfg.data).resolve()), synthetic="trained on SYNTHETIC" in note,
            backbone=str(backbone["source"]), backbone_sha256=backbone.get("sha256")),
    }
    return ModelMeta(backbone_in_file=trained_bb or plugin is not None,
                     started_from_scratch=bool(backbone.get("started_from_scratch")), calibrated=calibrated,
                     text=text)
