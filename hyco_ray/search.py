"""Registries of what a sweep is built from, by the names in the space file: schedulers
(``scheduler.type``), Optuna samplers (``searcher.sampler``) and logger ``callbacks``. Builders import
Ray and MLflow themselves (checking a name imports neither); an optional package is named in ``requires``.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna

from hyco.registry import Registry

#: the per-epoch counter a trial reports; it continues across restores from a checkpoint
STEP_KEY = "epoch"

#: ``fn(spec) -> ray.tune.schedulers.TrialScheduler``
SCHEDULERS: Registry = Registry("scheduler", "scheduler.type")
#: ``fn(searcher_spec, seed) -> optuna.samplers.BaseSampler``
SAMPLERS: Registry = Registry("sampler", "searcher.sampler")
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


@SAMPLERS.register("tpe")
def tpe_sampler(searcher, seed):
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=searcher.n_startup_trials, constant_liar=True)


@SAMPLERS.register("random")
def random_sampler(searcher, seed):
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("nsga2")
def nsga2_sampler(searcher, seed):
    """NSGA-II (multi-objective sweeps only): generations of ``n_startup_trials`` trials (at least 2);
    the first generation is random."""
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, searcher.n_startup_trials))


#: samplers that need ``objectives`` (TPE and random take one objective or several)
MULTI_OBJECTIVE_SAMPLERS = ("nsga2",)


@CALLBACKS.register("mlflow")
def mlflow_logger(spec, experiment_dir):
    """Ray's MLflow logger: a run per trial with its sampled values as params and every metric per epoch."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = spec.mlflow.tracking_uri or Path(experiment_dir, "mlruns").as_uri()
    if uri.startswith("file:"):  # MLflow >= 3.7 refuses a file store unless asked (it prefers a database)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=spec.mlflow.experiment_name or spec.name)


mlflow_logger.requires = "mlflow"


def build_sampler(spec, seed: int | None = None):
    """The searcher's Optuna sampler by name, seeded with ``searcher.seed`` unless ``seed``."""
    return SAMPLERS.build(spec.searcher.sampler, spec.searcher, spec.searcher.seed if seed is None else seed)


def study_storage_url(spec, experiment_dir: str) -> str | None:
    """The study's database: ``auto`` puts a SQLite file into a local sweep directory."""
    if spec.searcher.storage != "auto":
        return spec.searcher.storage
    return None if "://" in experiment_dir else f"sqlite:///{experiment_dir}/optuna.db"  # s3:// etc.: in memory


def build_searcher(spec, storage_url: str | None, seed_offset: int = 0):
    """The Optuna searcher (``seed_offset``: trials added to an existing study draw new points);
    the study is named after the sweep unless ``searcher.study_name``."""
    from hyco_ray.pruning import PruningOptunaSearch

    return PruningOptunaSearch(
        space={key: p.distribution() for key, p in spec.space.items()},
        metric=spec.metric,
        mode=spec.mode,
        objectives=spec.objectives,
        sampler=build_sampler(spec, spec.searcher.seed + seed_offset),
        storage=optuna.storages.RDBStorage(storage_url) if storage_url else None,
        study_name=spec.searcher.study_name or spec.name,
        max_t=spec.max_t,
    )
