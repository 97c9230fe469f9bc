"""What decides whether two runs give the same numbers: seed, threads, dtype, device, versions.

:func:`configure` is the one place that sets process-wide numeric state; every entry point
(``hyco train``, ``hyco data``, ``hyco evaluate``, a sweep trial, the sweep's data preparation,
:func:`hyco.training.create_trainer`) calls it before any numbers are made.
"""

from __future__ import annotations

import platform
import random

import numpy as np
import torch
from phiml import math

from hyco.config.schema import RunParams


def configure(run: RunParams) -> torch.device:
    """Seed everything, fix torch's thread count, PhiML's precision and the default device of
    PhiFlow's own arrays; returns the device."""
    torch.set_num_threads(run.num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # TorchScript's profiling executor swaps a traced frame for a specialised graph after its first
    # runs, and the two differ in the last bits: a resumed run, or a trial in a reused worker,
    # would then depend on how often each trace had run. No specialisation keeps every run of a
    # trace identical (rollouts ~1.7x slower than specialised, still several x faster than eager).
    torch.jit.set_fusion_strategy([("STATIC", 0), ("DYNAMIC", 0)])
    seed_everything(run.seed)
    math.set_global_precision(precision_bits(run))
    device = resolve_device(run)
    use_device(device)
    return device


def precision_bits(run: RunParams) -> int:
    return 64 if run.dtype == "float64" else 32


def require_precision(run: RunParams) -> None:
    """Fail early when the process-wide precision is not the run's (``configure`` was skipped)."""
    if math.get_precision() != precision_bits(run):
        from hyco.errors import HycoError

        raise HycoError(
            f"PhiML's precision is {math.get_precision()} bits, but run_params.dtype is {run.dtype}: "
            "call hyco.runtime.configure(cfg.run_params) first (create_trainer does)"
        )


def resolve_device(run: RunParams) -> torch.device:
    """``run_params.device`` as a torch device; ``auto`` is cuda where torch sees a GPU."""
    if run.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if run.device == "cuda" and not torch.cuda.is_available():
        from hyco.errors import ConfigError

        raise ConfigError("run_params.device is 'cuda', but torch sees no GPU; use cpu or auto")
    return torch.device(run.device)


def use_device(device: torch.device) -> None:
    """Make PhiFlow build its own arrays (grids, constants) on ``device`` too.

    PhiFlow picks cuda:0 by itself whenever torch sees a GPU; a CPU run on a GPU machine would
    then mix devices.
    """
    from phi.torch import TORCH

    TORCH.set_default_device("GPU" if device.type == "cuda" else "CPU")


def phiflow_device() -> torch.device:
    """The device PhiFlow builds its own arrays on (set by :func:`use_device`): the arrays a
    solver is handed must live there too."""
    from phi.torch import TORCH

    return torch.device("cuda" if TORCH.get_default_device().device_type == "GPU" else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int, *offsets: int) -> torch.Generator:
    """A torch generator for one purpose: ``offsets`` keep streams (splits, sims, epochs) apart."""
    value = seed
    for off in offsets:
        value = (value * 1_000_003 + off) % 2**63
    return torch.Generator().manual_seed(value)


def environment(run: RunParams) -> dict:
    """Recorded in every run directory and exported config."""
    import phi
    import phiml

    return {
        "seed": run.seed,
        "num_threads": torch.get_num_threads(),
        "dtype": run.dtype,
        "device": str(resolve_device(run)),  # as it ran (auto resolved)
        "torch": torch.__version__,
        "phiflow": phi.__version__,
        "phiml": phiml.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
