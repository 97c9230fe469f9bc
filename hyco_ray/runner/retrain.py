"""Retrain configurations as Ray tasks outside Tune: ``hyco confirm``'s runs (:mod:`hyco_ray.runner.confirm`)
and a sweep's seed-noise runs of the defaults (:mod:`hyco_ray.core.noise`). Each run is ``hyco train`` of a
config at one seed, then its test split, and writes ``<root>/<subdir>/<setting>/seed_<s>/result.json``
when it finishes: an interrupted batch loses only the runs in flight, and the next one skips the rest.
Ray must be up (the caller connects: a sweep's own Ray, or confirm's); this module imports no other
hyco_ray module that does, so the sweep can use it without an import circle.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
#: the test metrics compared besides the sweep's objective (lower is better)
TEST_METRICS = ("test_loss_synthetic", "test_loss_physical", "param_error")
#: a value this small counts as this (an error exact to round-off; the trainer's own floor)
FLOOR = 1e-8


def result_path(root: str | Path, subdir: str, setting: str, seed: int) -> Path:
    return Path(root) / subdir / setting / f"seed_{seed}" / RESULT_FILE


def objective_of(final: dict, metric: str) -> float:
    """The sweep's objective of a finished run. ``val_loss`` is recomputed from S's and P's val errors
    (the hybrid trainer's geometric mean), so a baseline that trains one model is scored like the rest."""
    if metric == "val_loss" and "val_loss_synthetic" in final and "val_loss_physical" in final:
        return math.sqrt(max(final["val_loss_synthetic"], FLOOR) * max(final["val_loss_physical"], FLOOR))
    value = final.get(metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


def train_one(base: str, overrides: list[str], run_dir: str, metric: str) -> dict:
    """One confirmation run (in a Ray worker): ``hyco train`` of the setting at this seed, then the
    test split; returns the metrics :func:`run_confirm` compares."""
    from hyco.config import load_config
    from hyco.run import train_run

    path = Path(run_dir)
    if path.exists():  # a run cut off mid-way: start it again (a confirmation run is minutes)
        shutil.rmtree(path)
    cfg = load_config(base, [*overrides, "run_params.mode=[train,evaluate]"])
    tic = time.perf_counter()
    final = train_run(cfg, path, progress=False)
    keys = ("epoch", "val_loss", "val_loss_synthetic", "val_loss_physical", *TEST_METRICS)
    result = {k: final.get(k) for k in (*keys, "best_epoch", *(f"best_{k}" for k in keys)) if k in final or k in keys}
    result["objective"] = objective_of(final, metric)
    result["seconds"] = time.perf_counter() - tic
    return result


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def run_tasks(root: Path, base: str, metric: str, todo: list, done: int, total: int, subdir: str,
              cpu: float = 1, gpu: float = 0) -> None:
    """Train ``todo`` ((setting, seed) pairs: a setting has ``name`` and ``overrides``) as Ray tasks of
    ``cpu`` CPUs and ``gpu`` GPUs each, ``run_params.seed = data.seed = seed``; a result is written as
    each finishes (a run that raised: its error and a NaN objective)."""
    import ray

    remote = ray.remote(num_cpus=cpu, num_gpus=gpu, max_retries=0)(train_one)
    pending = {}
    try:
        for s, seed in todo:
            run_dir = result_path(root, subdir, s.name, seed).parent
            ref = remote.remote(base, [*s.overrides, f"run_params.seed={seed}", f"data.seed={seed}"], str(run_dir), metric)
            pending[ref] = (s.name, seed)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            name, seed = pending.pop(ready[0])
            done += 1
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:  # a diverged or broken run: recorded as such
                result = {"error": str(exc.cause if hasattr(exc, "cause") else exc).splitlines()[0],
                          "objective": math.nan}
            path = result_path(root, subdir, name, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=2, default=str))
            print(f"[{done}/{total}] {name} seed {seed}: objective={_fmt(result.get('objective'))} "
                  + ", ".join(f"{k}={_fmt(result.get(k))}" for k in TEST_METRICS), flush=True)
    except KeyboardInterrupt:
        print(f"{subdir} interrupted: {done} of {total} runs are recorded; run the same command again to go on", flush=True)
        raise
