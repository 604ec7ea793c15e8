"""``bapps train``: train an LPIPS metric (lin / tune / scratch) on the BAPPS 2AFC judgments.

Runs unchanged under ``torchrun --nproc_per_node=N bapps train …`` (DistributedDataParallel).
"""
from __future__ import annotations

import argparse
import sys

from ..errors import BappsError, UsageError
from ..train.config import DEFAULT_MARGIN, LOSSES, TrainConfig  # torch-free: keeps `bapps train --help` fast
from ._options import add_backbone_weights, add_precision
from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps train`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser(
        "train",
        help="train calibrated LPIPS linear layers (lin), a tuned (tune) or scratch network",
        description=(
            "Train LPIPS on 2AFC human judgments (Zhang et al., CVPR 2018) with the official schedule: "
            "Adam lr 1e-4, betas (0.5, 0.999), batch 50, 5 epochs at the base rate then 5 decay epochs "
            "(epochs 1-6 at lr, then lr-lr/5 after each later epoch). Writes safetensors checkpoints every "
            "epoch, an official-layout lin .pth, log.csv and card.json into --out. Works under torchrun."
        ),
        epilog=examples("bapps train bapps.h5 --out runs/alex-lin",
                        "bapps train bapps.h5 --net my_net.py:Net --net-option width=32 --variant tune "
                        "--memory-budget 8192 --out runs/my-net-tune --val",
                        "bapps train nights.h5 --out runs/nights-lin --loss hinge --margin 0.05 "
                        "--val --val-datasets val/nights"),
    )
    d = TrainConfig(data="")  # the library's defaults, shown in the help
    p.add_argument("data", help="BAPPS folder root or packed .h5 file (also NIGHTS or your own 2AFC sets, "
                                "packed with `bapps pack`)")
    # The options that define the result default to None (= not given): a new run takes the
    # library's defaults, --resume takes the run card's values and checks the given ones against it.
    p.add_argument("--net", default=None, help=f"backbone: alex | vgg | squeeze (default {d.net}), or your own "
                   "network as a plugin spec file.py:attr | module:attr | entry-point name: an nn.Module (class, "
                   "factory) whose forward returns a list of feature maps, or an LPIPS; lin or tune only")
    p.add_argument("--net-option", dest="net_options", action="append", default=None, metavar="KEY=VALUE",
                   help="option of a plugin --net's factory, typed by its signature (repeatable)")
    p.add_argument("--variant", default=None, choices=("lin", "tune", "scratch"),
                   help="lin (frozen backbone) | tune (backbone trained from weights) | "
                        f"scratch (random backbone, trained) (default {d.variant})")
    p.add_argument("--out", required=True, help="output folder of the run")
    p.add_argument("--datasets", nargs="+", default=None, metavar="SET",
                   help="2AFC sets to train on (default: every 2afc/train/* present), e.g. train/mix")
    add_backbone_weights(p, "backbone weights of --net: a torchvision-layout weights file (NET=PATH) or a seeded "
                            "random backbone (NET=random, UNCALIBRATED); default: ImageNet weights from the torch "
                            "hub cache")
    p.set_defaults(backbone_weights=None)  # None = not given (a resumed run takes the card's)
    p.add_argument("--lpips-version", dest="version", default=None, choices=["0.1", "0.0"],
                   help=f"LPIPS version (default {d.version})")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the initialisation, dropout and shuffling (default {d.seed})")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs at the base rate, official nepoch (default {d.epochs})")
    p.add_argument("--decay-epochs", type=int, default=None,
                   help=f"decay epochs, official nepoch_decay (default {d.decay_epochs})")
    p.add_argument("--lr", type=float, default=None, help=f"Adam base learning rate (default {d.lr:g})")
    p.add_argument("--beta1", type=float, default=None, help=f"Adam beta1 (default {d.beta1})")
    p.add_argument("--beta2", type=float, default=None, help=f"Adam beta2 (default {d.beta2})")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"global batch size, split across ranks (default {d.batch_size})")
    p.add_argument("--dropout", type=float, default=None,
                   help=f"dropout before the linear layers (default {d.dropout})")
    _add_execution_options(p, d)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)
    return p


def _add_execution_options(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    """The fast path, run folder, validation, device, precision, loss and memory options (defaults from ``d``)."""
    fast = p.add_mutually_exclusive_group()
    fast.add_argument("--no-fast", dest="fast", action="store_false", default=None,
                      help="lin: run the whole network every step instead of the cached-feature fast path")
    fast.add_argument("--fast", dest="fast", action="store_true", help="force the fast path (lin only)")
    _add_run_folder_options(p)
    p.add_argument("--val", dest="val_every_epoch", action="store_true", default=None,
                   help="score val 2AFC after every epoch (2afc/val/* sets)")
    p.add_argument("--val-datasets", nargs="+", default=None, help="sets for --val (default every 2afc/val/*)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    add_precision(p, "numeric precision of the backbone: fp32 (default) or bf16 (bfloat16 autocast, CUDA only); "
                     "fp16 is not supported", default=None)
    p.add_argument("--bf16", dest="bf16_flag", action="store_true",
                   help="deprecated: the same as --precision bf16")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="use deterministic algorithms only (torch.use_deterministic_algorithms)")
    p.add_argument("--precompute-batch", type=int, default=None,
                   help=f"triplets per backbone batch on the fast path (default {d.precompute_batch})")
    p.add_argument("--loss", default=None, choices=list(LOSSES),
                   help=f"training objective: ranking (official BCE of the ranking network G) or hinge "
                        f"(DreamSim's hinge on d0-d1 with targets +-1 from the rounded judge) (default {d.loss})")
    p.add_argument("--margin", type=float, default=None, metavar="M",
                   help=f"margin of the hinge loss (default {DEFAULT_MARGIN:g}, DreamSim's; only with --loss hinge)")
    p.add_argument("--memory-budget", dest="memory_budget_mb", type=int, default=None, metavar="MIB",
                   help=f"full path (tune, scratch, --no-fast): training sets whose images fit this many MiB are "
                        f"held whole with the exact shuffle; larger ones are streamed in HDF5-sized chunks with a "
                        f"shuffle inside windows of chunks (default {d.memory_budget_mb}; --resume takes the card's)")


def _add_run_folder_options(p: argparse.ArgumentParser) -> None:
    """--resume, --trust-plugin and --overwrite: what happens to a run already in --out."""
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last finished epoch, with the settings of its "
                        "card.json; options given must agree with the card (the error names each that differs)")
    p.add_argument("--trust-plugin", action="append", default=[], metavar="SPEC",
                   help="with --resume: the plugin network the run's card names, which may then be imported (a "
                        "card never decides that by itself; --net SPEC does the same, and the code's SHA-256 must "
                        "match the card's); repeatable")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")


#: TrainConfig fields set from the flag of the same name (None = flag not given).
_OPTIONS = ("net", "net_options", "variant", "datasets", "backbone_weights", "version", "epochs", "decay_epochs",
            "lr", "beta1", "beta2", "batch_size", "dropout", "seed", "fast", "val_every_epoch", "val_datasets",
            "device", "bf16", "deterministic", "precompute_batch", "loss", "margin", "memory_budget_mb")
_FLAGS = {"version": "--lpips-version", "net_options": "--net-option", "val_every_epoch": "--val",
          "memory_budget_mb": "--memory-budget", "bf16": "--precision"}


def _bf16(args: argparse.Namespace) -> bool | None:
    """``TrainConfig.bf16`` from --precision (and the deprecated --bf16); None when neither is given."""
    if args.bf16_flag:
        print("bapps train: note: --bf16 is deprecated; use --precision bf16", file=sys.stderr)
        if args.precision not in (None, "bf16"):
            raise UsageError(f"--bf16 and --precision {args.precision} disagree; give --precision only")
        return True
    if args.precision == "fp16":
        raise UsageError("--precision fp16: bapps train runs in fp32 or bf16 (bfloat16 autocast on CUDA); fp16 is not "
                         "supported")
    return None if args.precision is None else args.precision == "bf16"


def run(args: argparse.Namespace) -> int:
    """Train (or resume) a metric as the parsed options describe.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..train import resume_config, train

    args.bf16 = _bf16(args)

    given = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    if args.trust_plugin and not args.resume:
        raise BappsError("--trust-plugin is for --resume (a new run imports the --net you give)")
    if args.resume:
        names = {k: _FLAGS.get(k, "--" + k.replace("_", "-")) for k in _OPTIONS}
        cfg = resume_config(args.out, data=args.data, names=names, overwrite=args.overwrite,
                            progress=args.progress, trust_plugin=args.trust_plugin, **given)
    else:
        cfg = TrainConfig(data=args.data, out=args.out, overwrite=args.overwrite, progress=args.progress, **given)
    res = train(cfg)
    if res.is_main:
        card = res.card
        tag = "" if card.get("calibrated") else f"  [UNCALIBRATED: {card.get('calibration_note')}]"
        history = card.get("history") or []
        print(f"checkpoint: {res.checkpoint_path}{tag}")
        print(f"official lin weights: {res.out_dir / 'latest.lin.pth'}")
        print(f"card: {res.out_dir / 'card.json'}")
        last_val = history[-1].get("val_2afc") if history else None
        if last_val is not None:
            print(f"val 2AFC after epoch {history[-1]['epoch']}: {100 * last_val:.2f}%{tag}")
    return 0
