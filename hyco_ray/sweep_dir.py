"""The sweep directory ``<storage_path>/<name>``: every file name and path of a sweep, read and
written here only. It holds the validated spec (``hyco_sweep.yaml``: what ``--resume``, export and
report read), the Optuna study (``optuna.db``), ``summary.md`` and a directory per trial: a
``hyco.run`` run directory (``config.yaml``, ``metrics.jsonl``: the one record of its epochs,
``checkpoint.pt``, ``figures/``), Tune's ``result.json`` and checkpoints, and its PBT lineage
(``schedule.json``). A local one is read from JSON and YAML only: no pickle in it is loaded.

A trial is ``complete`` (all ``max_t`` epochs), ``stopped`` (early, by ASHA), ``error`` (after its
retries), ``diverged`` (NaN or inf, not retried) or ``unfinished`` (``hyco tune --resume`` goes on).
A multi-objective sweep's Pareto front: its complete trials that no other complete trial dominates (as
good in every objective, better in one); its knee, the default export: the member closest to the
utopia point after scaling each objective to [0, 1] over the front.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from hyco.config.yamlfile import read_yaml_file
from hyco.errors import ConfigError, HycoError
from hyco_ray.space import SweepSpec, parse_space

SPEC_FILE = "hyco_sweep.yaml"
SUMMARY_FILE = "summary.md"
STUDY_FILE = "optuna.db"
#: in a trial dir: the config it ran (``hyco export`` copies it; ``hyco.run.CONFIG_FILE``: a trial dir is
#: a run dir, tests/test_one_loop.py) and its segments of one trainer and setting each
TRIAL_CONFIG_FILE, LINEAGE_FILE = "config.yaml", "schedule.json"
#: sweeps written before trials were run directories: their config and epoch records
LEGACY_CONFIG_FILE, LEGACY_TRAINED_FILE = "hyco_config.yaml", "epochs.jsonl"


def objective_row(row: dict, objective_epoch: str) -> dict:
    """The row a trial reports: with ``objective_epoch: best`` each ``<key>`` that has a ``best_<key>``
    is the best epoch so far's (the epoch's own beside it as ``raw_<key>``); else the row itself."""
    if objective_epoch != "best" or any(k.startswith("raw_") for k in row):
        return row
    best = [k for k in row if f"best_{k}" in row and k != "epoch"]
    return {**row, **{f"raw_{k}": row[k] for k in best}, **{k: row[f"best_{k}"] for k in best}}


class SweepError(HycoError):
    """A sweep cannot start or resume (the message says what to do)."""


def is_remote(path: str) -> bool:
    """A storage URI (``s3://``, ``gs://``): Tune syncs it; nothing here reads it back."""
    return "://" in path


def experiment_dir(spec: SweepSpec) -> str:
    """``<storage_path>/<name>``; a local storage path is made absolute (Ray needs that)."""
    if is_remote(spec.storage_path):
        return spec.storage_path.rstrip("/") + "/" + spec.name
    return str(Path(spec.storage_path).expanduser().resolve() / spec.name)


def trial_dirname(trial_id: str) -> str:
    return f"trial_{trial_id}"


def trial_name(trial: Any) -> str:
    """A Tune trial's name and directory name (Tune's ``trial_name_creator``)."""
    return trial_dirname(trial.trial_id)


def trial_dir(spec: SweepSpec, trial_id: str) -> Path:
    """``<sweep dir>/trial_<id>`` of a local sweep, created."""
    path = Path(experiment_dir(spec)) / trial_dirname(trial_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_text(uri_or_path: str, text: str) -> None:
    """Write a file into a local or remote (``s3://``) sweep directory."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri_or_path)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(text.encode())


def check_writable_dir(path: str | Path, what: str, create: bool = False) -> Path:
    """Refuse, in one line, a local directory that cannot be written (read-only mount, no permission,
    a file in the way) before any work; ``create`` makes it and writes a probe (``--dry-run`` does not)."""
    path = Path(path).expanduser()
    there = path
    while not there.exists() and there != there.parent:
        there = there.parent
    if not there.is_dir():
        raise SweepError(f"{what} {str(path)!r}: {str(there)!r} is a file, not a directory; choose another path")
    if not os.access(there, os.W_OK | os.X_OK):
        raise SweepError(f"{what} {str(path)!r}: {str(there)!r} is not writable (read-only, or no permission); "
                         "choose another path")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise SweepError(f"{what} {str(path)!r} cannot be written: {exc.strerror or exc}; choose another path") from None
    return path


def save_spec(spec: SweepSpec) -> None:
    write_text(f"{experiment_dir(spec)}/{SPEC_FILE}", spec.to_yaml())


def load_saved_spec(exp_dir: str | Path) -> SweepSpec:
    """The spec a sweep started with (validated then)."""
    path = Path(exp_dir) / SPEC_FILE
    if not path.is_file():
        raise SweepError(f"{exp_dir} has no {SPEC_FILE}: is it a sweep directory written by hyco tune?")
    try:
        data = read_yaml_file(path, "sweep spec")
    except ConfigError as exc:  # hand-edited or hostile (e.g. a python tag): one line, exit 2
        raise SweepError(str(exc)) from None
    return parse_space(data, where=SPEC_FILE)


def study_name(spec: SweepSpec) -> str:
    return spec.searcher.study_name or spec.name


def study_storage_url(spec: SweepSpec, exp_dir: str) -> str | None:
    """The study's database: ``auto`` puts a SQLite file into a local sweep directory."""
    if spec.searcher.storage != "auto":
        return spec.searcher.storage
    return None if is_remote(exp_dir) else f"sqlite:///{exp_dir}/{STUDY_FILE}"  # s3:// etc.: in memory


@dataclass
class TrialRecord:
    trial_id: str
    status: str  # Tune's: TERMINATED, ERROR, PENDING, RUNNING, PAUSED
    params: dict[str, Any]
    history: list[dict]  # one result per epoch, ordered by epoch
    path: str
    num_failures: int = 0
    finished_at: float = math.inf  # Tune's time of its last result (s since the epoch)
    trained: int = 0  # epochs it trained (lines of its metrics.jsonl): under PBT also those an exploit replaced

    @property
    def trial_epochs(self) -> int:
        """Its compute: epochs reported (a retried trial's ``result.json`` can lack some its history has)."""
        own = sum(r.get("trial_id") in (None, self.trial_id) for r in self.history)
        return max(self.trained, own)

    @property
    def epochs(self) -> int:
        return int(self.history[-1].get("epoch", len(self.history))) if self.history else 0

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def config_path(self) -> Path:
        """The config the trial ran (``hyco export`` copies it)."""
        path = Path(self.path) / TRIAL_CONFIG_FILE
        return path if path.is_file() or not (Path(self.path) / LEGACY_CONFIG_FILE).is_file() else Path(self.path) / LEGACY_CONFIG_FILE

    def trained_rows(self) -> list[dict]:
        """Every epoch this trial trained, in order: under PBT also those before an exploit, which its
        history replaces by the exploited trial's."""
        from hyco.run import METRICS_FILE, metrics_lines

        if (Path(self.path) / METRICS_FILE).is_file():
            return [r for r in metrics_lines(self.path) if r.get("trial_id") in (None, self.trial_id)]
        legacy = Path(self.path) / LEGACY_TRAINED_FILE
        return [json.loads(line) for line in legacy.read_text().splitlines()] if legacy.is_file() else []

    def value(self, metric: str) -> float:
        return float(v) if isinstance(v := self.final.get(metric), (int, float)) else math.nan

    def outcome(self, max_t: int) -> str:
        if self.status != "TERMINATED":
            return "error" if self.status == "ERROR" else "unfinished"
        if "training_error" in self.final:
            return "diverged"
        return "complete" if self.epochs >= max_t else "stopped"


@dataclass
class Sweep:
    path: Path
    spec: SweepSpec
    trials: list[TrialRecord] = field(default_factory=list)

    def by_outcome(self, outcome: str) -> list[TrialRecord]:
        return [t for t in self.trials if t.outcome(self.spec.max_t) == outcome]

    def best(self, trial_id: str | None = None) -> TrialRecord:
        """The named trial (id or directory name), else the best complete one by the sweep's metric
        (the first to finish on a tie)."""
        if trial_id:
            found = [t for t in self.trials if trial_id in (t.trial_id, Path(t.path).name)]
            if not found:
                raise HycoError(f"no trial {trial_id!r} in {self.path}")
            return found[0]
        metric, sign = self.spec.metric, 1.0 if self.spec.mode == "min" else -1.0
        done = [t for t in self.by_outcome("complete") if math.isfinite(t.value(metric))]
        if not done:
            raise HycoError(f"no trial of {self.path} finished all {self.spec.max_t} epochs with a finite {metric}")
        return min(done, key=lambda t: sign * t.value(metric))

    def defaults_trial(self) -> TrialRecord | None:
        """The trial that ran the base config's own values (the searcher's first point), if any."""
        marked = [t for t in self.trials if t.history and t.history[0].get("defaults")]
        return min(marked, key=lambda t: t.history[0].get("done_at", math.inf)) if marked else None

    def _minimised(self, trials: list[TrialRecord]) -> np.ndarray:
        """The objectives of ``trials``, signed so that smaller is better: ``[trials, objectives]``."""
        signs = [1.0 if mode == "min" else -1.0 for mode in self.spec.objectives.values()]
        rows = [[s * t.value(k) for s, k in zip(signs, self.spec.objectives)] for t in trials]
        return np.array(rows, dtype=float).reshape(len(trials), len(signs))

    def pareto_front(self) -> list[TrialRecord]:
        """Complete trials with finite objectives that no other such trial dominates, in finishing order."""
        done = [t for t in self.by_outcome("complete") if np.isfinite(self._minimised([t])).all()]
        p = self._minimised(done)  # p[i] dominates p[j]: as good in every objective, better in one
        dominated = ((p[:, None] <= p[None]).all(-1) & (p[:, None] < p[None]).any(-1)).any(0)
        return [t for t, out in zip(done, dominated) if not out]

    def knee(self) -> TrialRecord:
        """The front member closest to the utopia point, each objective scaled to [0, 1] over the
        front (the first such trial to finish on a tie)."""
        front = self.pareto_front()
        if not front:
            raise HycoError(f"no trial of {self.path} finished all {self.spec.max_t} epochs with finite objectives")
        p = self._minimised(front)
        span = p.max(0) - p.min(0)
        distances = [math.hypot(*row) for row in (p - p.min(0)) / np.where(span > 0, span, 1.0)]
        return front[distances.index(min(distances))]

    def default_pick(self, trial_id: str | None = None) -> TrialRecord:
        """What ``hyco export`` writes: the named trial, else the knee (multi-objective) or the best trial."""
        if trial_id is None and self.spec.multi_objective:
            return self.knee()
        return self.best(trial_id)

    def study(self) -> optuna.Study | None:
        """The sweep's Optuna study from its database; None where it lived in memory."""
        url = study_storage_url(self.spec, str(self.path))
        if url and self.spec.searcher.storage == "auto" and not (self.path / STUDY_FILE).exists():
            url = None
        return optuna.load_study(study_name=study_name(self.spec), storage=url) if url else None


#: what Tune adds to a reported row (its timings, counters); merged into the record's rows
_TUNE_KEYS = ("training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "time_since_restore",
              "iterations_since_restore", "date", "pid", "done")


def _read_history(path: Path, trial_id: str, objective_epoch: str) -> tuple[list[dict], int]:
    """One row per epoch, as the trial reported it (:func:`objective_row`), and the epochs it trained.
    The record is the trial's ``metrics.jsonl`` (:func:`hyco.run.read_metrics`: the epochs its latest
    state stands on, under PBT the exploited trial's before the exploit), with Tune's timings from
    ``result.json`` on the epochs it trained itself, and a last row only Tune has: a diverged epoch."""
    from hyco.run import METRICS_FILE, metrics_lines, read_metrics

    results = path / "result.json"
    reported = [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.is_file() else []
    tune_rows = {int(row.get("epoch", row["training_iteration"])): row for row in reported}
    if not (path / METRICS_FILE).is_file():
        return _read_legacy_history(path, tune_rows, len(reported))
    rows = {int(r["epoch"]): r for r in read_metrics(path)}
    for epoch, row in rows.items():
        tuned = tune_rows.get(epoch, {})
        if tuned.get("trial_id") == row.get("trial_id"):
            row.update({k: tuned[k] for k in _TUNE_KEYS if k in tuned and k not in row})
    last = max(rows, default=0)
    rows.update({e: r for e, r in tune_rows.items() if e > last and "training_error" in r})
    trained = sum(r.get("trial_id") in (None, trial_id) for r in metrics_lines(path))
    return [objective_row(rows[k], objective_epoch) for k in sorted(rows)], trained


def _read_legacy_history(path: Path, rows: dict[int, dict], reported: int) -> tuple[list[dict], int]:
    """A trial of a sweep written before trials were run directories: ``result.json``'s rows, where
    its latest checkpoint's ``history.json`` says another trainer ran that epoch (PBT) or Tune lost it."""
    for checkpoint in sorted(path.glob("checkpoint_*/history.json"))[-1:]:
        for row in json.loads(checkpoint.read_text()):
            epoch = int(row["epoch"])
            if epoch not in rows or rows[epoch].get("trial_id") != row.get("trial_id"):
                rows[epoch] = row
    trained = path / LEGACY_TRAINED_FILE
    return [rows[k] for k in sorted(rows)], len(trained.read_text().splitlines()) if trained.is_file() else reported


def load_sweep(path: str | Path) -> Sweep:
    """Trials of a local sweep directory (Tune's experiment states, oldest first, each trial's
    ``result.json`` and checkpoint history), in the order they finished."""
    path = Path(path).expanduser().resolve()
    spec, states = load_saved_spec(path), {}
    for state_file in sorted(path.glob("experiment_state-*.json")):  # timestamped names: oldest first
        for trial_json, run_json in json.loads(state_file.read_text())["trial_data"]:
            trial = json.loads(trial_json)
            states[trial["trial_id"]] = (trial, json.loads(run_json))
    if not states:
        raise HycoError(f"{path}: no Tune experiment state (experiment_state-*.json); did a trial start?")
    trials = []
    for trial_id, (t, run) in states.items():
        trial_path = path / t.get("relative_logdir", trial_dirname(trial_id))
        params = {k: t["config"][k] for k in spec.space if k in t.get("config", {})}
        history, trained = _read_history(trial_path, trial_id, spec.objective_epoch)
        trials.append(TrialRecord(trial_id, t["status"], params, history, str(trial_path), int(run.get("num_failures", 0)),
                                  float(run.get("last_result_time") or math.inf), trained))
    trials.sort(key=lambda r: (r.finished_at, r.path))
    return Sweep(path, spec, trials)
