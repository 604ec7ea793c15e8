"""``bapps loss-study``: train one small restoration network per loss, then cross-evaluate them.

The losses: L1, L2, SSIM, MS-SSIM, LPIPS, PDL, plugins, mixtures such as "0.16*l1+0.84*ms-ssim".
Every trained network is evaluated on held-out images with every chosen metric. Writes
matrix.{md,tex,csv,json}, grid.png and an unjudged BAPPS-layout 2AFC set under --out; a rerun
resumes from the checkpoints there.
"""
from __future__ import annotations

import argparse

from ._options import add_backbone_weights, space_list
from ._parser import examples

_INT = ("patch_size", "train_patches", "batch_size", "steps", "width", "blocks", "bottleneck", "eval_size",
        "eval_crops", "grid_crops", "n_boot", "seed", "split_seed", "checkpoint_every", "jpeg_quality")
_FLOAT = ("sigma", "blur_sigma", "lr", "test_fraction")
_HELP = {
    "patch_size": "side of the training patches in pixels, a multiple of 4",
    "train_patches": "training patches cut from the training images",
    "batch_size": "patches per training step",
    "steps": "training steps per loss",
    "width": "channels of the restoration network",
    "blocks": "residual blocks of the restoration network",
    "bottleneck": "channels of the autoencode task's bottleneck",
    "eval_size": "side of the held-out evaluation crops in pixels, a multiple of 4",
    "eval_crops": "evaluation crops per held-out image",
    "grid_crops": "held-out crops shown in grid.png",
    "n_boot": "bootstrap resamples for the intervals",
    "seed": "seed of the patches, the initialisation and the bootstrap",
    "split_seed": "seed of the train/held-out split of the images",
    "checkpoint_every": "steps between checkpoints (a rerun resumes from the last one)",
    "jpeg_quality": "jpeg task: JPEG quality of the degraded input, 1..95",
    "sigma": "denoise task: noise standard deviation on [0, 1]",
    "blur_sigma": "deblur task: Gaussian blur standard deviation in pixels",
    "lr": "Adam learning rate of the restoration networks",
    "test_fraction": "share of the images held out for evaluation, in (0, 1)",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps loss-study`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    from ..study.config import TASKS, LossStudyConfig  # torch-free: keeps `bapps --help` fast

    d = LossStudyConfig()
    p = subparsers.add_parser("loss-study", help="train one network per loss and cross-evaluate them",
                              description=__doc__, epilog=examples(
                                  "bapps loss-study --out study --steps 400 --patch-size 48",
                                  "bapps loss-study --task deblur --losses l1 lpips-alex 0.16*l1+0.84*ms-ssim "
                                  "--backbone-weights alex=alexnet-owt-7be5be79.pth",
                                  "bapps loss-study --steps 100 --backbone-weights random"))
    p.add_argument("--out", default=d.out_dir, help="output folder (default %(default)s)")
    p.add_argument("--task", default=d.task, choices=TASKS, help="degradation the networks learn to undo "
                   "(sr2/sr4 = 2x/4x super-resolution; default %(default)s)")
    p.add_argument("--losses", nargs="+", default=list(d.losses), metavar="LOSS",
                   help=f"losses, space-separated (default {' '.join(d.losses)})")
    p.add_argument("--eval-metrics", nargs="+", default=list(d.eval_metrics), metavar="NAME",
                   help=f"metrics of the cross-evaluation, space-separated (default {' '.join(d.eval_metrics)})")
    p.add_argument("--images", default=None, help="folder of images (default: scikit-image's photos)")
    add_backbone_weights(p, "backbones of the LPIPS/PDL/DISTS metrics and losses: a torchvision-layout weights "
                         "file per network (NET=PATH), NET=random, or random for every network (UNCALIBRATED, "
                         "labelled so); "
                         "default: torchvision's ImageNet weights, and the study refuses to start without them")
    p.add_argument("--device", default=d.device, help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    for name in _INT + _FLOAT:
        p.add_argument("--" + name.replace("_", "-"), type=int if name in _INT else float,
                       default=getattr(d, name), help=_HELP[name] + " (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the loss study under ``args.out``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..study import LossStudyConfig, run_loss_study

    cfg = LossStudyConfig(
        out_dir=args.out, task=args.task, losses=tuple(space_list(args.losses, "--losses", "loss-study")),
        eval_metrics=tuple(space_list(args.eval_metrics, "--eval-metrics", "loss-study")), images=args.images,
        backbone_weights=tuple(args.backbone_weights), device=args.device,
        **{n: getattr(args, n) for n in _INT + _FLOAT})
    result = run_loss_study(cfg, progress=not args.no_progress)
    print(result.markdown)
    for what, path in result.paths.items():
        print(f"{what}: {path}")
    return 0
