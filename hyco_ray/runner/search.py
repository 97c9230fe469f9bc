"""Builders of what a sweep is made of, by the names in the space file: logger ``callbacks`` and the
Optuna searcher. The names a spec may use, and the Ray-free Optuna samplers, are in ``hyco_ray.core.names``;
schedulers are objects in ``hyco_ray.core.schedulers``; builders import Ray and MLflow themselves (importing
this module imports neither).
"""

from __future__ import annotations

import os
from pathlib import Path

from hyco.registry import Registry
from hyco_ray.core.names import STEP_KEY, build_sampler

__all__ = ["CALLBACKS", "STEP_KEY", "build_sampler", "build_searcher"]

#: ``fn(spec, experiment_dir) -> ray.tune.Callback``
CALLBACKS: Registry = Registry("callback", "callbacks")


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
    from hyco_ray.core.sweep_dir import optuna_storage, study_name
    from hyco_ray.runner.pruning import PruningOptunaSearch

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
