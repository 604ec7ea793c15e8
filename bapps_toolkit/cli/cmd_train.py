"""``bapps train``: train an LPIPS metric (lin / tune / scratch) on the BAPPS 2AFC judgments.

Runs unchanged under ``torchrun --nproc_per_node=N bapps train …`` (DistributedDataParallel).
"""
from __future__ import annotations

import argparse

from ..train import TrainConfig, train


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train calibrated LPIPS linear layers (lin), a tuned (tune) or scratch network",
        description=(
            "Train LPIPS on 2AFC human judgments (Zhang et al., CVPR 2018) with the official schedule: "
            "Adam lr 1e-4, betas (0.5, 0.999), batch 50, 5 epochs at the base rate then 5 decay epochs "
            "(epochs 1-6 at lr, then lr-lr/5 after each later epoch). Writes safetensors checkpoints every "
            "epoch, an official-layout lin .pth, log.csv and card.json into --out. Works under torchrun."
        ),
    )
    p.add_argument("data", help="BAPPS folder root or packed .h5 file")
    p.add_argument("--net", default="alex", help="backbone: alex | vgg | squeeze (default alex)")
    p.add_argument("--variant", default="lin",
                   help="lin (frozen backbone) | tune (backbone trained from weights) | "
                        "scratch (random backbone, trained)")
    p.add_argument("--out", required=True, help="output folder of the run")
    p.add_argument("--datasets", nargs="+", default=None,
                   help="2AFC sets to train on (default: every 2afc/train/* present), e.g. train/mix")
    p.add_argument("--backbone-weights", nargs="+", default=None, metavar="NET=PATH|NET=random",
                   help="backbone weights of --net: a torchvision-layout weights file (NET=PATH) or a seeded "
                        "random backbone (NET=random, UNCALIBRATED); default: ImageNet weights from the torch "
                        "hub cache")
    p.add_argument("--lpips-version", default="0.1", choices=["0.1", "0.0"], help="LPIPS version (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5, help="epochs at the base rate, official nepoch (default 5)")
    p.add_argument("--decay-epochs", type=int, default=5, help="decay epochs, official nepoch_decay (default 5)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--batch-size", type=int, default=50, help="global batch size (split across ranks)")
    p.add_argument("--dropout", type=float, default=0.5, help="dropout before the linear layers (default 0.5)")
    fast = p.add_mutually_exclusive_group()
    fast.add_argument("--no-fast", dest="fast", action="store_false", default=None,
                      help="lin: run the whole network every step instead of the cached-feature fast path")
    fast.add_argument("--fast", dest="fast", action="store_true", help="force the fast path (lin only)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--val", action="store_true", help="score val 2AFC after every epoch (2afc/val/* sets)")
    p.add_argument("--val-datasets", nargs="+", default=None, help="sets for --val (default every 2afc/val/*)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the backbone (CUDA only)")
    p.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    p.add_argument("--precompute-batch", type=int, default=512, help="triplets per backbone batch (fast path)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    cfg = TrainConfig(
        data=args.data, net=args.net, variant=args.variant, out=args.out, datasets=args.datasets,
        backbone_weights=args.backbone_weights, version=args.lpips_version, epochs=args.epochs,
        decay_epochs=args.decay_epochs, lr=args.lr, beta1=args.beta1, beta2=args.beta2,
        batch_size=args.batch_size, dropout=args.dropout, seed=args.seed, fast=args.fast,
        resume=args.resume, overwrite=args.overwrite, val_every_epoch=args.val,
        val_datasets=args.val_datasets, device=args.device, bf16=args.bf16, progress=args.progress,
        deterministic=args.deterministic, precompute_batch=args.precompute_batch,
    )
    res = train(cfg)
    if res.is_main:
        card = res.card
        tag = "" if card.get("calibrated") else f"  [UNCALIBRATED: {card.get('calibration_note')}]"
        last = (card.get("history") or [{}])[-1]
        print(f"checkpoint: {res.checkpoint_path}{tag}")
        print(f"official lin weights: {res.out_dir / 'latest.lin.pth'}")
        print(f"card: {res.out_dir / 'card.json'}")
        if last.get("val_2afc") is not None:
            print(f"val 2AFC after epoch {last['epoch']}: {100 * last['val_2afc']:.2f}%{tag}")
    return 0
