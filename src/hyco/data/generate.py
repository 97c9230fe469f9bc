"""Simulate trajectories of a problem at its true parameters and cache them on disk.

The cache file name is a hash of everything that generated the data (problem config, number
of simulations and steps, seed, format version); the file stores that key and a checksum of
the array, so a corrupt file or one from another configuration is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from hyco.config.schema import DataConfig, PhysicalModelConfig
from hyco.physics import Problem
from hyco.runtime import generator

FORMAT_VERSION = 2  # 2: Burgers advection sign fixed
log = logging.getLogger(__name__)


def generation_record(data: DataConfig, physical: PhysicalModelConfig) -> dict:
    """Everything that decides the simulated numbers (observation settings do not)."""
    physical_record = asdict(physical)
    physical_record.pop("jit")  # tracing gives the same forward numbers (checked in tests)
    return {
        "format": FORMAT_VERSION,
        "physical": physical_record,
        "num_simulations": data.num_simulations,
        "num_steps": data.num_steps,
        "seed": data.seed,
    }


def dataset_key(data: DataConfig, physical: PhysicalModelConfig) -> str:
    text = json.dumps(generation_record(data, physical), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def initial_states(problem: Problem, data: DataConfig) -> torch.Tensor:
    """One generator per simulation, so sim i is the same whatever num_simulations is."""
    return torch.cat([problem.sample_initial(1, generator(data.seed, 1, i)) for i in range(data.num_simulations)])


def simulate(
    problem: Problem,
    data: DataConfig,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """All trajectories ``[N, num_steps + 1, C, *spatial]`` (frame 0 = initial state)."""
    initial = initial_states(problem, data)
    theta = problem.truth.to(torch.float32)
    parts = []
    with torch.no_grad():
        for start in range(0, len(initial), batch_size):
            x0 = initial[start : start + batch_size]
            frames = problem.rollout(x0, theta, data.num_steps)
            parts.append(torch.cat([x0[:, None], frames], dim=1))
            if progress:
                progress(len(x0))
    trajectories = torch.cat(parts).contiguous()
    if not torch.isfinite(trajectories).all():
        from hyco.errors import DataError

        raise DataError(
            f"simulation of {problem.name} produced non-finite values; dt={problem.cfg.dt} is "
            "probably too large for the true parameters (reduce model.physical.dt)"
        )
    return trajectories


def _checksum(array: torch.Tensor) -> str:
    return hashlib.sha256(array.numpy().tobytes()).hexdigest()


def cache_path(data: DataConfig, physical: PhysicalModelConfig) -> Path:
    root = Path(os.path.expandvars(data.cache_dir)).expanduser().resolve()
    return root / physical.name / f"{dataset_key(data, physical)}.pt"


def load_or_simulate(
    problem: Problem,
    data: DataConfig,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, Path, bool]:
    """Trajectories from the cache when valid, else simulated and cached. Returns (array, path, hit)."""
    path = cache_path(data, problem.cfg)
    key = dataset_key(data, problem.cfg)
    if path.exists():
        cached = _read_valid(path, key)
        if cached is not None:
            return cached, path, True
    trajectories = simulate(problem, data, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "key": key,
        "record": generation_record(data, problem.cfg),
        "checksum": _checksum(trajectories),
        "trajectories": trajectories,
    }
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache under the real name
    path.with_suffix(".json").write_text(json.dumps(payload["record"], indent=2, sort_keys=True))
    return trajectories, path, False


def _read_valid(path: Path, key: str) -> torch.Tensor | None:
    try:
        payload = torch.load(path, weights_only=True)
        ok = (
            isinstance(payload, dict)
            and payload.get("key") == key
            and _checksum(payload["trajectories"]) == payload.get("checksum")
        )
    except Exception as exc:  # unreadable file: rebuilt below, and said so
        log.warning("data cache %s is unreadable (%s); rebuilding it", path, exc)
        return None
    if not ok:
        log.warning("data cache %s is corrupt or from another configuration; rebuilding it", path)
        return None
    return payload["trajectories"]
