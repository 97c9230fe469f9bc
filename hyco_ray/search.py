"""Builders of what a sweep is made of, by the names in the space file: schedulers (``scheduler.type``),
logger ``callbacks`` and the Optuna searcher. The names a spec may use, and the Ray-free Optuna samplers,
are in ``hyco_ray.names``; builders import Ray and MLflow themselves (importing this module imports neither).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from hyco.registry import Registry
from hyco_ray.names import STEP_KEY, build_sampler
from hyco_ray.space import mutable_keys

__all__ = ["CALLBACKS", "SCHEDULERS", "STEP_KEY", "build_sampler", "build_searcher", "tune_domain"]

#: ``fn(spec) -> ray.tune.schedulers.TrialScheduler``
SCHEDULERS: Registry = Registry("scheduler", "scheduler.type")
#: ``fn(spec, experiment_dir) -> ray.tune.Callback``
CALLBACKS: Registry = Registry("callback", "callbacks")


@SCHEDULERS.register("fifo")
def fifo_scheduler(spec):
    """Tune's default: every trial runs all epochs."""
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


@SCHEDULERS.register("asha")
def asha_scheduler(spec):
    """Asynchronous successive halving on epochs (continued across restores from checkpoints)."""
    from ray.tune.schedulers import ASHAScheduler

    sch = spec.scheduler
    return ASHAScheduler(time_attr=STEP_KEY, metric=spec.metric, mode=spec.mode, grace_period=sch.grace_period,
                         max_t=spec.max_t, reduction_factor=sch.reduction_factor)


@SCHEDULERS.register("pbt")
def pbt_scheduler(spec):
    """Population-based training: the worst trials take over a best trial's checkpoint (the whole
    trainer state) and go on with its settings perturbed; Tune's own random draws, seeded."""
    from ray.tune.schedulers import PopulationBasedTraining

    sch = spec.scheduler
    random.seed(spec.searcher.seed)  # PBT draws from Python's random
    return PopulationBasedTraining(
        time_attr=STEP_KEY, metric=spec.metric, mode=spec.mode, perturbation_interval=sch.perturbation_interval,
        hyperparam_mutations={k: _mutation(spec.space[k]) for k in mutable_keys(spec)},
        quantile_fraction=sch.quantile_fraction, resample_probability=sch.resample_probability,
        # asynchronous: Ray 2.60's synchronous PBT never restarts a paused trial after Tuner.restore
        custom_explore_fn=KeepInSpace({k: spec.space[k] for k in mutable_keys(spec)}), synch=False)


def tune_domain(param):
    """A space entry as a Tune distribution (a PBT sweep samples its population with Tune's)."""
    from ray import tune

    if param.type == "choice":
        return tune.choice(list(param.values))
    if param.type == "int":
        return (tune.lograndint if param.log else tune.randint)(int(param.low), int(param.high) + 1)
    return (tune.loguniform if param.type == "loguniform" else tune.uniform)(float(param.low), float(param.high))


def _mutation(param):
    return list(param.values) if param.type == "choice" else tune_domain(param)  # a list: PBT shifts to a neighbour


class KeepInSpace:
    """PBT's perturbation (x0.8, x1.2) can leave the space: clip floats and ints to their bounds."""

    def __init__(self, space: dict) -> None:
        self.space = space

    def __call__(self, config: dict) -> dict:
        for key, p in self.space.items():
            if p.type != "choice":
                value = min(max(config[key], p.low), p.high)
                config[key] = int(round(value)) if p.type == "int" else float(value)
        return config


@CALLBACKS.register("mlflow")
def mlflow_logger(spec, experiment_dir):
    """Ray's MLflow logger: a run per trial with its sampled values as params and every metric per epoch."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = spec.mlflow.tracking_uri or Path(experiment_dir, "mlruns").as_uri()
    if uri.startswith("file:"):  # MLflow >= 3.7 refuses a file store unless asked (it prefers a database)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=spec.mlflow.experiment_name or spec.name)




def build_searcher(spec, storage_url: str | None, seed_offset: int = 0):
    """The Optuna searcher (``seed_offset``: trials added to an existing study draw new points)."""
    from hyco_ray.pruning import PruningOptunaSearch
    from hyco_ray.sweep_dir import optuna_storage, study_name

    return PruningOptunaSearch(
        space={key: p.distribution() for key, p in spec.space.items()},
        metric=spec.metric,
        mode=spec.mode,
        objectives=spec.objectives,
        sampler=build_sampler(spec, spec.searcher.seed + seed_offset),
        storage=optuna_storage(storage_url) if storage_url else None,
        study_name=study_name(spec),
        max_t=spec.max_t,
        first=spec.defaults or None,
    )
