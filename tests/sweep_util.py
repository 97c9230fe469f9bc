"""Tiny search spaces for the sweep tests (1D Burgers, few epochs): shared by test_space/sweep/multinode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import IO

import yaml

#: a small problem: seconds per trial on 2 cores
SMALL = [
    "data.num_simulations=6",
    "data.num_steps=12",
    "trainer_params.train_sim=[0,1]",
    "trainer_params.val_sim=[2,3]",
    "trainer_params.test_sim=[4,5]",
    "trainer_params.num_predict_steps=3",
    "trainer_params.warmup_epochs=0",
    "trainer_params.num_random_ics=1",
    "model.synthetic.options.base_channels=8",
]

#: half of the domain observed: the interaction term (and so alpha) acts on the other half
HALF_OBSERVED = ["data.observation.mask=region", "data.observation.region=[[0.0,0.5]]"]

BASE_SPACE = {
    "name": "tiny",
    "base": "burgers_hybrid_quick_test",
    "overrides": ["trainer_params.epochs=3", *SMALL, *HALF_OBSERVED],
    "space": {
        "trainer_params.alpha": {"type": "uniform", "low": 0.05, "high": 1.0},
        "trainer_params.physical.max_iterations": {"type": "int", "low": 1, "high": 4},
    },
    "metric": "val_loss",
    "mode": "min",
    "num_samples": 4,
    "max_concurrent": 2,
    "scheduler": {"type": "fifo"},
    "searcher": {"type": "optuna", "sampler": "tpe", "seed": 0, "n_startup_trials": 2},
    "resources": {"cpu": 1, "gpu": 0},
    "max_failures": 2,
    "noise_seeds": 0,  # the seed-noise runs only where a test asks for them (tests/test_noise.py)
}


def write_space(tmp: Path, cache_dir: Path | None = None, epochs: int | None = None, **changes) -> Path:
    """A search-space file under ``tmp`` with ``changes`` applied to :data:`BASE_SPACE`."""
    data = json.loads(json.dumps(BASE_SPACE))
    data["storage_path"] = str(tmp / "sweeps")
    if epochs is not None:
        data["overrides"] = [f"trainer_params.epochs={epochs}", *SMALL, *HALF_OBSERVED]
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    if cache_dir is not None:
        data["overrides"] = [*data.get("overrides", []), f"data.cache_dir={cache_dir}"]
    path = tmp / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def fail_once_at(epoch: int):
    """A fault hook for ``run_sweep(after_epoch=...)``: every trial raises once, after computing
    ``epoch`` and before reporting it; a marker file in the trial directory lets the retry pass.
    (A nested function: Ray pickles it by value, so workers need not import this module.)"""

    def hook(at: int, trial_dir: Path) -> None:
        marker = trial_dir / ".hyco_injected_failure"
        if at == epoch and not marker.exists():
            marker.write_text(str(at))
            raise RuntimeError(f"injected failure at epoch {at}; the retry continues from the checkpoint")

    return hook


#: whether this test process started the local Ray that the sweeps of shared fixtures join
_SHARED_RAY: dict[str, bool] = {"up": False}


def start_shared_ray() -> None:
    """Start one local Ray (2 CPUs) for the sweeps of a module's shared fixtures, unless one is up.
    ``run_sweep`` joins a Ray that is up and leaves it up, so those sweeps pay one Ray start, not one
    each. A test that needs Ray of its own (or checks that a sweep shuts its Ray down) uses
    ``no_shared_ray``; tests that start ``hyco tune`` in a subprocess get their own Ray anyway."""
    import ray

    from hyco_ray.runner.sweep import connect_ray

    if not ray.is_initialized():
        _SHARED_RAY["up"] = connect_ray(None, 2, "pytest-shared")


def stop_shared_ray() -> None:
    if _SHARED_RAY["up"]:
        import ray

        from hyco_ray.runner import leftovers

        ray.shutdown()
        leftovers.forget()
        _SHARED_RAY["up"] = False


def start_tune(space: Path, log: IO[str], cwd: Path) -> subprocess.Popen:
    """``hyco tune <space> --num-cpus 2`` as a user starts it, in a session of its own (the test can
    signal or kill its whole group), its console into ``log``."""
    return subprocess.Popen([sys.executable, "-m", "hyco_ray.cli", "tune", str(space), "--num-cpus", "2"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
