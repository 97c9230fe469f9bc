"""The sweep directory ``<storage_path>/<name>``: every file name and path of a sweep, read and
written here only. It holds the validated spec (``hyco_sweep.yaml``: what ``--resume``, export and
report read), the Optuna study (``optuna.db``), ``summary.md`` and a directory per trial: a
``hyco.run`` run directory (``config.yaml``, ``metrics.jsonl``: the one record of its epochs,
``checkpoint.pt``, ``figures/``), Tune's ``result.json`` and checkpoints, and its PBT lineage
(``schedule.json``); ``noise/`` and ``noise.json``: the defaults on the noise seeds
(:mod:`hyco_ray.core.noise`). A local one is read from JSON and YAML only: no pickle in it is loaded.

A trial is ``complete`` (all ``max_t`` epochs), ``stopped`` (early, by ASHA), ``error`` (after its
retries), ``diverged`` (NaN or inf, not retried) or ``unfinished`` (``hyco tune --resume`` goes on).
A multi-objective sweep's Pareto front: its complete trials that no other complete trial dominates (as
good in every objective, better in one); its knee, the default export: the member closest to the
utopia point after scaling each objective to [0, 1] over the front.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import numbers
import os
import socket
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pyarrow
import pyarrow.fs

from hyco.config.yamlfile import read_yaml_file
from hyco.errors import ConfigError, HycoError
from hyco_ray.core.space import SweepSpec, parse_space

SPEC_FILE = "hyco_sweep.yaml"
SUMMARY_FILE = "summary.md"
STUDY_FILE = "optuna.db"
#: in a trial dir: the config it ran (``hyco export`` copies it; ``hyco.run.CONFIG_FILE``: a trial dir is
#: a run dir, tests/test_one_loop.py) and its segments of one trainer and setting each
TRIAL_CONFIG_FILE, LINEAGE_FILE = "config.yaml", "schedule.json"
#: sweeps written before trials were run directories: their config and epoch records
LEGACY_CONFIG_FILE, LEGACY_TRAINED_FILE = "hyco_config.yaml", "epochs.jsonl"
#: the defaults' runs on the noise seeds (``noise/defaults/seed_<s>/``, as confirm's) and their spread
NOISE_DIR, NOISE_FILE = "noise", "noise.json"


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
    """Write a file into a local (write, then rename) or remote (``s3://``) sweep directory."""
    if not is_remote(uri_or_path):
        Path(uri_or_path).parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(uri_or_path, text)
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
    """The study's database: ``auto`` puts a SQLite file into a local sweep directory; a sweep on
    ``s3://`` keeps it in memory unless ``searcher.storage`` (``--study-storage``) names one that
    outlives the driver (docs/cluster.md)."""
    if spec.searcher.storage != "auto":
        return spec.searcher.storage
    return None if is_remote(exp_dir) else f"sqlite:///{exp_dir}/{STUDY_FILE}"  # s3:// etc.: in memory


#: ``searcher.storage`` scheme of an Optuna journal file (append-only, on a disk every node shares)
JOURNAL_SCHEME = "journal://"


def optuna_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage of a ``searcher.storage`` URL: ``journal:///abs/path/study.log`` is Optuna's
    JournalStorage in that file (shared disk: NFS/EFS; an open-file lock, which NFS honours), any other
    URL a database (``sqlite:////abs/path.db``, ``postgresql://user@head:5432/hyco``)."""
    if url.startswith(JOURNAL_SCHEME):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = url[len(JOURNAL_SCHEME):]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    return optuna.storages.RDBStorage(url)


#: a result's numbers that are Tune's bookkeeping or ours, not a trial's scores
NOT_METRICS = frozenset({"training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "pid", "done_at",
                         "restored_from_epoch", "num_threads", "iterations_since_restore", "time_since_restore"})


def trial_metrics(result: dict) -> dict[str, float | int]:
    """Every finite number a trial reported in ``result`` (val, test and train metrics, ``param_error``,
    ``epoch``): its Optuna trial's user attributes, so the study alone says what a trial scored."""
    return {k: int(v) if isinstance(v, numbers.Integral) else float(v) for k, v in result.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and k not in NOT_METRICS and math.isfinite(v)}


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
        return optuna.load_study(study_name=study_name(self.spec), storage=optuna_storage(url)) if url else None


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
        try:
            trial_data = json.loads(state_file.read_text())["trial_data"]
        except (ValueError, KeyError, TypeError) as exc:  # written in place by an older hyco: a full disk cut it
            raise HycoError(f"{state_file} is damaged ({type(exc).__name__}: {exc}); the trials it lists cannot "
                            "be read") from None
        for trial_json, run_json in trial_data:
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


def merge_experiment_states(exp_dir: str | Path) -> int:
    """Make the newest ``experiment_state-*.json`` hold every trial of the sweep; returns how many it
    gained. ``--resume --num-samples N`` adds trials in a new Tune run in the same directory (Tune
    cannot add trials to a restored run, ray-project/ray#18847), and Ray's readers
    (``ExperimentAnalysis``, ``Tuner.restore(...).get_results()``) read the newest state file only
    (ray-project/ray#5090): without this they saw the added trials alone and named the wrong best.
    JSON in, JSON out (trials of older runs copied verbatim); written to a temporary file, then renamed."""
    files = sorted(Path(exp_dir).glob("experiment_state-*.json"))  # timestamped names: oldest first
    if len(files) < 2:
        return 0
    newest = json.loads(files[-1].read_text())
    have = {json.loads(trial)["trial_id"] for trial, _ in newest["trial_data"]}
    older: dict[str, list] = {}
    for state_file in files[:-1]:
        for trial, run in json.loads(state_file.read_text())["trial_data"]:
            if (trial_id := json.loads(trial)["trial_id"]) not in have:
                older[trial_id] = [trial, run]  # a later state of the same trial wins
    if not older:
        return 0
    newest["trial_data"] = [*older.values(), *newest["trial_data"]]
    tmp = files[-1].with_name(f".{files[-1].name}.tmp")
    tmp.write_text(json.dumps(newest))
    os.replace(tmp, files[-1])
    return len(older)


def write_pbt_study(sweep: Sweep) -> optuna.Study | None:
    """A PBT sweep's trials as an Optuna study, so that optuna-dashboard, ``optuna.importance`` and
    ``hyco report`` read it as any other sweep's: PBT takes no searcher (Tune samples the population),
    so no study exists while it runs. Each ended trial: its final settings as params, its metric per
    epoch, the last value (COMPLETE) or PRUNED (stopped, diverged) or FAIL, and as user attributes
    ``ray_trial_id``, ``outcome``, every number it reported last and ``schedule`` (its settings per
    epoch segment, ``schedule.json``). Rewritten whole at each end of the sweep; None where the study
    would live in memory (a remote sweep directory without ``searcher.storage``)."""
    spec = sweep.spec
    url = study_storage_url(spec, str(sweep.path))
    if url is None:
        return None
    storage, name = optuna_storage(url), study_name(spec)
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}:
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, directions=spec.directions)
    with warnings.catch_warnings():  # Optuna 5.1 still marks it experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([spec.metric])
    space = {k: p.distribution() for k, p in spec.space.items()}
    for t in sweep.trials:
        outcome, value = t.outcome(spec.max_t), t.value(spec.metric)
        if outcome == "unfinished":
            continue
        state = (optuna.trial.TrialState.COMPLETE if outcome == "complete" and math.isfinite(value)
                 else optuna.trial.TrialState.FAIL if outcome == "error" else optuna.trial.TrialState.PRUNED)
        params = {k: v for k, v in t.params.items() if k in space and _fits(space[k], v)}
        lineage = Path(t.path) / LINEAGE_FILE
        study.add_trial(optuna.trial.create_trial(
            state=state, value=value if state == optuna.trial.TrialState.COMPLETE else None,
            params=params, distributions={k: space[k] for k in params},
            intermediate_values={int(r["epoch"]): float(r[spec.metric]) for r in t.history
                                 if isinstance(r.get(spec.metric), (int, float)) and math.isfinite(r[spec.metric])},
            user_attrs={**trial_metrics(t.final), "ray_trial_id": t.trial_id, "outcome": outcome,
                        "schedule": json.loads(lineage.read_text()) if lineage.is_file() else []}))
    return study


def _fits(distribution: optuna.distributions.BaseDistribution, value: Any) -> bool:
    """Whether Optuna takes ``value`` as a sample of ``distribution`` (PBT's perturbations are clipped to it)."""
    try:
        return distribution._contains(distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


# --- a full disk and two starts at once -------------------------------------------------------
#: what an OSError, a trial's error text or SQLite says when the disk (or a quota, or a file-size
#: limit) is full
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
DISK_FULL_TEXTS = tuple(os.strerror(e) for e in DISK_FULL_ERRNOS) + ("database or disk is full",)
#: what filled up, noted by the searcher and the trials' errors; the sweep stops when it is set
disk_full: list[str] = []
LOCK_FILE, RESERVE_FILE, RESERVE_BYTES = ".hyco.lock", ".hyco.reserve", 4 << 20


def is_disk_full(error: BaseException | str | None) -> bool:
    """True for an error (or its causes, or an error text) that says the disk is full."""
    while isinstance(error, BaseException):
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(error) for text in DISK_FULL_TEXTS):
            return True
        error = error.__cause__ or error.__context__
    return isinstance(error, str) and any(text in error for text in DISK_FULL_TEXTS)


def note_disk_full(where: str) -> None:
    """Record that writing ``where`` failed for lack of space (the sweep then stops, resumably)."""
    if where not in disk_full:
        disk_full.append(where)


def reserve(exp_dir: str) -> None:
    """Keep ``RESERVE_BYTES`` of the sweep's disk in a file, released when the disk fills
    (:func:`release_reserve`): Tune's last save of its state then fits, so the stopped sweep's
    records say what its trials did. Refuses a disk with less than that free."""
    path = Path(exp_dir) / RESERVE_FILE
    try:
        with open(path, "wb") as out:
            for _ in range(RESERVE_BYTES >> 16):
                out.write(b"\0" * (1 << 16))  # written, not sparse: the blocks are taken
    except OSError as exc:
        path.unlink(missing_ok=True)
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        raise SweepError(f"the disk of {exp_dir} has less than {RESERVE_BYTES >> 20} MiB free (a sweep keeps that "
                         "much in reserve so that it can stop cleanly when the disk fills): free space") from None


def release_reserve(exp_dir: str) -> None:
    (Path(exp_dir) / RESERVE_FILE).unlink(missing_ok=True)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write then rename: a full disk or a kill leaves the old file (or none), never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _AtomicWriter:
    """A file written under a temporary name and renamed over ``path`` on a clean close only (a failed
    write removes the temporary file at once: pyarrow does not close a stream whose write failed)."""

    def __init__(self, path: str) -> None:
        self.path, self.closed = path, False
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as pyarrow's local filesystem does
        fd, self.tmp = tempfile.mkstemp(prefix=f".tmp-{Path(path).name}-", dir=Path(path).parent)
        self.file = os.fdopen(fd, "wb", buffering=0)

    def _discard(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)

    def write(self, data) -> int:
        if self.closed:
            raise OSError(errno.EBADF, f"{self.path}: write after a failed write or close")
        try:
            view = memoryview(data).cast("B")
            while view:  # a raw write may take part of the data: the next one raises ENOSPC
                view = view[self.file.write(view):]
            return len(data)
        except BaseException:
            self._discard()
            raise

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return 0 if self.closed else self.file.tell()

    def close(self) -> None:
        if self.closed:
            return
        try:
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
            self.closed = True
        except BaseException:
            self._discard()
            raise


class AtomicLocalFiles(pyarrow.fs.FileSystemHandler):
    """The local filesystem, but every file is written then renamed: Tune's experiment state, the
    searcher's state and checkpoints are never left half-written by a full disk (Tune overwrites its
    state files in place). Given to Tune as ``storage_filesystem`` (:func:`storage_filesystem`)."""

    def __init__(self) -> None:
        self.fs = pyarrow.fs.LocalFileSystem()

    def __eq__(self, other) -> bool:
        return isinstance(other, AtomicLocalFiles)

    def __ne__(self, other) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "hyco-atomic-local"

    def normalize_path(self, path):
        return self.fs.normalize_path(path)

    def get_file_info(self, paths):
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.fs.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError(errno.EPERM, "refusing to delete the contents of the root directory")

    def delete_file(self, path):
        self.fs.delete_file(path)

    def move(self, src, dest):
        self.fs.move(src, dest)

    def copy_file(self, src, dest):
        with self.fs.open_input_stream(src) as source:
            write_atomic(dest, source.read())

    def open_input_stream(self, path):
        return self.fs.open_input_stream(path)

    def open_input_file(self, path):
        return self.fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return pyarrow.PythonFile(_AtomicWriter(path), mode="w")

    def open_append_stream(self, path, metadata):
        return self.fs.open_append_stream(path)


def storage_filesystem(exp_dir: str) -> pyarrow.fs.FileSystem | None:
    """Tune's ``storage_filesystem`` for a sweep directory: atomic writes where it is local."""
    return None if is_remote(exp_dir) else pyarrow.fs.PyFileSystem(AtomicLocalFiles())


def lock_sweep(exp_dir: str, name: str):
    """Hold ``<sweep dir>/.hyco.lock`` while this process runs the sweep: a second ``hyco tune`` of the
    same name gets one line instead of racing the first into the same files (and Optuna's database).
    The lock goes with the process, however it ends. Returns the open lock file (keep it open)."""
    Path(exp_dir).mkdir(parents=True, exist_ok=True)
    handle = open(Path(exp_dir) / LOCK_FILE, "a+")  # noqa: SIM115 - held for the sweep's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise SweepError(f"a sweep named {name!r} exists in {exp_dir} and is running now ({holder}): wait for it "
                         "and continue it with --resume, or choose another name / --storage-path") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"driver pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    return handle


def reconcile_study(sweep: Sweep) -> int:
    """Tell the Optuna trials left RUNNING whose Tune trial has ended: a full disk (or a killed driver)
    kept the searcher from telling them. As the searcher would: COMPLETE with the last values after all
    ``max_t`` epochs, PRUNED when stopped early or diverged, FAIL on an error or when the asked trial
    never became a Tune trial; each gets the user attribute ``told_on_resume``. Returns how many."""
    study = sweep.study() if sweep.spec.scheduler.type != "pbt" else None
    if study is None:
        return 0
    records, spec = {t.trial_id: t for t in sweep.trials}, sweep.spec
    told = 0
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        record = records.get(frozen.user_attrs.get("ray_trial_id"))
        outcome = record.outcome(spec.max_t) if record else "never ran"
        if outcome == "unfinished":
            continue  # --resume goes on with it
        values = [record.value(k) for k in spec.objectives or [spec.metric]] if record else []
        state = optuna.trial.TrialState.FAIL if outcome in ("error", "never ran") else optuna.trial.TrialState.PRUNED
        if outcome == "complete" and all(math.isfinite(v) for v in values):
            state = optuna.trial.TrialState.COMPLETE
        trial = optuna.trial.Trial(study, frozen._trial_id)  # the FrozenTrial's id: Optuna has no public getter
        trial.set_user_attr("told_on_resume", outcome)
        if outcome == "diverged":
            trial.set_user_attr("outcome", "diverged")
        if state == optuna.trial.TrialState.COMPLETE:
            study.tell(trial, values if spec.objectives else values[0], state=state)
        else:
            study.tell(trial, state=state)
        told += 1
    return told
