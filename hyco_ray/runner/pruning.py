"""The Optuna searcher of a sweep, on Optuna's public ask-and-tell interface: each epoch is an
intermediate value, a trial stopped before ``max_t`` is PRUNED (Ray's ``OptunaSearch`` tells its
short-run loss as COMPLETE, which misleads TPE), each trial has the user attribute ``ray_trial_id``
and, once it ends, every number of its last result (val and test metrics, ``param_error``) as user
attributes; the study's ``metric_names`` are the objectives (plots and optuna-dashboard name them);
``first`` (the base config's defaults) is enqueued, so it is the first trial.

Multi-objective (``objectives``): Optuna refuses intermediate values there, so epochs are not
reported; a trial that ran all ``max_t`` epochs is told COMPLETE with its objectives' last values; a
trial stopped early (by ASHA on ``metric``) or diverged is told PRUNED without values: its values are
from fewer epochs, so it stays off the Pareto front (they are kept in its user attribute ``last_values``).
"""

from __future__ import annotations

import io
import logging
import math
import numbers
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from hyco_ray.core import sweep_dir
from hyco_ray.core.names import DIRECTIONS, STEP_KEY
from hyco_ray.core.sweep_dir import trial_metrics

_LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


class _LockFreePickler(pickle.Pickler):
    """Pickles a thread lock as a new one: Optuna 5.1's NSGA-II/GA samplers hold a ``threading.Lock``,
    and Tune pickles the searcher (with its study and sampler) when the sweep starts and saves."""

    def reducer_override(self, obj: Any) -> Any:
        kind = _LOCKS.get(type(obj))
        return (kind, ()) if kind is not None else NotImplemented


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _LockFreePickler(buffer).dump(obj)
    return buffer.getvalue()


class PruningOptunaSearch(Searcher):
    """Ask Optuna for each Tune trial, report every epoch, tell early-stopped trials PRUNED."""

    def __init__(self, space: dict, metric: str, mode: str, sampler: optuna.samplers.BaseSampler,
                 storage: optuna.storages.BaseStorage | None, study_name: str, max_t: int,
                 objectives: dict[str, str] | None = None, first: dict[str, Any] | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self._space, self._max_t, self._objectives = space, int(max_t), dict(objectives or {})
        modes = list(self._objectives.values()) or [mode]
        self._study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, load_if_exists=True,
                                          directions=[DIRECTIONS[m] for m in modes])
        with warnings.catch_warnings():  # Optuna 5.1 still marks it experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._study.set_metric_names(list(self._objectives) or [metric])  # else "Objective 0" everywhere
        if first:  # the defaults: Optuna's first trial (once: an existing study already holds it)
            self._study.enqueue_trial(first, skip_if_exists=True)
        self._trials: dict[str, optuna.Trial] = {}  # Ray trial id -> its Optuna trial, until told
        self._steps: dict[str, set[int]] = {}  # epochs already reported (a restored trial repeats none)

    def _storage_full(self, exc: Exception) -> bool:
        """A write to the study's database failed for lack of space: noted, and the sweep stops
        (``hyco_ray.runner.sweep``) resumably instead of dying on Optuna's ``StorageInternalError``."""
        if not sweep_dir.is_disk_full(exc):
            return False
        sweep_dir.note_disk_full(f"the Optuna study {self._study.study_name!r}")
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if sweep_dir.disk_full:
            return None  # the sweep is stopping; ask for nothing more
        try:
            trial = self._study.ask(self._space)
            trial.set_user_attr("ray_trial_id", trial_id)
        except optuna.exceptions.StorageInternalError as exc:
            if self._storage_full(exc):
                return None  # an asked trial without ray_trial_id is told FAIL on resume (reconcile_study)
            raise
        self._trials[trial_id], self._steps[trial_id] = trial, set()
        return dict(trial.params)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            self._on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._trials.pop(trial_id, None)  # told before a full disk kept this searcher's state from being saved
        except optuna.exceptions.StorageInternalError as exc:
            if not self._storage_full(exc):
                raise

    def _on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._objectives:
            return  # Optuna takes no intermediate values in a multi-objective study
        value, step = result.get(self.metric), int(result.get(STEP_KEY) or 0)
        if trial_id not in self._trials or value is None or math.isnan(float(value)) or step in self._steps[trial_id]:
            return  # +-inf (a diverged trial) is reported: TPE must learn that region is bad
        self._trials[trial_id].report(float(value), step)
        self._steps[trial_id].add(step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """COMPLETE with the last value of the metric (or of every objective) after all ``max_t``
        epochs; FAIL on an error; else PRUNED without values."""
        if trial_id not in self._trials:
            return
        result = result or {}
        self.on_trial_result(trial_id, result)  # the result that made ASHA stop the trial never reached on_trial_result
        try:
            self._tell(trial_id, self._trials[trial_id], result, error)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # told already (see on_trial_result)
        except optuna.exceptions.StorageInternalError as exc:
            if self._storage_full(exc):
                return  # left RUNNING in the study: told on resume (reconcile_study)
            raise
        del self._trials[trial_id]

    def _tell(self, trial_id: str, trial: optuna.Trial, result: dict, error: bool) -> None:
        values = [result.get(k) for k in self._objectives or [self.metric]]
        for key, value in trial_metrics(result).items():  # val and test metrics, param_error, ...
            trial.set_user_attr(key, value)
        if "training_error" in result:
            trial.set_user_attr("outcome", "diverged")  # as Tune's summary says; PRUNED keeps TPE away
        finite = all(isinstance(v, numbers.Real) and math.isfinite(v) for v in values)
        if finite and self._objectives:
            trial.set_user_attr("last_values", [float(v) for v in values])
        ran_all = finite and int(result.get(STEP_KEY) or 0) >= self._max_t
        state = TrialState.FAIL if error else TrialState.COMPLETE if ran_all else TrialState.PRUNED
        told = [float(v) for v in values] if state == TrialState.COMPLETE else None
        try:
            self._study.tell(trial, told[0] if told and not self._objectives else told, state=state)
        except (optuna.exceptions.StorageInternalError, optuna.exceptions.UpdateFinishedTrialError):
            raise
        except Exception as exc:  # noqa: BLE001 - Optuna refusing a value must not end the sweep
            logging.getLogger(__name__).warning("optuna refused trial %s as %s: %s", trial_id, state.name, exc)

    def __getstate__(self) -> dict:
        return {"state": _dumps(self.__dict__)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(pickle.loads(state["state"]))

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_bytes(_dumps(self.__dict__))

    def restore(self, checkpoint_path: str) -> None:
        self.__dict__.update(pickle.loads(Path(checkpoint_path).read_bytes()))
