"""The small network every loss of the study trains: a residual CNN working at half resolution.

Architecture (``width`` C, ``blocks`` B; RGB in, RGB out, any even size)::

    head   Conv3×3(3 → C/2) · ReLU                                  full resolution
    down   Conv3×3(C/2 → C, stride 2) · ReLU                         half resolution
    body   B × [Conv3×3(C → C) · ReLU · Conv3×3(C → C)] + skip      half resolution
    up     Conv3×3(C → 4·C/2) · PixelShuffle(2) · ReLU              full resolution
    tail   Conv3×3(C/2 → 3)

For restoration tasks the output is ``input + tail(...)`` (the network predicts a residual).
For ``autoencode`` there is no global skip and the half-resolution code passes through a
``bottleneck``-channel 1×1 layer at quarter resolution (an extra stride-2 conv and a
PixelShuffle back), so the network cannot copy its input. The tail's initial weights are the
default (Kaiming-uniform) ones scaled by 0.1 and its bias is 0, so a restoration network starts
close to the identity (the residual starts small, as in EDSR's residual scaling, Lim et al. 2017)
instead of adding random structure to its input. The defaults (C = 64, B = 2) give
about 240 k parameters; the half-resolution body keeps a CPU step cheap. Weights are
initialised from ``torch.manual_seed(seed)`` inside a forked RNG, so every loss starts from the
same network and the global RNG is untouched.
"""
from __future__ import annotations

from typing import cast

import torch
from torch import nn


class ResBlock(nn.Module):
    """A residual block of the body: ``x + Conv3×3(ReLU(Conv3×3(x)))``, ``c`` channels throughout.

    Args:
        c: the number of channels.
    """

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output for ``x`` ``[N, c, H, W]``."""
        out: torch.Tensor = self.conv2(torch.relu(self.conv1(x)))
        return x + out


class StudyNet(nn.Module):
    """See the module docstring."""

    def __init__(self, width: int = 64, blocks: int = 2, *, residual: bool = True, bottleneck: int = 0):
        super().__init__()
        if width < 2 or width % 2:
            raise ValueError(f"width must be an even number >= 2, got {width}")
        if blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {blocks}")
        if bottleneck < 0:
            raise ValueError(f"bottleneck must be >= 0, got {bottleneck}")
        half = width // 2
        self.residual = bool(residual)
        self.head = nn.Conv2d(3, half, 3, padding=1)
        self.down = nn.Conv2d(half, width, 3, stride=2, padding=1)
        layers: list[nn.Module] = [ResBlock(width) for _ in range(blocks)]
        if bottleneck:
            layers += [nn.Conv2d(width, bottleneck, 3, stride=2, padding=1),
                       nn.Conv2d(bottleneck, 4 * width, 1), nn.PixelShuffle(2), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.up = nn.Sequential(nn.Conv2d(width, 4 * half, 3, padding=1), nn.PixelShuffle(2), nn.ReLU())
        self.tail = nn.Conv2d(half, 3, 3, padding=1)
        with torch.no_grad():
            self.tail.weight.mul_(0.1)
        nn.init.zeros_(cast(torch.Tensor, self.tail.bias))  # Conv2d's bias=True default: a tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's RGB output for RGB ``x`` ``[N, 3, H, W]`` (``H``, ``W`` even)."""
        h = torch.relu(self.head(x))
        h = self.up(self.body(torch.relu(self.down(h))))
        out: torch.Tensor = self.tail(h)
        return x + out if self.residual else out


def build_model(task: str, width: int, blocks: int, bottleneck: int, seed: int) -> StudyNet:
    """The study's network for ``task``, seeded (same weights for every loss)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if task == "autoencode":
            return StudyNet(width, blocks, residual=False, bottleneck=bottleneck)
        return StudyNet(width, blocks)


def count_parameters(model: nn.Module) -> int:
    """The number of parameter values of ``model``."""
    return sum(p.numel() for p in model.parameters())
