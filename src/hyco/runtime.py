"""What decides whether two runs give the same numbers: seed, threads, dtype, device, versions."""

from __future__ import annotations

import platform
import random

import numpy as np
import torch

from hyco.config.schema import RunParams


def configure(run: RunParams) -> torch.device:
    """Seed everything, fix torch's thread count and pick the device; returns the device."""
    torch.set_num_threads(run.num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(run.seed)
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
        "device": run.device,
        "torch": torch.__version__,
        "phiflow": phi.__version__,
        "phiml": phiml.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
