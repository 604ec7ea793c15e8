"""The loss study's backbone check: deep metrics and losses run on weights the user chose.

Like ``bapps score``, ``evaluate`` and ``train``, a study whose deep metrics need torchvision's
ImageNet backbones refuses to start when they cannot be had, before anything is trained; it
never falls back to random backbones on its own. Random backbones are taken only when asked for
(``backbone_weights="random"``, ``--backbone-weights random``), and every number they give is
labelled UNCALIBRATED.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import WeightsError
from ..losses import parse_loss_spec
from ..metrics.hub import backbone_weights_file
from .config import LossStudyConfig, backbone_net

#: How the command line names the choice (the refusal gives the user the form to type).
CLI_FORM = ("--backbone-weights NET=PATH (a torchvision-layout weights file per network, e.g. alex=alexnet.pth) "
            "or --backbone-weights random (seeded random backbones; every number is then labelled "
            "UNCALIBRATED, not the published metrics)")


def deep_names(cfg: LossStudyConfig) -> dict[str, list[str]]:
    """The networks the study's deep metrics and loss terms need.

    Args:
        cfg: the study's settings.

    Returns:
        ``{net: [metric or loss names that use it]}``, in first-use order.
    """
    names: list[str] = list(cfg.eval_metrics)
    for spec in cfg.losses:
        names.extend(parse_loss_spec(spec))
    needs: dict[str, list[str]] = {}
    for name in names:
        net = backbone_net(name)
        if net is not None and name not in needs.get(net, []):
            needs.setdefault(net, []).append(name)
    return needs


def check_backbones(cfg: LossStudyConfig) -> None:
    """Refuse a study whose backbones cannot be had, naming the network and the way out.

    Args:
        cfg: the validated settings of the study.

    Raises:
        WeightsError: torchvision's ImageNet weights of a needed network are neither cached nor
            downloadable, or a named weights file does not exist; the message names the metrics
            that need it and gives the command-line form (:data:`CLI_FORM`).
    """
    choice = cfg.backbone_choice()
    for net, users in deep_names(cfg).items():
        given = choice.get("*", choice.get(net))
        if given == "random":
            continue
        if given is not None:
            if not Path(given).is_file():
                raise WeightsError(f"loss-study: backbone weights {net}={given}: {given} does not exist or is "
                                   f"not a file (needed by {_listed(users)})")
            continue
        try:
            backbone_weights_file(net, progress=False)
        except WeightsError as exc:
            reason = str(exc).split(". ")[0]
            raise WeightsError(f"loss-study: {_listed(users)} need the ImageNet {net} backbone, which is not "
                               f"available ({reason}). Pass {CLI_FORM}; from Python: "
                               f"LossStudyConfig(backbone_weights=...)") from None


def _listed(names: Iterable[str]) -> str:
    return ", ".join(names)


__all__ = ["CLI_FORM", "check_backbones", "deep_names"]
