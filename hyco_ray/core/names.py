"""The names a search-space file may use, Ray-free: ``hyco_ray.core.space`` checks a spec against them before
Ray starts. The Optuna samplers live here too (they need Optuna only, and the spec's first trial is
sampled without Ray); the logger callbacks, whose builders import Ray, are built by ``hyco_ray.runner.search``
under the names listed here (tests/test_hyco_ray_layers.py keeps the two in step). Schedulers and
parameter types are objects of their own (``hyco_ray.core.schedulers``, ``hyco_ray.core.params``).
Imports point one way: names <- params, schedulers <- space <- sweep_dir <- search <- sweep (docs/architecture.md).
"""

from __future__ import annotations

import optuna

from hyco.registry import Registry

#: the per-epoch counter a trial reports; it continues across restores from a checkpoint
STEP_KEY = "epoch"

#: a space file's ``mode`` -> Optuna's study direction (the one place the two words are mapped)
DIRECTIONS: dict[str, str] = {"min": "minimize", "max": "maximize"}
#: ``callbacks`` entries -> the optional package each needs (builders: ``hyco_ray.runner.search.CALLBACKS``)
CALLBACK_REQUIRES: dict[str, str | None] = {"mlflow": "mlflow"}

#: ``fn(searcher_spec, seed) -> optuna.samplers.BaseSampler``
SAMPLERS: Registry = Registry("sampler", "searcher.sampler")


@SAMPLERS.register("tpe")
def tpe_sampler(searcher, seed):
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=searcher.n_startup_trials, constant_liar=True)


@SAMPLERS.register("tpe-multivariate")
def tpe_multivariate_sampler(searcher, seed):
    """TPE with one joint density over all settings (Optuna's ``multivariate=True``) instead of one per
    setting: it can learn that two settings act together."""
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=searcher.n_startup_trials, constant_liar=True,
                                      multivariate=True)


@SAMPLERS.register("gp")
def gp_sampler(searcher, seed):
    """Optuna's Gaussian-process sampler (log expected improvement; needs torch and scipy, both here)."""
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=searcher.n_startup_trials)


@SAMPLERS.register("cmaes")
def cmaes_sampler(searcher, seed):
    """CMA-ES (one objective; needs the ``cmaes`` package: ``pip install 'hyco-ray[bench]'``). It models
    numeric settings only: a ``choice`` setting is drawn by its random fallback sampler."""
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=searcher.n_startup_trials,
                                        warn_independent_sampling=False)


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
#: samplers that take one objective only
SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)
#: samplers -> the optional package each needs (beyond Optuna)
SAMPLER_REQUIRES: dict[str, str] = {"cmaes": "cmaes"}


def build_sampler(spec, seed: int | None = None):
    """The searcher's Optuna sampler by name, seeded with ``searcher.seed`` unless ``seed``."""
    return SAMPLERS.build(spec.searcher.sampler, spec.searcher, spec.searcher.seed if seed is None else seed)
