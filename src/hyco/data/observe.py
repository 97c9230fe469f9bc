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

import math as pymath
from dataclasses import dataclass

import torch

from hyco.config.schema import ObservationConfig


@dataclass
class Observations:
    """Training observations.

    initial: ``[N, C, *spatial]`` frame 0 of each observed simulation (full, noisy)
    frames: ``[N, T', C, *spatial]`` observed frames ``stride, 2 stride, ..., T' stride``;
        zero outside each frame's mask
    mask: ``[*spatial]`` float, 1 where a point is observed in some frame (for masks fixed in
        time: in every frame)
    stride: simulated frames between two observed ones
    moving: ``[T', *spatial]`` per-frame masks where they change in time (moving sensors), else None
    """

    initial: torch.Tensor
    frames: torch.Tensor
    mask: torch.Tensor
    stride: int
    moving: torch.Tensor | None = None

    @property
    def frame_masks(self) -> torch.Tensor:
        """``[T', 1, *spatial]``: each observed frame's mask (broadcasts against ``frames``)."""
        per_frame = self.moving if self.moving is not None else self.mask.expand(self.frames.shape[1], *self.mask.shape)
        return per_frame[:, None]

    @property
    def observed_fraction(self) -> float:
        return float(self.frame_masks.mean())

    @property
    def num_frames(self) -> int:
        """Simulated frames spanned by the observations (rollout length from frame 0)."""
        return self.frames.shape[1] * self.stride


def box_mask(region: list[list[float]], array_shape: tuple[int, ...]) -> torch.Tensor:
    """1 inside the box ``region`` (one [lo, hi] per axis as fractions, x first), at least one cell."""
    mask = torch.zeros(array_shape)
    index = []
    for (lo, hi), size in zip(region, reversed(array_shape)):  # region is x-first
        start = int(round(lo * size))
        stop = max(int(round(hi * size)), start + 1)
        index.append(slice(start, stop))
    mask[tuple(reversed(index))] = 1.0
    return mask


def spatial_mask(cfg: ObservationConfig, array_shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """1 where observed. ``region`` bounds are fractions per axis in x, y order."""
    if cfg.mask == "full":
        return torch.ones(array_shape)
    if cfg.mask == "random":
        return (torch.rand(array_shape, generator=gen) < cfg.fraction).float()
    return box_mask(cfg.region, array_shape)


def sensor_position(path: list[list[float]], t: float) -> list[float]:
    """Where a sensor is at time ``t`` (fraction of the horizon): linear between waypoints
    ``[t, x(, y)]``, held before the first and after the last."""
    if t <= path[0][0]:
        return list(path[0][1:])
    for (t0, *p0), (t1, *p1) in zip(path, path[1:]):
        if t <= t1:
            w = (t - t0) / (t1 - t0)
            return [a + w * (b - a) for a, b in zip(p0, p1)]
    return list(path[-1][1:])


def spiral_sensor_paths(box: list[list[float]], per_side: int, keep: int, draw: int, waypoints: int = 6,
                        turn: float = 1.0, decay: float = 0.1) -> list[list[list[float]]]:
    """Moving sensors as the HYCO authors place them (their heat case): a ``per_side`` x
    ``per_side`` lattice over ``box`` ([[x0, x1], [y0, y1]], fractions), each sensor spiralling
    about the box centre (x' = [[-decay, -1], [1, -decay]] (x - centre) over a time ``turn``: a
    turn of ``turn`` radians, shrinking by exp(-decay turn)), held inside the box; ``keep`` of
    them drawn at random with seed ``draw``. Paths for ``data.observation.sensors`` sampled at
    ``waypoints`` equal times (linear in between)."""
    gen = torch.Generator().manual_seed(draw)
    chosen = sorted(torch.randperm(per_side**2, generator=gen)[:keep].tolist())
    (x0, x1), (y0, y1) = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    paths = []
    for k in chosen:
        px = x0 + (x1 - x0) * (k // per_side) / (per_side - 1)
        py = y0 + (y1 - y0) * (k % per_side) / (per_side - 1)
        path = []
        for j in range(waypoints):
            t = j / (waypoints - 1)
            angle, shrink = turn * t, pymath.exp(-decay * turn * t)
            x = cx + shrink * (pymath.cos(angle) * (px - cx) - pymath.sin(angle) * (py - cy))
            y = cy + shrink * (pymath.sin(angle) * (px - cx) + pymath.cos(angle) * (py - cy))
            path.append([round(t, 4), round(min(max(x, x0), x1), 4), round(min(max(y, y0), y1), 4)])
        paths.append(path)
    return paths


def sensor_masks(sensors: list[list[list[float]]], times: list[float], array_shape: tuple[int, ...]) -> torch.Tensor:
    """``[len(times), *array_shape]``: 1 in the cell that holds each sensor at each time.

    A sensor reads its cell's value (snapped, not interpolated): interpolating would mix in the
    neighbouring cells, which are hidden, so what is observed would no longer be a set of points.
    Positions are fractions of the domain, x first; 1.0 falls into the last cell.
    """
    masks = torch.zeros((len(times), *array_shape))
    sizes = list(reversed(array_shape))  # x first
    for j, t in enumerate(times):
        for path in sensors:
            cell = [min(int(p * n), n - 1) for p, n in zip(sensor_position(path, t), sizes)]
            masks[(j, *reversed(cell))] = 1.0
    return masks


def observe(trajectories: torch.Tensor, cfg: ObservationConfig, gen: torch.Generator) -> Observations:
    """Training-split trajectories ``[N, T+1, C, *spatial]`` -> what the learners may see."""
    if cfg.num_sims is not None:
        trajectories = trajectories[: cfg.num_sims]
    array_shape = tuple(trajectories.shape[3:])
    moving = None
    if cfg.mask == "sensors":
        horizon = (trajectories.shape[1] - 1) // cfg.stride * cfg.stride
        times = [j / horizon for j in range(cfg.stride, horizon + 1, cfg.stride)]
        per_frame = sensor_masks(cfg.sensors, times, array_shape)
        mask = per_frame.amax(0)  # observed in some frame
        moving = None if bool((per_frame == mask).all()) else per_frame
        frame_mask = per_frame[:, None]  # [T', 1, *S]
    else:
        mask = spatial_mask(cfg, array_shape, gen)
        frame_mask = mask
    initial = trajectories[:, 0].clone()
    frames = trajectories[:, cfg.stride :: cfg.stride] * frame_mask  # hidden values are gone from here on
    if cfg.noise > 0:
        n = len(initial)
        visible_max = torch.maximum(initial.abs().flatten(1).amax(1), frames.abs().flatten(1).amax(1))
        sigma = cfg.noise * visible_max
        initial = initial + sigma.reshape(n, *[1] * (initial.dim() - 1)) * torch.randn(initial.shape, generator=gen)
        noise = torch.randn(frames.shape, generator=gen)
        frames = frames + sigma.reshape(n, *[1] * (frames.dim() - 1)) * noise * frame_mask
    return Observations(initial=initial, frames=frames, mask=mask, stride=cfg.stride, moving=moving)
