"""The synthetic model: a small U-Net that predicts the next state of a field.

States are torch tensors ``[B, C, X]`` (1D) or ``[B, C, Y, X]`` (2D), as produced by
:mod:`hyco.physics.convert`. The network maps a state to the state one time step later, so
it can be rolled out autoregressively next to the physical model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hyco.models.layers import CONV, POOL, check_grid, check_input, check_int, conv, position_channels
from hyco.registry import MODELS


class _Block(nn.Sequential):
    """Two 3-wide convolutions, each followed by GELU: one resolution level of the U-Net."""

    def __init__(self, ndim: int, c_in: int, c_out: int, periodic: bool):
        super().__init__(
            conv(ndim, c_in, c_out, 3, periodic),
            nn.GELU(),
            conv(ndim, c_out, c_out, 3, periodic),
            nn.GELU(),
        )


@MODELS.register("unet")
class UNet(nn.Module):
    """U-Net next-state predictor for 1D or 2D fields of any spatial size.

    With ``residual=True`` the output is ``x + net(x)`` and the last layer starts at zero, so
    the untrained model is the identity map: autoregressive rollouts start stable and the
    network only has to learn the change per step.

    Convolutions are translation-equivariant: a UNet cannot tell one place from another, so it
    cannot represent physics with a position-dependent coefficient (heat's diffusivity field).
    ``position_input=True`` appends coordinate channels to the input: ``sin`` and ``cos`` of
    ``2 pi x / L`` per periodic axis (smooth across the wrap), a ramp in [-1, 1] otherwise.
    """

    #: small options for the generic tests of every registered model
    example_options = {"base_channels": 4, "depth": 1}

    def __init__(
        self,
        ndim: int,
        channels: int,
        base_channels: int = 16,
        depth: int = 2,
        periodic: bool = True,
        residual: bool = True,
        position_input: bool = False,
    ):
        super().__init__()
        check_grid(ndim, channels)
        check_int("model.synthetic.options.base_channels", base_channels, 1)
        check_int("model.synthetic.options.depth", depth, 0)
        self.ndim = ndim
        self.channels = channels
        self.depth = depth
        self.periodic = bool(periodic)
        self.residual = bool(residual)
        self.position_input = bool(position_input)
        extra = (2 if self.periodic else 1) * ndim if self.position_input else 0

        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList([_Block(ndim, channels + extra, widths[0], self.periodic)])
        for level in range(1, depth + 1):
            self.encoder.append(_Block(ndim, widths[level - 1], widths[level], self.periodic))
        self.pool = POOL[ndim](kernel_size=2, stride=2)
        # Decoder level i (deepest first) fuses the upsampled level i+1 with the skip of level i.
        self.decoder = nn.ModuleList(
            [
                _Block(ndim, widths[level + 1] + widths[level], widths[level], self.periodic)
                for level in reversed(range(depth))
            ]
        )
        self.head = CONV[ndim](widths[0], channels, kernel_size=1)
        if self.residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Grow every spatial axis to a multiple of ``2**depth`` so pooling divides evenly.

        Periodic domains wrap around (tiling, so any amount works even on tiny grids); others
        repeat the edge value. Both use only ops whose gradients are deterministic.
        """
        multiple = 2**self.depth
        for dim in range(2, x.dim()):
            n = x.shape[dim]
            extra = (-n) % multiple
            if extra == 0:
                continue
            if self.periodic:
                reps = [1] * x.dim()
                reps[dim] = -(-(n + extra) // n)
                x = x.repeat(*reps).narrow(dim, 0, n + extra)
            else:
                shape = list(x.shape)
                shape[dim] = extra
                x = torch.cat([x, x.narrow(dim, n - 1, 1).expand(*shape)], dim=dim)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the next state; the output has exactly the shape of ``x``."""
        check_input(x, self.ndim, self.channels, "UNet")
        spatial = x.shape[2:]
        h = self._pad(torch.cat([x, position_channels(x, self.periodic)], dim=1) if self.position_input else x)
        skips = []
        for level, block in enumerate(self.encoder):
            if level > 0:
                h = self.pool(h)
            h = block(h)
            skips.append(h)
        h = skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1))
        out = self.head(h)
        for dim, n in enumerate(spatial, start=2):
            out = out.narrow(dim, 0, n)
        return x + out if self.residual else out
