"""Optuna TPE + ASHA, with ASHA-stopped trials told to Optuna as PRUNED.

Ray's ``OptunaSearch`` tells Optuna COMPLETE with the short-run loss of a trial that ASHA
stopped, which misleads TPE (a 1-epoch loss is compared with 8-epoch losses). Here every
epoch is reported as an intermediate value (``trial.report(value, epoch)``) and a trial that
stops before ``max_t`` epochs without an error is told ``TrialState.PRUNED``; Optuna keeps its
intermediate values and TPE treats it as a pruned trial.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.air.constants import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from hyco_ray.space import SweepSpec

log = logging.getLogger(__name__)

#: the per-epoch counter a trial reports; it continues across restores from a checkpoint
STEP_KEY = "epoch"


class PruningOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that reports intermediate values and tells early-stopped trials PRUNED."""

    def __init__(self, *args: Any, max_t: int, step_key: str = STEP_KEY, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_t = int(max_t)
        self._step_key = step_key

    def _step(self, result: dict) -> int:
        step = result.get(self._step_key)
        return int(step if step is not None else result.get(TRAINING_ITERATION, 0))

    def _report(self, trial_id: str, result: dict) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        value = result.get(self.metric)
        if ot_trial is None or value is None or math.isnan(float(value)):
            return  # +-inf (a diverged trial) is reported: TPE must learn that region is bad
        step = self._step(result)
        if step in ot_trial._cached_frozen_trial.intermediate_values:
            return  # a restored trial repeats no epoch, but a duplicate result must not warn
        ot_trial.report(float(value), step)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if isinstance(self.metric, list) or trial_id in self._completed_trials:
            return
        self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        value = result.get(self.metric) if result else None
        if result:
            # the result that made ASHA stop the trial never reached on_trial_result
            self._report(trial_id, result)
        if result and "training_error" in result:
            ot_trial.set_user_attr("outcome", "diverged")  # as Tune's summary says; PRUNED keeps TPE away
        if error:
            state, told = TrialState.FAIL, None
        elif value is None or not math.isfinite(float(value)):
            state, told = TrialState.PRUNED, None
        elif self._step(result) < self._max_t:
            state, told = TrialState.PRUNED, None
        else:
            state, told = TrialState.COMPLETE, float(value)
        try:
            self._ot_study.tell(ot_trial, told, state=state)
        except Exception as exc:  # noqa: BLE001 - Optuna refusing a value must not end the sweep
            log.warning("optuna refused trial %s as %s: %s", trial_id, state.name, exc)
        self._completed_trials.add(trial_id)


def study_storage_url(spec: SweepSpec, experiment_dir: str) -> str | None:
    """The study's database: ``auto`` puts a SQLite file into a local sweep directory."""
    storage = spec.searcher.storage
    if storage == "auto":
        if "://" in experiment_dir:  # s3:// etc.: no SQLite there; the study lives in memory
            return None
        return f"sqlite:///{experiment_dir}/optuna.db"
    return storage


SAMPLERS = {
    "tpe": lambda sea, seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=sea.n_startup_trials, constant_liar=True),
    "random": lambda sea, seed: optuna.samplers.RandomSampler(seed=seed),
}


def build_sampler(spec: SweepSpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The searcher's Optuna sampler by name, seeded with ``searcher.seed`` unless ``seed``."""
    return SAMPLERS[spec.searcher.sampler](spec.searcher, spec.searcher.seed if seed is None else seed)


def build_searcher(spec: SweepSpec, storage_url: str | None, seed_offset: int = 0) -> PruningOptunaSearch:
    """TPE (or random) sampler, seeded (``seed_offset``: trials added to an existing study draw
    new points); the study is named after the sweep."""
    sea, sampler = spec.searcher, build_sampler(spec, spec.searcher.seed + seed_offset)
    storage = optuna.storages.RDBStorage(storage_url) if storage_url else None
    return PruningOptunaSearch(
        space={key: p.distribution() for key, p in spec.space.items()},
        metric=spec.metric,
        mode=spec.mode,
        sampler=sampler,
        storage=storage,
        study_name=sea.study_name or spec.name,
        max_t=spec.max_t,
    )


def build_scheduler(spec: SweepSpec) -> TrialScheduler:
    sch = spec.scheduler
    if sch.type == "fifo":
        return FIFOScheduler()  # Tune's default: every trial runs all epochs
    return ASHAScheduler(
        time_attr=STEP_KEY,  # epochs, continued across restores from checkpoints
        metric=spec.metric,
        mode=spec.mode,
        grace_period=sch.grace_period,
        max_t=spec.max_t,
        reduction_factor=sch.reduction_factor,
    )
