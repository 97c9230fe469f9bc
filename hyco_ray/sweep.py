"""Run a sweep: Ray (a new local one, or a cluster), the searcher and scheduler of the spec, resume,
and the debug run. ``address`` (or ``RAY_ADDRESS``) joins a cluster (a Ray >= 2.59 one needs its
token, see the README); a multi-node cluster needs a ``storage_path`` all nodes reach (``s3://...``,
NFS) for the sweep directory (:mod:`hyco_ray.sweep_dir`).
"""

from __future__ import annotations

import logging
import os
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

    @property
    def exit_code(self) -> int:
        """0 done, 130 interrupted (resumable), 1 every trial errored."""
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
        *([f"repeats: {spec.repeats} seeds per trial (run_params.seed and data.seed + 0..{spec.repeats - 1}), "
           f"trained in lock-step and reported as their mean: each trial-epoch costs {spec.repeats} epochs; at most "
           f"{spec.num_samples * spec.max_t * spec.repeats} epochs for {spec.num_samples} trials x {spec.max_t} epochs"]
          if spec.repeats > 1 else []),
        f"early stopping: {stop}",
        f"searcher: Tune's random sampler (seed {sea.seed}) draws the population" if sch.type == "pbt" else
        f"searcher: optuna {sea.sampler} (seed {sea.seed}), study {sweep_dir.study_name(spec)} in "
        f"{study_storage_url(spec, exp_dir) or 'memory'}",
        f"sweep directory: {exp_dir} ({state})",
        f"Ray: {ray_at}",
    ])


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


def build_tuner(spec: SweepSpec, exp_dir: str, resume: bool, after_epoch=None, reuse_workers: bool = True,
                seed_offset: int = 0):
    """A fresh Tuner (``seed_offset``: trials already in the study, so added trials sample anew),
    or the interrupted one restored from ``exp_dir``. ``reuse_workers``: Tune's ``reuse_actors``;
    a new worker per trial re-imports torch, PhiFlow and Hydra, 3-7 s (``bench/sweep_overhead.py``)."""
    from ray import tune

    from hyco_ray.trainable import make_trainable

    trainable = make_trainable(spec, after_epoch)
    if resume:
        return tune.Tuner.restore(exp_dir, trainable, resume_unfinished=True, resume_errored=True, restart_errored=False)
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
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            stop={STEP_KEY: spec.max_t} if pbt else None,  # ends a trial before PBT could exploit at max_t
            # PBT: a trial's checkpoint may be taken over after it saved more (Ray #27170): keep all
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if pbt else 2),
            callbacks=[_live_view(spec), *(CALLBACKS.build(name, spec, exp_dir) for name in spec.callbacks)],
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
    elif local and tune.Tuner.can_restore(exp_dir):  # trials ran (a failed start left only the spec)
        raise SweepError(f"a sweep named {spec.name!r} exists in {exp_dir}: continue it with --resume, "
                         "or choose another name / --storage-path")
    preflight(spec, address, num_cpus)
    if local:
        sweep_dir.check_writable_dir(exp_dir, "storage_path: sweep directory", create=True)
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
        if resume and local:
            sweep = load_sweep(exp_dir)
            if not sweep.by_outcome("unfinished") and len(sweep.trials) < spec.num_samples:
                print(f"adding {spec.num_samples - len(sweep.trials)} trials (num_samples {spec.num_samples})")
                build_tuner(spec, exp_dir, False, after_epoch, reuse_workers, seed_offset=len(sweep.trials)).fit()
    finally:
        if started:
            ray.shutdown()
            leftovers.forget()
    wall = time.time() - tic
    if not local:
        msg = f"sweep finished in {wall:.0f} s; results in {exp_dir} (copy it locally for hyco report/export)"
        print(msg)
        return SweepOutcome(exp_dir, msg, True, wall)
    sweep = load_sweep(exp_dir)
    summary = summary_text(sweep, wall_s=wall)
    sweep_dir.write_text(f"{exp_dir}/{sweep_dir.SUMMARY_FILE}", summary)
    print(summary)
    return SweepOutcome(exp_dir, summary, not sweep.by_outcome("unfinished"), wall, len(sweep.trials), len(sweep.by_outcome("error")))


def debug_run(spec: SweepSpec, run_dir: str | Path | None = None, seed: int | None = None) -> dict:
    """One configuration sampled from the space, trained in this process without Ray."""
    from hyco.run import train_run

    params = sample_params(spec, seed)
    overrides = spec.trial_overrides(params)
    cfg, stamp = load_config(spec.base, overrides), time.strftime("%Y%m%d-%H%M%S")
    print("debug run (no Ray) of the sweep's first trial:\n" + "".join(f"  {k}={v}\n" for k, v in params.items()), end="")
    print(f"rerun it with: hyco train {spec.base} {' '.join(overrides)}")
    return train_run(cfg, run_dir or Path(spec.storage_path) / f"{spec.name}-debug-{stamp}")
