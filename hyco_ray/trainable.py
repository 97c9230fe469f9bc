"""The Tune trainable: one HybridTrainer run, reported epoch by epoch with a checkpoint.

A trial's config is the one ``hyco train`` would compose (``SweepSpec.trial_config``), trains on the
GPU Ray assigned it if torch sees one, and reports each epoch with a checkpoint; a retried or
resumed trial continues from its last one. A reused worker (``reuse_actors``) pays the imports once
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

from hyco.config import config_to_yaml
from hyco.config.schedule import schedule_from_history
from hyco.data import Dataset, build_dataset
from hyco.errors import HycoError, TrainingError
from hyco.physics import make_problem
from hyco.run import check_finite, evaluate_trainer, load_checkpoint, write_figures
from hyco.runtime import configure, environment
from hyco.training import create_trainer
from hyco_ray import sweep_dir
from hyco_ray.space import SweepSpec, parse_space

STATE_FILE = "trainer_state.pt"
HISTORY_FILE = "history.json"
#: datasets a reused worker keeps (by everything that decides them); a few, not every trial's
DATASETS_KEPT = 2
_datasets: dict[str, Dataset] = {}


def trial_dataset(cfg) -> Dataset:
    """The trial's dataset, built once per worker for the same data settings: the key is everything
    :func:`hyco.data.build_dataset` reads. Trainers only read its tensors, so trials share it."""
    tp = cfg.trainer_params
    key = json.dumps([asdict(cfg.data), asdict(cfg.model.physical), cfg.run_params.dtype,
                      list(tp.train_sim), list(tp.val_sim), list(tp.test_sim)], sort_keys=True, default=str)
    if key not in _datasets:
        while len(_datasets) >= DATASETS_KEPT:
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


def run_trial(config: dict[str, Any], sweep: dict, after_epoch: Callable[[int, Path], None] | None = None) -> None:
    """Function trainable: ``config`` holds the sampled values, ``sweep`` the saved sweep spec."""
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    spec = parse_space(sweep, where=sweep_dir.SPEC_FILE)  # torch threads: the trial's CPUs (resources.cpu, as Ray reserved them)
    trial_dir, (device, info), trial_id = _trial_dir(spec), pick_device(), _trial_id()
    state, reported = None, []  # the checkpoint's trainer state and the epochs that led to it
    checkpoint = tune.get_checkpoint()  # this trial's own, or under PBT another's that it exploits
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            state = load_checkpoint(Path(ckpt_dir) / STATE_FILE, map_location=device)
            if (Path(ckpt_dir) / HISTORY_FILE).exists():
                reported = json.loads((Path(ckpt_dir) / HISTORY_FILE).read_text())
    unseen, newer = [], _unrecorded_checkpoint(trial_dir, checkpoint, reported, trial_id, device)
    if newer is not None:  # epochs Tune did not record before it stopped: reported below, not trained again
        state, unseen, reported = newer[1], newer[2][len(reported):], newer[2]
    restored_from = int(state["epoch"]) if state else 0
    settings = {k: getattr(v := config[k], "item", lambda: v)() for k in spec.space if k in config}  # numpy: plain
    first, steps = schedule_from_history(reported[:restored_from], settings, min(restored_from + 1, spec.max_t))
    cfg = spec.trial_config(first, steps)  # typed values, no trip through override text; validated once
    cfg.run_params.device = device  # recorded as it ran (hyco export writes it too)
    sweep_dir.write_atomic(trial_dir / sweep_dir.TRIAL_CONFIG_FILE, config_to_yaml(cfg))  # what it ran: hyco export copies it
    _write_lineage(trial_dir, reported[:restored_from], settings, trial_id, restored_from + 1)
    configure(cfg.run_params)  # the precision the dataset is built in (create_trainer sets it again)
    trainer = create_trainer(cfg, device=device, dataset=trial_dataset(cfg))
    if state is not None:
        trainer.load_state_dict(state)
    env = environment(cfg.run_params)
    extra = {**info, "num_threads": spec.num_threads, "restored_from_epoch": restored_from,
             "trial_id": trial_id, "settings": settings, "env": {k: str(v) for k, v in env.items()},
             "defaults": bool(spec.defaults) and settings == spec.defaults}  # the base config's own values

    for i, row in enumerate(unseen, 1):  # as first reported (epochs.jsonl has them); the last with its checkpoint
        if i < len(unseen):
            tune.report(row)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(newer[0], tmp, dirs_exist_ok=True)  # Tune may write its next checkpoint there
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))
    try:
        for metrics in trainer.fit():
            check_finite(metrics)
            if after_epoch is not None:
                after_epoch(metrics["epoch"], trial_dir)
            row = {**metrics, **extra, "done_at": time.time()}  # when: budgets of trial-epochs in wall order
            if spec.objective_epoch == "best":  # the best epoch so far is what ASHA, Optuna and PBT see
                row.update({f"raw_{k}": row[k] for k in trainer.BEST_KEYS})
                row.update({k: row[f"best_{k}"] for k in trainer.BEST_KEYS})
            if metrics["epoch"] >= spec.max_t:  # complete: figures and test metrics before ASHA ends the trial
                write_figures(trainer, trial_dir)
                if len(trainer.dataset.test):
                    test = evaluate_trainer(trainer, trial_dir).items()
                    row.update({k: v for k, v in test if k.startswith("test_")})
            reported.append(row)
            # Tune's result.json can lose a paused PBT trial's rows; a line, or nothing on a full disk
            sweep_dir.append_line(trial_dir / sweep_dir.TRAINED_FILE, json.dumps(row))
            with tempfile.TemporaryDirectory() as tmp:
                torch.save(trainer.state_dict(), Path(tmp) / STATE_FILE)
                # every epoch so far: Tune's result.json can lose rows when a retried trial restarts
                (Path(tmp) / HISTORY_FILE).write_text(json.dumps(reported))
                tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))
    except TrainingError as exc:
        # NaN or inf: deterministic, so no retry; the worst value tells ASHA and TPE this setting is bad
        worst = math.inf if spec.mode == "min" else -math.inf
        epoch = getattr(exc, "epoch", None) or trainer.epoch + 1
        tune.report({"epoch": epoch, spec.metric: worst, "training_error": str(exc), **extra})


def _unrecorded_checkpoint(trial_dir: Path, given, history: list[dict], trial_id: str | None, device: str):
    """This trial's own checkpoint newer than the one Tune restores it from (``given``, None: from the
    start), as ``(dir, trainer state, history)``. A trial finishes the epoch it is training after
    Ctrl-C and saves its checkpoint, but Tune's last experiment snapshot is older (and a killed driver's
    periodic one older still), so Tune restores the checkpoint before it and the epoch was trained twice.
    None where there is none, it is another trial's lineage, or it is unreadable (killed mid-write)."""
    if trial_id is None or (given is not None and Path(given.path).resolve().parent != trial_dir.resolve()):
        return None  # outside Tune, a remote sweep, or a PBT exploit (another trial's checkpoint)
    for ckpt in sorted(trial_dir.glob("checkpoint_*"), reverse=True):
        try:
            rows = json.loads((ckpt / HISTORY_FILE).read_text())
            if not (len(rows) > len(history) and rows[:len(history)] == history and rows[-1].get("trial_id") == trial_id):
                continue
            return ckpt, load_checkpoint(ckpt / STATE_FILE, map_location=device), rows
        except (OSError, ValueError, HycoError):
            continue
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
