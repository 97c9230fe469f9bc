"""Run a sweep: Ray (a new local one, or a cluster), the searcher and scheduler of the spec, resume,
and the debug run. ``address`` (or ``RAY_ADDRESS``) joins a cluster (a Ray >= 2.59 one needs its
token, see the README); a multi-node cluster needs a ``storage_path`` all nodes reach (``s3://...``,
NFS) for the sweep directory (:mod:`hyco_ray.core.sweep_dir`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch

from hyco.config import load_config
from hyco_ray.core import noise, sweep_dir
from hyco_ray.core.schedulers import scheduler_of
from hyco_ray.core.space import SweepSpec, sample_params
from hyco_ray.core.sweep_dir import SweepError, experiment_dir, load_saved_spec, load_sweep, study_storage_url
from hyco_ray.runner.search import CALLBACKS, build_searcher

log = logging.getLogger(__name__)

@dataclass
class SweepOutcome:
    experiment_dir: str
    summary: str
    finished: bool  # False: interrupted (resume with --resume)
    wall_s: float
    trials: int = 0
    errored: int = 0
    disk_full: str = ""  # what could not be written: the sweep stopped resumably

    @property
    def exit_code(self) -> int:
        """0 done, 130 interrupted (resumable), 1 every trial errored or the disk is full (resumable)."""
        if self.disk_full:
            return 1
        return 130 if not self.finished else int(bool(self.trials) and self.errored == self.trials)


def _unchanged_saved_spec(exp_dir: str, spec: SweepSpec) -> SweepSpec:
    """The saved spec, if the space file (with its command-line overrides) still says the same;
    a larger ``num_samples`` is the one edit allowed: ``--resume`` then adds trials."""
    import pandas as pd

    saved = load_saved_spec(exp_dir)
    saved.num_samples = max(saved.num_samples, spec.num_samples)
    old, new = (pd.json_normalize(s.to_dict()).to_dict("records")[0] for s in (saved, spec))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    if changed:
        raise SweepError(f"the space changed since sweep {saved.name!r} started ({'; '.join(changed)}); --resume runs "
                         "what was saved (only a larger num_samples adds trials): undo the change, or start a new "
                         "sweep with --name")
    return saved


def plan_text(spec: SweepSpec, address: str | None = None, num_cpus: int | None = None, resume: bool = False) -> str:
    """What ``hyco tune`` would run (``--dry-run``); starts nothing."""
    exp_dir, sch, sea, res = experiment_dir(spec), scheduler_of(spec), spec.searcher, spec.resources
    state = "exists (continue it with --resume)" if Path(exp_dir, sweep_dir.SPEC_FILE).exists() else "new"
    ray_at = address or os.environ.get("RAY_ADDRESS") or f"a new local Ray with {num_cpus or os.cpu_count()} CPUs"
    space = "\n".join(f"    {k}: {p.kind.describe(p)}" for k, p in spec.space.items())
    searcher = (f"{sch.describe_searcher(spec)}; the trials are written to study {sweep_dir.study_name(spec)} in "
                f"{_study_where(spec, exp_dir)} when the sweep ends" if sch.describe_searcher(spec) else
                f"optuna {sea.sampler} (seed {sea.seed}), study {sweep_dir.study_name(spec)} in {_study_where(spec, exp_dir)}")
    return "\n".join([
        f"sweep {spec.name}{' (resume)' if resume else ''}: {spec.num_samples} trials, at most {spec.max_concurrent} at a time",
        f"base config {spec.base}; fixed overrides: {' '.join(spec.overrides)}",
        f"searched:\n{space}",
        f"objective: {spec.mode} {spec.metric} ({'the best epoch so far' if spec.objective_epoch == 'best' else 'the last epoch'})" + (f" (early stopping, best trial); Pareto front of "
        f"{', '.join(f'{m} {k}' for k, m in spec.objectives.items())}" if spec.multi_objective else ""),
        f"per trial: {res.cpu:g} CPU ({spec.num_threads} torch threads), {res.gpu:g} GPU; retries {spec.max_failures}",
        *([f"repeats: {spec.repeats} seeds per trial (run_params.seed and data.seed + 0..{spec.repeats - 1}), "
           f"trained in lock-step and reported as their mean: each trial-epoch costs {spec.repeats} epochs; at most "
           f"{spec.num_samples * spec.max_t * spec.repeats} epochs for {spec.num_samples} trials x {spec.max_t} epochs"]
          if spec.repeats > 1 else []),
        f"early stopping: {sch.describe(spec)}",
        f"searcher: {searcher}",
        noise.plan_line(spec),
        f"sweep directory: {exp_dir} ({state})",
        f"Ray: {ray_at}",
    ])


def _study_where(spec: SweepSpec, exp_dir: str) -> str:
    """The study's storage, or why it is lost with the driver (and what keeps it)."""
    url = study_storage_url(spec, exp_dir)
    if spec.scheduler.type == "pbt" and (url is None or sweep_dir.is_remote(exp_dir)):
        return "no database (a PBT study is built from a local sweep directory: hyco report on a local copy writes it)"
    return url or ("memory (lost when the driver ends: give --study-storage journal:///<shared disk>/study.log "
                   "or a database URL, docs/cluster.md)" if spec.searcher.storage == "auto" else "memory")


def prepare_data(spec: SweepSpec) -> str:
    """Simulate (or find) the dataset once (each seed's, with ``repeats``), before any trial starts;
    trials get a cache hit (a node without the file rebuilds the identical one: the cache is keyed by
    what generated it). Returns the first seed's cache file."""
    from hyco.run import prepare_dataset
    from hyco.training import seed_configs

    paths = []
    for cfg in seed_configs(load_config(spec.base, spec.trial_overrides({})), spec.repeats):
        _, path, hit = prepare_dataset(cfg)
        log.info("dataset %s: %s", "cache hit" if hit else "simulated", path)
        paths.append(str(path))
    return paths[0]


def _check_fits(spec: SweepSpec, cpus: float, gpus: float | None = None, where: str = "the local Ray") -> None:
    """A trial asking for more CPUs or GPUs than there are would stay PENDING forever."""
    gpus = torch.cuda.device_count() if gpus is None else gpus
    for kind, need, have, flag in (("CPU", spec.resources.cpu, cpus, "--num-cpus"), ("GPU", spec.resources.gpu, gpus, "")):
        if need > have:
            raise SweepError(f"resources.{kind.lower()} is {need:g} per trial, but {where} has {have:g} {kind}s: no trial "
                             f"could ever start; lower resources.{kind.lower()}" + (f" or raise {flag}" if flag else ""))


@contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (Ray's C++ client logs each failed try there) for a moment."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


#: seconds the address check waits for a TCP connection and for the GCS's answer
ADDRESS_TIMEOUT_S = 5


def check_address(address: str) -> None:
    """Refuse, in one line and in seconds, a cluster address where no Ray answers or that wants a token
    we lack: ``ray.init`` retried for 20-90 s and then raised a traceback (an auth failure read as "no
    Ray cluster"), after the data was simulated and the spec written. The GCS is asked for its cluster
    id the way ``ray.init`` asks (same address resolution, TLS and token settings)."""
    import socket

    # Private Ray API, no public equivalent: ray.init has no connect timeout (its GCS client waits and
    # retries by design since ray-project/ray#39397, issue #38854, and an auth failure surfaces only
    # after that), so the address is resolved and the GCS asked as ray.init does, with our timeout.
    # test_resume_faults.py's address tests (a closed port, a real token-auth Ray) fail if these move.
    from ray._private import services

    where = address
    try:
        if not address.startswith("ray://"):  # Ray Client speaks its own protocol: the TCP check only
            where = services.canonicalize_bootstrap_address(address) or address  # "auto", localhost as ray.init
        host, _, port = where.removeprefix("ray://").rpartition(":")
        with socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_TIMEOUT_S):
            pass
    except (ConnectionError, ValueError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0] or type(exc).__name__
        raise SweepError(f"no Ray cluster at {address}{f' ({where})' if where != address else ''}: {why}; start one "
                         "(`ray start --head` on the head node), fix --address / RAY_ADDRESS, or leave both out "
                         "for a new local Ray") from None
    if address.startswith("ray://"):
        return
    import ray
    from ray._raylet import AuthenticationMode, InnerGcsClient, get_authentication_mode

    try:
        with _quiet_stderr():
            InnerGcsClient.standalone(where, None, ADDRESS_TIMEOUT_S * 1000)
    except ray.exceptions.AuthenticationError:
        have = get_authentication_mode() == AuthenticationMode.TOKEN
        raise SweepError(
            f"the Ray cluster at {address} " + ("refused our token: it is not the cluster's. " if have else
            "uses token auth and we sent no token. ") + "Export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<token> (or "
            "RAY_AUTH_TOKEN_PATH=<file>, default ~/.ray/auth_token); `ray get-auth-token` on the head node prints it"
        ) from None
    except ray.exceptions.RayError as exc:
        raise SweepError(f"no Ray cluster at {address}: {where} accepts connections but no Ray GCS answered in "
                         f"{ADDRESS_TIMEOUT_S} s ({str(exc).splitlines()[0]}); check the address and port") from None


def preflight(spec: SweepSpec, address: str | None = None, num_cpus: int | None = None) -> None:
    """The checks a run makes before writing anything, shared with ``--dry-run`` so a plan is never
    printed for a sweep that would be refused."""
    if num_cpus is not None and num_cpus < 1:
        raise SweepError(f"--num-cpus is {num_cpus}: give at least 1 (leave it out for all {os.cpu_count()} CPUs)")
    if address or os.environ.get("RAY_ADDRESS"):
        check_address(address or os.environ["RAY_ADDRESS"])
    else:
        _check_fits(spec, num_cpus or os.cpu_count() or 1)
    if not sweep_dir.is_remote(spec.storage_path):
        sweep_dir.check_writable_dir(experiment_dir(spec), "storage_path: sweep directory")


def connect_ray(address: str | None, num_cpus: int | None, sweep: str = "") -> bool:
    """Join ``address`` (or RAY_ADDRESS), else start Ray in this process (after ending a killed
    sweep's leftovers, :mod:`hyco_ray.runner.leftovers`). True if we started it. A local Ray listens on
    127.0.0.1 only: Ray makes a loopback node address the host's unless ``ENABLE_RAY_CLUSTER`` is off."""
    import ray
    from ray._private import ray_constants

    from hyco_ray.runner import leftovers

    if ray.is_initialized():
        return False
    leftovers.end_leftovers()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address:  # "local": a new Ray of our own, even when another one runs on this host
        # Private Ray API, no public equivalent: with ENABLE_RAY_CLUSTER off, services.get_node_ip_address
        # returns 127.0.0.1 and every Ray process binds there (ray-project/ray#18904 for issue #18730, and
        # #19918); on Linux the flag is on and Ray listens on the host's address. The flag and its env var
        # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER come from ray-project/ray#31166 (issue #30770); setting the env
        # var could not turn it off on Linux. test_ray_layer.py::test_local_ray_listens_on_localhost_only
        # fails if Ray renames the constant or stops reading it.
        with mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False), leftovers.recorded(sweep):
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=True)
        return True
    try:
        ray.init(address=address, log_to_driver=True)
    except ray.exceptions.AuthenticationError as exc:
        raise SweepError(
            f"the Ray cluster at {address} refused the connection ({exc.message}). Ray >= 2.59 clusters use token "
            "auth: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<token> (or RAY_AUTH_TOKEN_PATH, default "
            "~/.ray/auth_token); `ray get-auth-token` on the head node prints it"
        ) from None
    except ConnectionError as exc:
        raise SweepError(f"no Ray cluster at {address}: {exc}") from None
    return True


@contextmanager
def _deleted_checkpoints_tolerated():
    """Tune deletes a trial's checkpoints beyond ``num_to_keep`` as it records new ones, and the
    experiment snapshot a resume starts from can be older than a deletion (a killed driver's is up to
    ``checkpoint_period_s`` old): deleting one already gone then logged an ERROR traceback per trial
    (``Path not found: .../checkpoint_000000``) and skipped the rest of Tune's checkpoint bookkeeping.
    Gone is what deleting wants. The driver's record of a trial's checkpoints falling behind storage is
    ray-project/ray#27790 (restore was fixed by #29099; deletion still raises). Private Ray API (2.60):
    test_resume_faults.py's driver-kill test fails if it moves."""
    from ray.train._internal import checkpoint_manager

    delete = checkpoint_manager._delete_fs_path

    def delete_if_there(fs, fs_path: str) -> None:
        with suppress(FileNotFoundError):
            delete(fs=fs, fs_path=fs_path)

    with mock.patch.object(checkpoint_manager, "_delete_fs_path", delete_if_there):
        yield


def _live_view(spec: SweepSpec, exp_dir: str):
    """One line per trial event and a status line after each end (:mod:`hyco_ray.runner.console`)."""
    from hyco_ray.runner.console import LiveView

    return LiveView(spec, exp_dir)


def _stop_when_disk_full(exp_dir: str):
    """Stops the sweep as Ctrl-C does (resumable) once a write into it failed for lack of space: a
    trial's error says so, or the searcher could not write the study (``sweep_dir.disk_full``). Trials
    would otherwise burn their retries on the same error and the driver die on Optuna's."""
    from ray.tune import Callback

    class StopWhenDiskFull(Callback):
        def __init__(self) -> None:
            self.stopping = False

        def _check(self, trial) -> None:
            error = Path(trial.error_file) if trial.error_file else None
            if error is not None and error.is_file():
                last = error.read_text(errors="replace").rsplit("Failure # ", 1)[-1]
                if sweep_dir.is_disk_full(last):
                    sweep_dir.note_disk_full(f"{sweep_dir.trial_dirname(trial.trial_id)}'s files")
            self._stop_if_full()

        def _stop_if_full(self) -> None:
            if sweep_dir.disk_full and not self.stopping:
                self.stopping = True
                # Tune's own stop (its SIGINT/SIGUSR1 handler), called directly: unfinished trials stay
                # resumable; its last experiment-state save fails on the full disk and keeps the old file
                # and the failed trials' tasks whose results nobody reads now
                for name in ("ray.tune.tune", "ray.tune.execution.experiment_state", "ray._private.worker"):
                    logging.getLogger(name).setLevel(logging.CRITICAL)
                sweep_dir.release_reserve(exp_dir)  # room for Tune's last save of its state
                handler = signal.getsignal(signal.SIGUSR1)
                if callable(handler):
                    handler(signal.SIGUSR1, None)

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._check(trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._check(trial)

        def on_step_end(self, iteration, trials, **info):
            self._stop_if_full()  # the searcher noted it

    return StopWhenDiskFull()


class _QuietDiskFull(logging.Filter):
    """Tune logs each failed trial with a traceback: for a full disk, noted here, the sweep's final
    line says it all (``_stop_when_disk_full`` stops the sweep)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and sweep_dir.is_disk_full(record.exc_info[1]):
            sweep_dir.note_disk_full(f"{record.getMessage().rsplit(' ', 1)[-1]}'s files")  # "... for trial trial_<id>"
            return False
        return True


def _quiet_disk_full_errors() -> None:
    tune_log = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, _QuietDiskFull) for f in tune_log.filters):
        tune_log.addFilter(_QuietDiskFull())


def check_resume_files(exp_dir: str) -> None:
    """Read the state files ``Tuner.restore`` reads, first: Tune restarts a sweep from scratch (running
    trials again) when it cannot read its searcher state. A damaged one: one line naming it. These are
    pickles: a sweep directory must be trusted like code (docs/reliability.md)."""
    import pickle

    for pattern in ("tuner.pkl", "experiment_state-*.json", "searcher-state-*.pkl", "search_gen_state-*.json"):
        newest = max(Path(exp_dir).glob(pattern), default=None)  # the one Tune reads: timestamped names
        if newest is None:
            continue
        try:
            data = newest.read_bytes()
            json.loads(data) if pattern.startswith("experiment_state") else pickle.loads(data)  # noqa: S301
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises
            raise SweepError(f"{newest} is damaged ({type(exc).__name__}: {exc}); --resume cannot continue "
                             "the sweep from it: restore the file, or start a new sweep with --name") from None


def build_tuner(spec: SweepSpec, exp_dir: str, resume: bool, after_epoch=None, reuse_workers: bool = True,
                seed_offset: int = 0):
    """A fresh Tuner (``seed_offset``: trials already in the study, so added trials sample anew),
    or the interrupted one restored from ``exp_dir``. ``reuse_workers``: Tune's ``reuse_actors``;
    a new worker per trial re-imports torch, PhiFlow and Hydra, 3-7 s (``bench/sweep_overhead.py``)."""
    from ray import tune

    from hyco_ray.runner.trainable import make_trainable

    trainable = make_trainable(spec, after_epoch)
    _quiet_disk_full_errors()
    if resume:
        return tune.Tuner.restore(exp_dir, trainable, resume_unfinished=True, resume_errored=True, restart_errored=False,
                                  storage_filesystem=sweep_dir.storage_filesystem(exp_dir))
    storage_path, name = exp_dir.rsplit("/", 1)
    settings = scheduler_of(spec).tuner_settings(spec, tune, seed_offset)  # PBT: Tune samples the population
    return tune.Tuner(
        trainable,
        param_space=settings.param_space,
        tune_config=tune.TuneConfig(
            search_alg=settings.search_alg or build_searcher(spec, study_storage_url(spec, exp_dir), seed_offset),
            scheduler=settings.scheduler,
            num_samples=spec.num_samples - seed_offset,
            max_concurrent_trials=settings.max_concurrent_trials,
            # a reused worker writes its files straight into a local sweep dir (trainable._trial_dir)
            reuse_actors=reuse_workers and not sweep_dir.is_remote(exp_dir),
            trial_name_creator=sweep_dir.trial_name,
            trial_dirname_creator=sweep_dir.trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            storage_filesystem=sweep_dir.storage_filesystem(exp_dir),  # write, then rename: a full disk leaves no half file
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            stop=settings.stop,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=settings.num_to_keep),
            callbacks=[_live_view(spec, exp_dir), _stop_when_disk_full(exp_dir),
                       *(CALLBACKS.build(name, spec, exp_dir) for name in spec.callbacks)],
            verbose=0,
        ),
    )


def run_sweep(spec: SweepSpec, address: str | None = None, resume: bool = False, num_cpus: int | None = None,
              after_epoch=None, reuse_workers: bool = True) -> SweepOutcome:
    """Run (or resume) the sweep of a validated spec; returns the summary it printed. ``resume``
    continues the interrupted trials, then adds those of a larger ``num_samples`` (a new Tune run,
    the same study). ``after_epoch(epoch, trial_dir)``: a test's fault hook, run in every trial."""
    import ray
    from ray import tune

    from hyco_ray.core.analysis import summary_text
    from hyco_ray.runner import leftovers

    exp_dir, address = experiment_dir(spec), address or os.environ.get("RAY_ADDRESS")
    local = not sweep_dir.is_remote(exp_dir)
    if resume:
        if local:
            spec = _unchanged_saved_spec(exp_dir, spec)  # exactly what the interrupted sweep ran
        if not tune.Tuner.can_restore(exp_dir):
            raise SweepError(f"nothing to resume in {exp_dir}: no trial started there (an earlier start failed?); "
                             "start it again without --resume")
        if local:
            check_resume_files(exp_dir)
    elif local and tune.Tuner.can_restore(exp_dir):  # trials ran (a failed start left only the spec)
        raise SweepError(f"a sweep named {spec.name!r} exists in {exp_dir}: continue it with --resume, "
                         "or choose another name / --storage-path")
    preflight(spec, address, num_cpus)
    lock = None
    if local:
        sweep_dir.check_writable_dir(exp_dir, "storage_path: sweep directory", create=True)
        lock = sweep_dir.lock_sweep(exp_dir, spec.name)  # a second start of this sweep: one line
        if not resume and tune.Tuner.can_restore(exp_dir):  # one that started while we checked
            lock.close()
            raise SweepError(f"a sweep named {spec.name!r} exists in {exp_dir}: continue it with --resume, "
                             "or choose another name / --storage-path")
        try:
            sweep_dir.reserve(exp_dir)
        except BaseException:
            lock.close()
            raise
    sweep_dir.disk_full.clear()
    # experiment-state snapshots every few seconds: a hard kill loses little
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(spec.checkpoint_period_s))
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from hyco_ray.runner.console import quiet_ray

    quiet_ray(spec)  # Tune's boxes and hints, the local Ray's token warning (hyco_ray.runner.console)
    print(f"sweep directory: {exp_dir}")
    prepare_data(spec)
    sweep_dir.save_spec(spec)
    started = connect_ray(address, num_cpus, exp_dir)
    if address:
        total = ray.cluster_resources()
        try:
            _check_fits(spec, total.get("CPU", 0), total.get("GPU", 0), f"the cluster at {address}")
        except SweepError as exc:  # an autoscaler may still add nodes
            print(f"hyco: warning: {exc}; trials stay PENDING until nodes that large join", file=sys.stderr)
    tic = time.time()
    try:
        with _deleted_checkpoints_tolerated():  # a resumed snapshot may name checkpoints deleted since
            build_tuner(spec, exp_dir, resume, after_epoch, reuse_workers).fit()
        if resume and local and not sweep_dir.disk_full:
            sweep = load_sweep(exp_dir)
            if not sweep.by_outcome("unfinished") and len(sweep.trials) < spec.num_samples:
                print(f"adding {spec.num_samples - len(sweep.trials)} trials (num_samples {spec.num_samples})")
                build_tuner(spec, exp_dir, False, after_epoch, reuse_workers, seed_offset=len(sweep.trials)).fit()
        noise_done = measure_noise(spec, exp_dir) if local and not sweep_dir.disk_full else True
    finally:
        if started:
            ray.shutdown()
            leftovers.forget()
        if lock is not None:
            sweep_dir.release_reserve(exp_dir)
            lock.close()
    if local and not sweep_dir.disk_full:  # one experiment for Ray's readers, whatever Tune runs the sweep took (sweep_dir)
        sweep_dir.merge_experiment_states(exp_dir)
        if spec.scheduler.type == "pbt":
            sweep_dir.write_pbt_study(load_sweep(exp_dir))
        write_pick_figures(spec, exp_dir)
    wall = time.time() - tic
    if not local:
        msg = f"sweep finished in {wall:.0f} s; results in {exp_dir} (copy it locally for hyco report/export)"
        print(msg)
        return SweepOutcome(exp_dir, msg, True, wall)
    sweep = load_sweep(exp_dir)
    summary = summary_text(sweep, wall_s=wall)
    full = "; ".join(sweep_dir.disk_full)
    if not full:
        sweep_dir.reconcile_study(sweep)  # Optuna trials a full disk left RUNNING
        sweep_dir.write_text(f"{exp_dir}/{sweep_dir.SUMMARY_FILE}", summary)
    print(summary)
    return SweepOutcome(exp_dir, summary, not sweep.by_outcome("unfinished") and noise_done, wall, len(sweep.trials),
                        len(sweep.by_outcome("error")), full)


def write_pick_figures(spec: SweepSpec, exp_dir: str) -> Path | None:
    """``figures/`` of the sweep's pick (``hyco export``'s trial), drawn here from its checkpoint on the
    CPU, once, where its trial did not draw them (``trial_figures: best``, the default: a complete trial
    spends no CPU on figures nobody opens). Returns the trial directory, None where none is complete."""
    from hyco.errors import HycoError
    from hyco.run import FIGURES_DIR, write_run_figures

    if spec.trial_figures != "best":
        return None
    sweep = load_sweep(exp_dir)
    if sweep.by_outcome("unfinished"):  # interrupted: drawn when the resumed sweep ends
        return None
    try:
        pick = Path(sweep.default_pick().path)
    except HycoError:  # no complete trial: nothing to draw
        return None
    if not (pick / FIGURES_DIR).is_dir():
        try:
            write_run_figures(pick)
        except HycoError as exc:  # its checkpoint unreadable: the sweep's results stand without figures
            log.warning("figures of %s not drawn: %s", pick, exc)
            return None
    return pick


def measure_noise(spec: SweepSpec, exp_dir: str) -> bool:
    """After a finished search, on its Ray: the defaults on the space's noise seeds (:mod:`hyco_ray.core.noise`),
    the missing runs as Ray tasks with a trial's resources, then ``noise.json``. False: interrupted
    (``--resume`` goes on); an unfinished search measures nothing yet."""
    from types import SimpleNamespace

    from hyco_ray.runner.retrain import run_tasks

    sweep = load_sweep(exp_dir)
    if not spec.noise_seeds or sweep.by_outcome("unfinished") or len(sweep.trials) < spec.num_samples:
        return True
    root, seeds = Path(exp_dir), noise.noise_seeds(spec.noise_seeds)
    setting = SimpleNamespace(name=noise.NOISE_SETTING, overrides=spec.trial_overrides({}, threads=spec.num_threads))
    todo = [(setting, seed) for seed in seeds if not noise.result_path(root, seed).is_file()]
    print(f"seed noise: the defaults on {len(seeds)} seeds {seeds[0]}..{seeds[-1]}, {spec.max_t} epochs each; "
          f"{len(seeds) - len(todo)} of {len(seeds)} runs done already", flush=True)
    try:
        run_tasks(root, spec.base, spec.metric, todo, len(seeds) - len(todo), len(seeds), sweep_dir.NOISE_DIR,
                  cpu=spec.resources.cpu, gpu=spec.resources.gpu)
    except KeyboardInterrupt:
        return False
    noise.write_noise(root, spec)
    return True


def debug_run(spec: SweepSpec, run_dir: str | Path | None = None, seed: int | None = None) -> dict:
    """One configuration sampled from the space, trained in this process without Ray."""
    from hyco.run import train_run

    params = sample_params(spec, seed)
    overrides = spec.trial_overrides(params)  # to rerun it by hand; the run takes the typed values
    cfg, stamp = spec.trial_config(params), time.strftime("%Y%m%d-%H%M%S")
    which = "the sweep's first trial" if seed is None else f"a draw of its sampler (seed {seed})"
    print(f"debug run (no Ray) of {which}:\n" + "".join(f"  {k}={v}\n" for k, v in params.items()), end="")
    print(f"rerun it with: hyco train {spec.base} {' '.join(overrides)}")
    return train_run(cfg, run_dir or Path(spec.storage_path) / f"{spec.name}-debug-{stamp}")
