"""Building what a run trains: the LPIPS metric, the ranking network G, the module and its optimizer.

The module trains both networks with Adam, starting from the seeded init or from the state of the epoch a run
resumes at.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch

from ..metrics.plugin_net import build_plugin_lpips
from ..metrics.safetensors_io import check_declared, read_header, read_tensors
from . import checkpoint, run_dir
from .config import TrainConfig
from .distributed import DistContext
from .model import (
    STREAM_INIT,
    RankingNet,
    TrainModule,
    build_lpips,
    derive_seed,
    init_linear_,
    init_ranking_net_,
    make_generator,
)
from .records import BackboneSource


def build_model(cfg: TrainConfig, ctx: DistContext, backbone: BackboneSource, resuming: bool,
                done: int) -> tuple[Any, RankingNet, TrainModule, torch.optim.Optimizer, list[str]]:
    """The metric, G, the module training both and its Adam optimizer.

    From the seeded init, or the state of epoch ``done`` when resuming.
    """
    out = Path(cfg.out)
    dev = ctx.device
    bb_arg: Any = "random" if backbone["source"] == "random" else cfg.backbone_weights
    if "plugin" in backbone:  # your own network (bapps_toolkit.metrics.plugin_net)
        lpips: Any = build_plugin_lpips(cfg.net, cfg.net_options if isinstance(cfg.net_options, Mapping) else None)
    else:
        lpips = build_lpips(cfg.net, cfg.version, bb_arg, backbone.get("seed", 0))
    G = RankingNet()
    gen = make_generator(derive_seed(cfg.seed, STREAM_INIT))
    init_linear_(lpips.lins, gen)
    init_ranking_net_(G, gen)
    train_backbone = cfg.variant in ("tune", "scratch")
    for p in lpips.backbone.parameters():
        p.requires_grad_(train_backbone)
    for lin in lpips.lins:
        lin.weight.requires_grad_(True)
    if (backbone["source"] == "random" and not train_backbone and resuming
            and (out / checkpoint.BACKBONE_FILE).is_file()):
        _restore(out / checkpoint.BACKBONE_FILE, dict(lpips.backbone.state_dict()), "backbone")
    module = TrainModule(lpips, G, train_backbone=train_backbone, bf16=cfg.bf16).to(dev)
    module.train()
    if not train_backbone:
        lpips.backbone.eval()

    lins = [cast(torch.nn.Conv2d, lin) for lin in lpips.lins]
    named: list[tuple[str, torch.Tensor]] = [(f"lin.{k}.weight", lin.weight) for k, lin in enumerate(lins)]
    named += [(f"G.{n}", p) for n, p in G.named_parameters()]
    if train_backbone:
        named += [(f"backbone.{n}", p) for n, p in lpips.backbone.named_parameters()]
    param_names = [n for n, _ in named]
    # On CUDA the fused Adam kernel (one launch for all parameters); the default elsewhere.
    opt = torch.optim.Adam([p for _, p in named], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                           **({"fused": True} if dev.type == "cuda" else {}))

    if done > 0:
        stem = checkpoint.epoch_stem(done)
        expected = {f"lin.{k}.weight": lin.weight for k, lin in enumerate(lins)}
        expected.update({f"G.{n}": v for n, v in G.state_dict().items()})
        if train_backbone or "plugin" in backbone:  # a plugin net's backbone is stored for lin too
            expected.update({f"backbone.{n}": v for n, v in lpips.backbone.state_dict().items()})
        _restore(checkpoint.weights_path(out, stem), expected, "model", cfg)
        checkpoint.load_optimizer_(opt, param_names, checkpoint.optim_path(out, stem))
    return lpips, G, module, opt, param_names


def _restore(path: Path, expected: dict[str, torch.Tensor], what: str, cfg: TrainConfig | None = None) -> None:
    """Copy the tensors of ``path`` into ``expected`` (name -> the model's tensor), checked before any data is read.

    The file's metadata is checked against ``cfg`` (an epoch file) and its declared names, shapes and dtypes
    against ``expected``.
    """
    head = read_header(path)
    if cfg is not None:
        run_dir.check_meta(head.metadata, cfg, path)
    check_declared(path, head.tensors, expected, what)
    with torch.no_grad():
        for name, value in read_tensors(head, expected).items():
            expected[name].copy_(value.to(expected[name].device))


__all__ = ["build_model"]
