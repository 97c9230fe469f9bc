"""A second synthetic model: a small residual CNN at full resolution (no pooling).

States are ``[B, C, X]`` or ``[B, C, Y, X]``. ``x -> x + head(blocks(lift(x)))``; the head starts at
zero, so the untrained network is the identity (stable autoregressive rollouts from the start).
Each block is ``h + conv(gelu(conv(h)))`` with 3-wide convolutions, circular on periodic domains.
"""

from __future__ import annotations

import torch
from torch import nn

from hyco.models.layers import CONV, check_grid, check_input, check_int, conv, position_channels
from hyco.registry import MODELS


class _ResidualBlock(nn.Module):
    def __init__(self, ndim: int, width: int, periodic: bool):
        super().__init__()
        self.body = nn.Sequential(conv(ndim, width, width, 3, periodic), nn.GELU(), conv(ndim, width, width, 3, periodic))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


@MODELS.register("resnet")
class ResNet(nn.Module):
    """Residual next-state predictor: ``blocks`` residual blocks of ``width`` channels.

    ``position_input`` appends coordinate channels as in :class:`~hyco.models.unet.UNet`.
    """

    #: small options for the generic tests of every registered model
    example_options = {"width": 4, "blocks": 1}

    def __init__(self, ndim: int, channels: int, periodic: bool = True, width: int = 16, blocks: int = 2,
                 position_input: bool = False):
        super().__init__()
        check_grid(ndim, channels)
        check_int("model.synthetic.options.width", width, 1)
        check_int("model.synthetic.options.blocks", blocks, 0)
        self.ndim, self.channels, self.periodic = ndim, channels, bool(periodic)
        self.position_input = bool(position_input)
        extra = (2 if self.periodic else 1) * ndim if self.position_input else 0
        self.lift = conv(ndim, channels + extra, width, 3, self.periodic)
        self.blocks = nn.Sequential(*[_ResidualBlock(ndim, width, self.periodic) for _ in range(blocks)])
        self.head = CONV[ndim](width, channels, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the next state; the output has exactly the shape of ``x``."""
        check_input(x, self.ndim, self.channels, "ResNet")
        h = torch.cat([x, position_channels(x, self.periodic)], dim=1) if self.position_input else x
        return x + self.head(self.blocks(nn.functional.gelu(self.lift(h))))
