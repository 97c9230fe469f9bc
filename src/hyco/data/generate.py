"""Simulate trajectories of a problem at its true parameters and cache them on disk.

By default the data come from P itself (same grid and step). ``data.simulation.refine: k``
simulates on a k times finer grid with a k^2 smaller step and restricts each frame to P's grid
(:meth:`hyco.physics.Problem.restrict`): data with model error, as real data have.
``data.simulation.decay: r`` (heat only) adds a term P lacks, a linear loss -r u (:func:`with_decay`).

The cache file name is a hash of everything that generated the data (problem config, number
of simulations and steps, seed, floating-point precision, format version); the file stores that key and a checksum of
the array, so a corrupt file or one from another configuration is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch
from phiml import math

from hyco.config.schema import DataConfig, PhysicalModelConfig
from hyco.physics import Problem, make_problem
from hyco.runtime import generator, phiflow_device

FORMAT_VERSION = 3  # 2: Burgers advection sign fixed; 3: dtype in the key, stored in that dtype
log = logging.getLogger(__name__)


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def generation_record(data: DataConfig, physical: PhysicalModelConfig, dtype: str) -> dict:
    """Everything that decides the simulated numbers (observation settings do not).

    ``data.simulation`` enters only where it differs from P's own grid, so the default keeps the
    keys (and cache files) made before it existed.
    """
    physical_record = asdict(physical)
    physical_record.pop("jit")  # tracing gives the same forward numbers (checked in tests)
    record = {
        "format": FORMAT_VERSION,
        "physical": physical_record,
        "num_simulations": data.num_simulations,
        "num_steps": data.num_steps,
        "seed": data.seed,
        "dtype": dtype,
    }
    if data.simulation.refine != 1 or data.simulation.decay != 0:
        record["simulation"] = asdict(data.simulation)
        if data.simulation.decay == 0:  # refine alone: the key as before decay existed
            record["simulation"].pop("decay")
    return record


def with_decay(frames: torch.Tensor, decay: float, frame_dt: float) -> torch.Tensor:
    """Frames ``[B, T+1, ...]`` of u_t = L u (L linear, u = 0 or periodic at the boundary) -> those of
    u_t = L u - decay u: exactly exp(-decay t) times them (a constant rate commutes with L)."""
    times = torch.arange(frames.shape[1], dtype=torch.float64, device=frames.device) * frame_dt
    factor = torch.exp(-decay * times).to(frames.dtype)
    return frames * factor.reshape(1, -1, *[1] * (frames.dim() - 2))


def dataset_key(data: DataConfig, physical: PhysicalModelConfig, dtype: str) -> str:
    text = json.dumps(generation_record(data, physical, dtype), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def refined_problem(problem: Problem, refine: int) -> Problem:
    """P on a grid ``refine`` times finer per axis, stepping ``refine**2`` times more often.

    The frame times stay the same; the step shrinks with dx^2 so every explicit scheme here
    stays as stable as on P's grid and the O(dt) and O(dx^2) errors shrink together.
    """
    if refine == 1:
        return problem
    cfg = replace(
        problem.cfg,
        resolution=[n * refine for n in problem.resolution],
        dt=problem.cfg.dt / refine**2,
        substeps=problem.cfg.substeps * refine**2,
    )
    return make_problem(cfg)


def initial_states(problem: Problem, data: DataConfig) -> torch.Tensor:
    """One generator per simulation, so sim i is the same whatever num_simulations is."""
    return torch.cat([problem.sample_initial(1, generator(data.seed, 1, i)) for i in range(data.num_simulations)])


def simulate(
    problem: Problem,
    data: DataConfig,
    dtype: str,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """All trajectories ``[N, num_steps + 1, C, *spatial]`` (frame 0 = initial state) in ``dtype``.

    The precision is set here for the simulation alone, so the numbers do not depend on the
    process-wide precision of whichever command fills the cache. It runs on PhiFlow's device (the
    run's device) and returns CPU tensors.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype is {dtype!r}, but must be one of {sorted(DTYPES)}")
    torch_dtype = DTYPES[dtype]
    device = phiflow_device()
    refine = data.simulation.refine
    simulator = refined_problem(problem, refine)  # P itself unless refine > 1 (model error)
    initial = initial_states(simulator, data).to(device, torch_dtype)
    theta = problem.truth.to(device, torch_dtype)
    parts = []
    with torch.no_grad(), math.precision(64 if torch_dtype == torch.float64 else 32):
        for start in range(0, len(initial), batch_size):
            x0 = initial[start : start + batch_size]
            frames = torch.cat([x0[:, None], simulator.rollout(x0, theta, data.num_steps)], dim=1)
            if refine > 1:
                frames = problem.restrict(frames.flatten(0, 1), refine).unflatten(0, frames.shape[:2])
            if data.simulation.decay:
                frames = with_decay(frames, data.simulation.decay, problem.frame_dt)
            parts.append(frames.cpu())
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


def cache_path(data: DataConfig, physical: PhysicalModelConfig, dtype: str) -> Path:
    root = Path(os.path.expandvars(data.cache_dir)).expanduser().resolve()
    return root / physical.name / f"{dataset_key(data, physical, dtype)}.pt"


def load_or_simulate(
    problem: Problem,
    data: DataConfig,
    dtype: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, Path, bool]:
    """Trajectories from the cache when valid, else simulated and cached. Returns (array, path, hit).

    ``dtype`` (``run_params.dtype``) is part of the key: float32 and float64 data differ.
    """
    path = cache_path(data, problem.cfg, dtype)
    key = dataset_key(data, problem.cfg, dtype)
    if path.exists():
        cached = _read_valid(path, key)
        if cached is not None:
            return cached, path, True
    trajectories = simulate(problem, data, dtype, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "key": key,
        "record": generation_record(data, problem.cfg, dtype),
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
