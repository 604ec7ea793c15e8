"""``bapps loss-study``: train one small restoration network per loss (L1, L2, SSIM, MS-SSIM,
LPIPS, PDL, plugins, mixtures such as "0.16*l1+0.84*ms-ssim"), then cross-evaluate every trained
network on held-out images with every chosen metric. Writes matrix.{md,tex,csv,json}, grid.png
and an unjudged BAPPS-layout 2AFC set under --out; a rerun resumes from the checkpoints there."""
from __future__ import annotations

import argparse

_INT = ("patch_size", "train_patches", "batch_size", "steps", "width", "blocks", "bottleneck", "eval_size",
        "eval_crops", "grid_crops", "n_boot", "seed", "split_seed", "checkpoint_every", "jpeg_quality")
_FLOAT = ("sigma", "blur_sigma", "lr", "test_fraction")


def register(subparsers) -> argparse.ArgumentParser:
    from ..study.config import TASKS, LossStudyConfig  # torch-free: keeps `bapps --help` fast

    d = LossStudyConfig()
    p = subparsers.add_parser("loss-study", help="train one network per loss and cross-evaluate them",
                              description=__doc__)
    p.add_argument("--out", default=d.out_dir, help="output folder (default %(default)s)")
    p.add_argument("--task", default=d.task, choices=TASKS)
    p.add_argument("--losses", default=",".join(d.losses), help="comma-separated losses (default %(default)s)")
    p.add_argument("--eval-metrics", default=",".join(d.eval_metrics), help="comma-separated metrics")
    p.add_argument("--images", default=None, help="folder of images (default: scikit-image's photos)")
    p.add_argument("--backbone-weights", default=d.backbone_weights, choices=("random", "imagenet"),
                   help="LPIPS/PDL backbones: seeded random (UNCALIBRATED) or torchvision ImageNet weights")
    p.add_argument("--device", default=d.device, help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    for name in _INT + _FLOAT:
        p.add_argument("--" + name.replace("_", "-"), type=int if name in _INT else float,
                       default=getattr(d, name), help="(default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..study import LossStudyConfig, run_loss_study

    cfg = LossStudyConfig(
        out_dir=args.out, task=args.task, losses=tuple(s for s in args.losses.split(",") if s.strip()),
        eval_metrics=tuple(s for s in args.eval_metrics.split(",") if s.strip()), images=args.images,
        backbone_weights=args.backbone_weights, device=args.device,
        **{n: getattr(args, n) for n in _INT + _FLOAT})
    result = run_loss_study(cfg, progress=not args.no_progress)
    print(result.markdown)
    for what, path in result.paths.items():
        print(f"{what}: {path}")
    return 0
