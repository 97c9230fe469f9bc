"""Observation model for training data: spatial mask, relative noise, temporal stride, few sims.

Validation and test sims are always scored on full, clean fields. Rollouts start from full
(noisy) initial states: the mask hides targets from the loss, not the initial conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hyco.config.schema import ObservationConfig


@dataclass
class Observations:
    """Training observations.

    frames: ``[N, T', C, *spatial]`` observed frames (every ``stride``-th frame, noise added)
    mask: ``[*spatial]`` float, 1 where a point is observed
    stride: simulated frames between two observed ones
    """

    frames: torch.Tensor
    mask: torch.Tensor
    stride: int

    @property
    def observed_fraction(self) -> float:
        return float(self.mask.mean())


def spatial_mask(cfg: ObservationConfig, array_shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """1 where observed. ``region`` bounds are fractions per axis in x, y order."""
    if cfg.mask == "full":
        return torch.ones(array_shape)
    if cfg.mask == "random":
        return (torch.rand(array_shape, generator=gen) < cfg.fraction).float()
    mask = torch.zeros(array_shape)
    index = []
    for (lo, hi), size in zip(cfg.region, reversed(array_shape)):  # region is x-first
        start = int(round(lo * size))
        stop = max(int(round(hi * size)), start + 1)
        index.append(slice(start, stop))
    mask[tuple(reversed(index))] = 1.0
    return mask


def observe(trajectories: torch.Tensor, cfg: ObservationConfig, gen: torch.Generator) -> Observations:
    """Training-split trajectories ``[N, T+1, C, *spatial]`` -> what the learner is allowed to see."""
    if cfg.num_sims is not None:
        trajectories = trajectories[: cfg.num_sims]
    frames = trajectories[:, :: cfg.stride].clone()
    mask = spatial_mask(cfg, tuple(frames.shape[3:]), gen)
    if cfg.noise > 0:
        scale = trajectories.abs().flatten(1).amax(dim=1)  # max|u| per trajectory
        sigma = (cfg.noise * scale).reshape(-1, *[1] * (frames.dim() - 1))
        frames = frames + sigma * torch.randn(frames.shape, generator=gen)
    return Observations(frames=frames, mask=mask, stride=cfg.stride)
