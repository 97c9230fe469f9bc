"""Train/val/test split by simulation, plus the training observations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hyco.config.schema import RunConfig
from hyco.data.generate import load_or_simulate
from hyco.data.observe import Observations, observe
from hyco.physics import Problem
from hyco.runtime import generator

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """What a run may use: the training *observations* (never the full training trajectories, see
    :mod:`hyco.data.observe`) and the full clean val/test trajectories (``[N, T+1, C, *spatial]``)."""

    observations: Observations
    val: torch.Tensor
    test: torch.Tensor
    cache_file: Path | None = None


def split(trajectories: torch.Tensor, cfg: RunConfig, cache_file: Path | None = None) -> Dataset:
    tp = cfg.trainer_params
    obs = observe(trajectories[tp.train_sim], cfg.data.observation, generator(cfg.data.seed, 2))
    return Dataset(
        observations=obs,
        val=trajectories[tp.val_sim],
        test=trajectories[tp.test_sim] if tp.test_sim else trajectories[:0],
        cache_file=cache_file,
    )


def build_dataset(
    cfg: RunConfig, problem: Problem, progress: Callable[[int], None] | None = None
) -> Dataset:
    """Load (or simulate and cache) the trajectories, split them, apply the observation model."""
    trajectories, path, hit = load_or_simulate(problem, cfg.data, cfg.run_params.dtype, progress=progress)
    log.info("data %s %s", "loaded from" if hit else "simulated into", path)
    return split(trajectories, cfg, path)
