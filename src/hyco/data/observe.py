"""The observation model: what the learners of a training simulation are allowed to see.

The contract (docs/architecture.md, "The observation contract"):

* frame 0 of each observed training simulation is known in full (with the measurement noise);
* after it, only the points inside the spatial ``mask`` of every ``stride``-th frame are known,
  with noise of standard deviation ``noise * max|observed u|`` of that simulation;
* nothing else: hidden values are zeroed *here*, so no loss, model input or interaction
  initial state downstream can depend on them. A training run is bitwise unchanged when every
  hidden value of the simulated trajectories is changed (``tests/test_observation_contract.py``).

Validation and test simulations are scored on full, clean fields (they are other simulations,
never training inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hyco.config.schema import ObservationConfig


@dataclass
class Observations:
    """Training observations.

    initial: ``[N, C, *spatial]`` frame 0 of each observed simulation (full, noisy)
    frames: ``[N, T', C, *spatial]`` observed frames ``stride, 2 stride, ..., T' stride``;
        zero outside ``mask``
    mask: ``[*spatial]`` float, 1 where a point is observed
    stride: simulated frames between two observed ones
    """

    initial: torch.Tensor
    frames: torch.Tensor
    mask: torch.Tensor
    stride: int

    @property
    def observed_fraction(self) -> float:
        return float(self.mask.mean())

    @property
    def num_frames(self) -> int:
        """Simulated frames spanned by the observations (rollout length from frame 0)."""
        return self.frames.shape[1] * self.stride


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
    """Training-split trajectories ``[N, T+1, C, *spatial]`` -> what the learners may see."""
    if cfg.num_sims is not None:
        trajectories = trajectories[: cfg.num_sims]
    mask = spatial_mask(cfg, tuple(trajectories.shape[3:]), gen)
    initial = trajectories[:, 0].clone()
    frames = trajectories[:, cfg.stride :: cfg.stride] * mask  # hidden values are gone from here on
    if cfg.noise > 0:
        n = len(initial)
        visible_max = torch.maximum(initial.abs().flatten(1).amax(1), frames.abs().flatten(1).amax(1))
        sigma = cfg.noise * visible_max
        initial = initial + sigma.reshape(n, *[1] * (initial.dim() - 1)) * torch.randn(initial.shape, generator=gen)
        noise = torch.randn(frames.shape, generator=gen)
        frames = frames + sigma.reshape(n, *[1] * (frames.dim() - 1)) * noise * mask
    return Observations(initial=initial, frames=frames, mask=mask, stride=cfg.stride)
