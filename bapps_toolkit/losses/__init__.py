"""Every metric of the toolkit as a training loss (layer 2: uses only the metrics and core).

>>> import bapps_toolkit as bt
>>> loss = bt.create_loss("l1+0.1*lpips-vgg", per_term={"lpips-vgg": {"backbone_weights": "random"}})
>>> loss(output, target).backward()                                  # doctest: +SKIP

See :mod:`.base` for the contract (no range error, frozen networks, reductions, direction).
"""
from ..metrics import REDUCTIONS
from .base import (
    DISTSLoss,
    FSIMLoss,
    L1Loss,
    L2Loss,
    Loss,
    LPIPSLoss,
    MetricLoss,
    MSSSIMLoss,
    PDLLoss,
    PSNRLoss,
    SSIMLoss,
)
from .combine import CombinedLoss, create_loss, list_losses, parse_loss_spec

__all__ = [
    "REDUCTIONS", "Loss", "MetricLoss", "CombinedLoss", "L1Loss", "L2Loss", "PSNRLoss", "SSIMLoss",
    "MSSSIMLoss", "FSIMLoss", "LPIPSLoss", "PDLLoss", "DISTSLoss", "create_loss", "list_losses", "parse_loss_spec",
]
