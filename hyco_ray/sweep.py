"""Run a sweep: Ray (a new local one, or a cluster), the searcher and scheduler of the spec, resume,
and the debug run. ``address`` (or ``RAY_ADDRESS``) joins a cluster (a Ray >= 2.59 one needs its
token, see the README); a multi-node cluster needs a ``storage_path`` all nodes reach (``s3://...``,
NFS) for the sweep directory (:mod:`hyco_ray.sweep_dir`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch

from hyco.config import load_config
from hyco_ray import sweep_dir
from hyco_ray.search import CALLBACKS, SCHEDULERS, STEP_KEY, build_searcher
from hyco_ray.space import SweepSpec, mutable_keys, sample_params
from hyco_ray.sweep_dir import SweepError, experiment_dir, load_saved_spec, load_sweep, study_storage_url

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
    exp_dir, sch, sea, res = experiment_dir(spec), spec.scheduler, spec.searcher, spec.resources
    rungs = [r for r in (sch.grace_period * int(sch.reduction_factor) ** k for k in range(32)) if r < spec.max_t]
    stop = (f"ASHA: rungs after epochs {', '.join(map(str, rungs)) or 'none'} of {spec.max_t} (keeps the best "
            f"1/{sch.reduction_factor:g})" if sch.type == "asha" else f"none: every trial runs all {spec.max_t} epochs")
    if sch.type == "pbt":
        stop += (f"; PBT every {sch.perturbation_interval} epochs: the worst {sch.quantile_fraction:g} take over the "
                 f"best {sch.quantile_fraction:g}'s checkpoints and perturb {', '.join(mutable_keys(spec))}")
    state = "exists (continue it with --resume)" if Path(exp_dir, sweep_dir.SPEC_FILE).exists() else "new"
    ray_at = address or os.environ.get("RAY_ADDRESS") or f"a new local Ray with {num_cpus or os.cpu_count()} CPUs"
    space = "\n".join(f"    {k}: {p.type} {p.values if p.type == 'choice' else [p.low, p.high]}" for k, p in spec.space.items())
    return "\n".join([
        f"sweep {spec.name}{' (resume)' if resume else ''}: {spec.num_samples} trials, at most {spec.max_concurrent} at a time",
        f"base config {spec.base}; fixed overrides: {' '.join(spec.overrides)}",
        f"searched:\n{space}",
        f"objective: {spec.mode} {spec.metric} ({'the best epoch so far' if spec.objective_epoch == 'best' else 'the last epoch'})" + (f" (early stopping, best trial); Pareto front of "
        f"{', '.join(f'{m} {k}' for k, m in spec.objectives.items())}" if spec.multi_objective else ""),
        f"per trial: {res.cpu:g} CPU ({spec.num_threads} torch threads), {res.gpu:g} GPU; retries {spec.max_failures}",
        f"early stopping: {stop}",
        f"searcher: Tune's random sampler (seed {sea.seed}) draws the population" if sch.type == "pbt" else
        f"searcher: optuna {sea.sampler} (seed {sea.seed}), study {sweep_dir.study_name(spec)} in "
        f"{study_storage_url(spec, exp_dir) or 'memory'}",
        f"sweep directory: {exp_dir} ({state})",
        f"Ray: {ray_at}",
    ])


def prepare_data(spec: SweepSpec) -> str:
    """Simulate (or find) the dataset once, before any trial starts; trials get a cache hit (a node
    without the file rebuilds the identical one: the cache is keyed by what generated it)."""
    from hyco.run import prepare_dataset

    _, path, hit = prepare_dataset(load_config(spec.base, spec.trial_overrides({})))
    log.info("dataset %s: %s", "cache hit" if hit else "simulated", path)
    return str(path)


def _check_fits(spec: SweepSpec, cpus: float, gpus: float | None = None, where: str = "the local Ray") -> None:
    """A trial asking for more CPUs or GPUs than there are would stay PENDING forever."""
    gpus = torch.cuda.device_count() if gpus is None else gpus
    for kind, need, have, flag in (("CPU", spec.resources.cpu, cpus, "--num-cpus"), ("GPU", spec.resources.gpu, gpus, "")):
        if need > have:
            raise SweepError(f"resources.{kind.lower()} is {need:g} per trial, but {where} has {have:g} {kind}s: no trial "
                             f"could ever start; lower resources.{kind.lower()}" + (f" or raise {flag}" if flag else ""))


def preflight(spec: SweepSpec, address: str | None = None, num_cpus: int | None = None) -> None:
    """The checks a run makes before writing anything, shared with ``--dry-run`` so a plan is never
    printed for a sweep that would be refused."""
    if num_cpus is not None and num_cpus < 1:
        raise SweepError(f"--num-cpus is {num_cpus}: give at least 1 (leave it out for all {os.cpu_count()} CPUs)")
    if not (address or os.environ.get("RAY_ADDRESS")):
        _check_fits(spec, num_cpus or os.cpu_count() or 1)
    if not sweep_dir.is_remote(spec.storage_path):
        sweep_dir.check_writable_dir(experiment_dir(spec), "storage_path: sweep directory")


def connect_ray(address: str | None, num_cpus: int | None, sweep: str = "") -> bool:
    """Join ``address`` (or RAY_ADDRESS), else start Ray in this process (after ending a killed
    sweep's leftovers, :mod:`hyco_ray.leftovers`). True if we started it. A local Ray listens on
    127.0.0.1 only: Ray makes a loopback node address the host's unless ``ENABLE_RAY_CLUSTER`` is off."""
    import ray
    from ray._private import ray_constants

    from hyco_ray import leftovers

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


def _live_view(spec: SweepSpec):
    """One line per trial event (result, stop, error) instead of Tune's repeated status tables."""
    from ray.tune import Callback

    class LiveView(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
            print(f"[{done}/{spec.num_samples} done] {trial.trial_id} epoch {result.get('epoch')}: "
                  f"{spec.metric}={result.get(spec.metric, float('nan')):.4g}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            print(f"{trial.trial_id} finished", flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"{trial.trial_id} errored (see {trial.local_path})", flush=True)

    return LiveView()


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

    from hyco_ray.trainable import make_trainable

    trainable = make_trainable(spec, after_epoch)
    _quiet_disk_full_errors()
    if resume:
        return tune.Tuner.restore(exp_dir, trainable, resume_unfinished=True, resume_errored=True, restart_errored=False,
                                  storage_filesystem=sweep_dir.storage_filesystem(exp_dir))
    storage_path, name = exp_dir.rsplit("/", 1)
    pbt = spec.scheduler.type == "pbt"  # Tune samples a PBT population itself (PBT takes no searcher)
    if pbt:
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # a paused trial's result.json is not in storage yet when it restarts: a warning each time
        logging.getLogger("ray.tune.logger.logger").setLevel(logging.ERROR)

        from hyco_ray.search import tune_domain
    return tune.Tuner(
        trainable,
        param_space={k: tune_domain(p) for k, p in spec.space.items()} if pbt else None,
        tune_config=tune.TuneConfig(
            search_alg=BasicVariantGenerator(max_concurrent=spec.max_concurrent, random_state=spec.searcher.seed + seed_offset,
                                             points_to_evaluate=[spec.defaults] if spec.defaults and not seed_offset else None)
            if pbt
            else build_searcher(spec, study_storage_url(spec, exp_dir), seed_offset),
            scheduler=SCHEDULERS.build(spec.scheduler.type, spec),
            num_samples=spec.num_samples - seed_offset,
            max_concurrent_trials=None if pbt else spec.max_concurrent,  # PBT: the generator's max_concurrent
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
            stop={STEP_KEY: spec.max_t} if pbt else None,  # ends a trial before PBT could exploit at max_t
            # PBT: a trial's checkpoint may be taken over after it saved more (Ray #27170): keep all
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if pbt else 2),
            callbacks=[_live_view(spec), _stop_when_disk_full(exp_dir), *(CALLBACKS.build(name, spec, exp_dir) for name in spec.callbacks)],
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

    from hyco_ray import leftovers
    from hyco_ray.analysis import summary_text

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
        build_tuner(spec, exp_dir, resume, after_epoch, reuse_workers).fit()
        if resume and local and not sweep_dir.disk_full:
            sweep = load_sweep(exp_dir)
            if not sweep.by_outcome("unfinished") and len(sweep.trials) < spec.num_samples:
                print(f"adding {spec.num_samples - len(sweep.trials)} trials (num_samples {spec.num_samples})")
                build_tuner(spec, exp_dir, False, after_epoch, reuse_workers, seed_offset=len(sweep.trials)).fit()
    finally:
        if started:
            ray.shutdown()
            leftovers.forget()
        if lock is not None:
            sweep_dir.release_reserve(exp_dir)
            lock.close()
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
    return SweepOutcome(exp_dir, summary, not sweep.by_outcome("unfinished"), wall, len(sweep.trials),
                        len(sweep.by_outcome("error")), full)


def debug_run(spec: SweepSpec, run_dir: str | Path | None = None, seed: int | None = None) -> dict:
    """One configuration sampled from the space, trained in this process without Ray."""
    from hyco.run import train_run

    params = sample_params(spec, seed)
    overrides = spec.trial_overrides(params)
    cfg, stamp = load_config(spec.base, overrides), time.strftime("%Y%m%d-%H%M%S")
    print("debug run (no Ray) of the sweep's first trial:\n" + "".join(f"  {k}={v}\n" for k, v in params.items()), end="")
    print(f"rerun it with: hyco train {spec.base} {' '.join(overrides)}")
    return train_run(cfg, run_dir or Path(spec.storage_path) / f"{spec.name}-debug-{stamp}")
