"""The Tune trainable: a trial is a ``hyco.run`` run directory plus a Tune report in its epoch hook.

A trial's config is the one ``hyco train`` would compose (``SweepSpec.trial_config``), trains on the
GPU Ray assigned it if torch sees one, and runs :func:`hyco.run.run_epochs` (the one epoch loop:
finite check, ``metrics.jsonl``, ``checkpoint.pt``, figures and test scores after the last epoch) in
its own directory; :class:`TrialHook` adds the trial's fields to each epoch's record and reports
it to Tune with a copy of ``checkpoint.pt``. A retried or resumed trial continues from its Tune
checkpoint, a PBT trial from the one it took over (the trainer state holds the epochs behind it),
or from its own newer one where Tune's snapshot is older (:func:`_unrecorded_checkpoint`).
With ``repeats: r`` the trainer is a :class:`hyco.training.SeedGroup` of r seeds and every report
their mean. A reused worker (``reuse_actors``) pays the imports once
and keeps the last datasets (:func:`trial_dataset`); ``create_trainer`` still seeds every trial, so
its numbers are a fresh worker's (``bench/sweep_overhead.py``). ``after_epoch`` is a test's fault hook.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from hyco.config.schedule import schedule_from_history
from hyco.data import Dataset, build_dataset
from hyco.errors import HycoError, TrainingError
from hyco.physics import make_problem
from hyco.run import CHECKPOINT_FILE, load_checkpoint, run_epochs
from hyco.runtime import configure, environment
from hyco.training import HybridTrainer, SeedGroup, create_trainer
from hyco_ray.core import sweep_dir
from hyco_ray.core.space import SweepSpec, parse_space

#: datasets a reused worker keeps (by everything that decides them); a few, not every trial's
DATASETS_KEPT = 2
_datasets: dict[str, Dataset] = {}


def trial_dataset(cfg, keep: int = DATASETS_KEPT) -> Dataset:
    """The trial's dataset, built once per worker for the same data settings: the key is everything
    :func:`hyco.data.build_dataset` reads. Trainers only read its tensors, so trials share it; the
    last ``keep`` are kept (a trial of r seeds needs r)."""
    tp = cfg.trainer_params
    key = json.dumps([asdict(cfg.data), asdict(cfg.model.physical), cfg.run_params.dtype,
                      list(tp.train_sim), list(tp.val_sim), list(tp.test_sim)], sort_keys=True, default=str)
    if key not in _datasets:
        while len(_datasets) >= keep:
            _datasets.pop(next(iter(_datasets)))
        _datasets[key] = build_dataset(cfg, make_problem(cfg.model.physical))
    return _datasets[key]


def pick_device() -> tuple[str, dict[str, Any]]:
    """``cuda`` when Ray assigned this trial a GPU and torch can see it, else ``cpu``."""
    in_ray = ray.is_initialized()  # not in debug runs
    gpu_ids = [str(g) for g in ray.get_gpu_ids()] if in_ray else []
    device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
    return device, {"device": device, "gpu_ids": ",".join(gpu_ids), "hostname": socket.gethostname(),
                    "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                    "node_id": ray.get_runtime_context().get_node_id() if in_ray else ""}


class TrialHook:
    """A trial's part of each epoch of :func:`hyco.run.run_epochs`: its fields (who trained the epoch,
    with which settings, when) in the record, then a Tune report with a copy of ``checkpoint.pt``.
    ``after_epoch`` is a test's fault hook: it runs after the epoch is computed, before its record."""

    def __init__(self, spec: SweepSpec, extra: dict[str, Any], trial_dir: Path,
                 after_epoch: Callable[[int, Path], None] | None = None):
        self.spec, self.extra, self.trial_dir, self.after_epoch = spec, extra, trial_dir, after_epoch

    def before_record(self, metrics: dict) -> None:
        if self.after_epoch is not None:
            self.after_epoch(metrics["epoch"], self.trial_dir)
        metrics.update(self.extra)
        metrics["done_at"] = time.time()  # when: budgets of trial-epochs in wall order

    def after_record(self, metrics: dict, run_dir: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copyfile(run_dir / CHECKPOINT_FILE, Path(tmp) / CHECKPOINT_FILE)
            # objective_epoch best: the best epoch so far is what ASHA, Optuna and PBT see
            tune.report(sweep_dir.objective_row(metrics, self.spec.objective_epoch),
                        checkpoint=tune.Checkpoint.from_directory(tmp))


def draws_figures(spec: SweepSpec) -> bool:
    """Whether a complete trial draws its own ``figures/``: with ``trial_figures: all``, or where the
    sweep cannot draw its pick's at the end (a remote ``storage_path``: ``sweep.write_pick_figures``)."""
    return spec.trial_figures == "all" or sweep_dir.is_remote(spec.storage_path)


def build_trial_trainer(cfg, repeats: int, device: str) -> HybridTrainer | SeedGroup:
    """The trial's trainer on its device with the worker's datasets: one, or a seed group of ``repeats``."""

    def build(member) -> HybridTrainer:
        configure(member.run_params)  # the precision the dataset is built in (create_trainer sets it again)
        return create_trainer(member, device=device, dataset=trial_dataset(member, keep=max(DATASETS_KEPT, repeats)))

    return build(cfg) if repeats == 1 else SeedGroup.create(cfg, repeats, build)


def run_trial(config: dict[str, Any], sweep: dict, after_epoch: Callable[[int, Path], None] | None = None) -> None:
    """Function trainable: ``config`` holds the sampled values, ``sweep`` the saved sweep spec."""
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    spec = parse_space(sweep, where=sweep_dir.SPEC_FILE)  # torch threads: the trial's CPUs (resources.cpu, as Ray reserved them)
    trial_dir, (device, info), trial_id = _trial_dir(spec), pick_device(), _trial_id()
    state = None  # the checkpoint's trainer state; its history: the epochs that led to it
    checkpoint = tune.get_checkpoint()  # this trial's own, or under PBT another's that it exploits
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            state = load_checkpoint(Path(ckpt_dir) / CHECKPOINT_FILE, map_location=device)
    reported = list(state["history"]) if state else []
    unseen, newer = [], _unrecorded_checkpoint(trial_dir, checkpoint, reported, trial_id, device)
    if newer is not None:  # epochs Tune did not record before it stopped: reported below, not trained again
        state, unseen, reported = newer[1], newer[1]["history"][len(reported):], list(newer[1]["history"])
    restored_from = int(state["epoch"]) if state else 0
    settings = {k: getattr(v := config[k], "item", lambda: v)() for k in spec.space if k in config}  # numpy: plain
    first, steps = schedule_from_history(reported[:restored_from], settings, min(restored_from + 1, spec.max_t))
    cfg = spec.trial_config(first, steps)  # typed values, no trip through override text; validated once
    cfg.run_params.device = device  # recorded as it ran (hyco export writes it too)
    _write_lineage(trial_dir, reported[:restored_from], settings, trial_id, restored_from + 1)
    trainer = build_trial_trainer(cfg, spec.repeats, device)
    env = environment(cfg.run_params)
    extra = {**info, "num_threads": spec.num_threads, "restored_from_epoch": restored_from,
             "trial_id": trial_id, "settings": settings, "env": {k: str(v) for k, v in env.items()},
             "defaults": bool(spec.defaults) and settings == spec.defaults}  # the base config's own values
    if spec.repeats > 1:
        extra["seeds"] = [cfg.run_params.seed + i for i in range(spec.repeats)]  # and data.seed + i
    hook = TrialHook(spec, extra, trial_dir, after_epoch)
    for i, row in enumerate(unseen, 1):  # as first reported (metrics.jsonl has them); the last with its checkpoint
        row = sweep_dir.objective_row(dict(row), spec.objective_epoch)
        if i < len(unseen):
            tune.report(row)
            continue
        with tempfile.TemporaryDirectory() as tmp:  # a copy: Tune may write its next checkpoint there
            shutil.copyfile(newer[0], Path(tmp) / CHECKPOINT_FILE)
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))
    try:
        run_epochs(cfg, trainer, trial_dir, state=state, hook=hook, evaluate=len(getattr(trainer, "members", [trainer])[0].dataset.test) > 0,
                   figures=draws_figures(spec))
    except TrainingError as exc:
        # NaN or inf: deterministic, so no retry; the worst value tells ASHA and TPE this setting is bad
        worst = math.inf if spec.mode == "min" else -math.inf
        epoch = getattr(exc, "epoch", None) or trainer.epoch + 1
        tune.report({"epoch": epoch, spec.metric: worst, "training_error": str(exc), **extra})


def _unrecorded_checkpoint(trial_dir: Path, given, history: list[dict], trial_id: str | None, device: str):
    """This trial's own checkpoint newer than the one Tune restores it from (``given``, None: from the
    start), as ``(file, trainer state)``. A trial finishes the epoch it is training after Ctrl-C and
    saves its checkpoint, but Tune's last experiment snapshot is older (and a killed driver's periodic
    one older still), so Tune restores the checkpoint before it and the epoch was trained twice. The
    run directory's own ``checkpoint.pt`` is the newest (written before Tune's copy), then Tune's.
    None where there is none, it is another trial's lineage, or it is unreadable (killed mid-write)."""
    if trial_id is None or (given is not None and Path(given.path).resolve().parent != trial_dir.resolve()):
        return None  # outside Tune, a remote sweep, or a PBT exploit (another trial's checkpoint)
    candidates = [trial_dir / CHECKPOINT_FILE, *(c / CHECKPOINT_FILE for c in sorted(trial_dir.glob("checkpoint_*"), reverse=True))]
    for path in candidates:
        try:
            state = load_checkpoint(path, map_location=device)
        except HycoError:
            continue  # missing, or killed mid-write
        rows = list(state.get("history", []))
        if len(rows) > len(history) and rows[:len(history)] == history and rows[-1].get("trial_id") == trial_id:
            return path, state
    return None


def _write_lineage(trial_dir: Path, rows: list[dict], settings: dict, trial_id: str | None, next_epoch: int) -> None:
    """``schedule.json``: the trial's epochs in segments of one trainer and one setting each; a
    segment trained by another trial is a PBT exploit (its checkpoint was taken over)."""
    marks = [(int(r["epoch"]), r.get("trial_id"), r.get("settings")) for r in rows] + [(next_epoch, trial_id, settings)]
    segments: list[dict] = []
    for epoch, who, values in marks:
        if segments and (segments[-1]["trained_by"], segments[-1]["settings"]) == (who, values):
            continue
        segments.append({"from_epoch": epoch, "trained_by": who, "settings": values,
                         "exploit": bool(segments) and segments[-1]["trained_by"] != who})
    sweep_dir.write_atomic(trial_dir / sweep_dir.LINEAGE_FILE, json.dumps(segments, indent=1, default=str))


def _trial_id() -> str | None:
    try:
        return tune.get_context().get_trial_id()
    except Exception:  # noqa: BLE001 - outside a Tune session
        return None


def _trial_dir(spec: SweepSpec) -> Path:
    """``<sweep dir>/trial_<id>`` (``Path.cwd()`` outside Tune). Not ``get_trial_dir()``: for a reused
    worker that is an unsynced working directory (Ray 2.60, ``FunctionTrainable.reset_config``)."""
    trial_id = _trial_id()
    if trial_id is None:
        return Path.cwd()
    if sweep_dir.is_remote(spec.storage_path):
        return Path(tune.get_context().get_trial_dir())
    return sweep_dir.trial_dir(spec, trial_id)


def make_trainable(spec: SweepSpec, after_epoch: Callable[[int, Path], None] | None = None):
    """The trainable with the spec (and a test's fault hook) bound and the trial's resources attached."""
    bound = tune.with_parameters(run_trial, sweep=spec.to_dict(), after_epoch=after_epoch)
    return tune.with_resources(bound, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
