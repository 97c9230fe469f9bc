"""Building blocks shared by the synthetic networks: same-size convolutions, coordinate channels."""

from __future__ import annotations

import torch
from torch import nn

from hyco.errors import ConfigError

CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d}
POOL: dict[int, type[nn.Module]] = {1: nn.AvgPool1d, 2: nn.AvgPool2d}


def check_int(key: str, value: object, minimum: int) -> None:
    """Reject non-integers and values below ``minimum``, naming the config key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} is {value!r}, but must be an integer >= {minimum}")


def check_grid(ndim: object, channels: object) -> None:
    """``ndim`` (1 or 2) and ``channels`` (>= 1) come from the problem; reject anything else."""
    if isinstance(ndim, bool) or ndim not in (1, 2):
        raise ConfigError(f"model ndim (spatial rank) is {ndim!r}, but must be 1 or 2")
    check_int("model channels", channels, 1)


def check_input(x: torch.Tensor, ndim: int, channels: int, name: str) -> None:
    """A state ``[B, channels, *ndim spatial axes]``, else a ValueError naming the network."""
    if x.dim() != ndim + 2 or x.shape[1] != channels:
        raise ValueError(f"{name} expects [B, {channels}, *{ndim} spatial axes], got shape {tuple(x.shape)}")


def conv(ndim: int, c_in: int, c_out: int, kernel: int, periodic: bool) -> nn.Module:
    """A same-size convolution; circular padding keeps a periodic domain translation-equivariant.

    Non-periodic domains use zero padding so the network can tell where the boundary is.
    """
    return CONV[ndim](
        c_in,
        c_out,
        kernel_size=kernel,
        padding=kernel // 2,
        padding_mode="circular" if periodic else "zeros",
    )


def position_channels(x: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Coordinate channels ``[B, P, *spatial]`` for the cell centres of ``x``'s grid."""
    spatial = x.shape[2:]
    channels = []
    for axis, n in enumerate(spatial):
        centres = (torch.arange(n, device=x.device, dtype=x.dtype) + 0.5) / n
        shape = [1] * len(spatial)
        shape[axis] = n
        centres = centres.reshape(shape).expand(*spatial)
        if periodic:
            channels += [torch.sin(2 * torch.pi * centres), torch.cos(2 * torch.pi * centres)]
        else:
            channels.append(2 * centres - 1)
    return torch.stack(channels).unsqueeze(0).expand(x.shape[0], -1, *spatial)
