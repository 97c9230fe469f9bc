"""Sweep overhead: the same fixed configs one after another in one process and as a Ray Tune sweep.

    python bench/sweep_overhead.py [--configs 8] [--epochs 8] [--concurrent 2] [--variants shipped,fresh]

(a) ``sequential``: ``load_config`` + ``create_trainer`` + ``trainer.fit()`` for each config in this
    process, torch on 1 thread (a trial's share), no Ray;
(b) a sweep through ``hyco_ray.sweep.run_sweep`` of the same configs (Optuna's random sampler with
    a fixed seed proposes them in the same order), ``--concurrent`` trials of 1 CPU each at a time,
    FIFO (no early stopping); its wall time includes Ray start-up and shutdown. ``shipped`` is the
    trainable and tuner as they ship (workers reused); ``fresh`` a new worker process per trial
    (as before issue 13), for the before/after ratio in one run.

Printed: wall(b)/wall(a) per variant, the per-trial start cost (worker-seconds of the tuning loop
not spent inside a trial's own clock, per trial), and report + checkpoint per epoch as a fraction
of an epoch (Tune's ``time_this_iter_s`` minus the epoch's own ``time_epoch``: what one
``tune.report`` with its checkpoint added to the loop; over the middle epochs, since the first
holds the trial's setup and the last its one-time artefacts, figures and the test evaluation,
printed apart as final artefacts per trial). The final metric of every config is
compared between (a) and (b): reused workers must not change the numbers. Headline figures go to
``bench/results/sweep_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

#: the quick sweep's problem and space (search_spaces/burgers_quick.yaml), a fixed-seed random sampler
SPACE = {
    "name": "overhead",
    "base": "burgers_hybrid_quick_test",
    "space": {
        "trainer_params.alpha": {"type": "uniform", "low": 0.05, "high": 1.0},
        "trainer_params.warmup_epochs": {"type": "int", "low": 0, "high": 3},
        "trainer_params.physical.max_iterations": {"type": "int", "low": 1, "high": 8},
        "trainer_params.interleave_frequency": {"type": "choice", "values": [1, 2, 4]},
    },
    "metric": "val_loss",
    "mode": "min",
    "scheduler": {"type": "fifo"},
    "searcher": {"type": "optuna", "sampler": "random", "seed": 0, "storage": None},
    "resources": {"cpu": 1, "gpu": 0},
    "max_failures": 0,
}


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def make_spec(tmp: Path, configs: int, epochs: int, concurrent: int, name: str, extra: list[str] = ()):
    from hyco_ray.space import parse_space, validate_space

    data = json.loads(json.dumps(SPACE))
    data.update(name=name, num_samples=configs, max_concurrent=concurrent, storage_path=str(tmp / "sweeps"),
                noise_seeds=0)  # the sweep machinery only: no seed-noise runs
    data["overrides"] = [f"trainer_params.epochs={epochs}", f"data.cache_dir={tmp / 'cache'}", *extra]
    return validate_space(parse_space(data, where="bench"))


def fixed_configs(spec, n: int) -> list[dict]:
    """The params the sweep's searcher proposes, in order: the defaults, then its seeded sampler's draws."""
    from hyco_ray.space import proposals

    return proposals(spec, n)


def run_sequential(spec, configs: list[dict]) -> dict:
    """(a): one config after another in this process (1 torch thread, as a 1-CPU trial)."""
    from hyco.config import load_config
    from hyco.training import create_trainer

    tic = time.perf_counter()
    finals, epochs_s, setup_s = [], 0.0, 0.0
    for params in configs:
        start = time.perf_counter()
        cfg = load_config(spec.base, spec.trial_overrides(params, threads=1))
        trainer = create_trainer(cfg)
        setup_s += time.perf_counter() - start
        for metrics in trainer.fit():
            epochs_s += metrics["time_epoch"]
        finals.append(metrics[spec.metric])
    return {"wall_s": time.perf_counter() - tic, "epochs_s": epochs_s, "finals": finals, "setup_s": setup_s / len(configs)}


def run_tuned(spec, configs: list[dict], concurrent: int, legacy: bool) -> dict:
    """(b): the sweep, Ray start-up and shutdown included in its wall time."""
    from hyco_ray.sweep import run_sweep
    from hyco_ray.sweep_dir import load_sweep

    kwargs = {"reuse_workers": False} if legacy else {}
    tic, cpu = time.perf_counter(), time.process_time()
    outcome = run_sweep(spec, num_cpus=concurrent, **kwargs)
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    sweep = load_sweep(outcome.experiment_dir)
    trials = [_matching(sweep.trials, params, spec) for params in configs]  # in proposal order
    rows = [r for t in trials for r in t.history]
    in_trial = sum(t.final.get("time_total_s", 0.0) for t in trials)
    # per-epoch report + checkpoint: epochs 2..n-1 (the first holds the trial's setup, the last its
    # one-time artefacts: figures and the test evaluation, measured apart as final_artefacts_s)
    middle = [r for t in trials for r in t.history[1:-1]]
    overheads = [r["time_this_iter_s"] - r["time_epoch"] for r in middle]
    epochs = [r["time_epoch"] for r in middle]
    lasts = [t.history[-1] for t in trials if len(t.history) > 1]
    firsts = [t.history[0] for t in trials if t.history]
    return {
        "wall_s": wall,
        "driver_cpu_s": cpu,  # this process: Tune's loop, searcher, result files (not raylet/GCS)
        "ray_start_stop_s": wall - outcome.wall_s,  # ray.init, data check, ray.shutdown, summary
        "setup_s": statistics.mean(r["time_this_iter_s"] - r["time_epoch"] for r in firsts),
        "tuning_wall_s": outcome.wall_s,  # tuner.fit() alone, Ray already up
        "epochs_s": sum(r["time_epoch"] for r in rows),
        "in_trial_s": in_trial,
        "start_cost_s": (concurrent * outcome.wall_s - in_trial) / len(trials),
        "report_s": statistics.mean(overheads),
        "report_fraction": statistics.mean(overheads) / statistics.mean(epochs),
        "final_artefacts_s": statistics.mean(r["time_this_iter_s"] - r["time_epoch"] for r in lasts)
        - statistics.mean(overheads),
        "finals": [t.value(spec.metric) for t in trials],
        "pids": len({r.get("pid") for r in rows}),
    }


def _matching(trials: list, params: dict, spec):
    def same(t) -> bool:
        return all(abs(t.params.get(k, math.nan) - v) < 1e-9 if isinstance(v, float) else t.params.get(k) == v
                   for k, v in params.items())

    found = [t for t in trials if same(t)]
    if len(found) != 1:
        raise RuntimeError(f"the sweep ran other configs than (a): {len(found)} trials match {params}")
    return found[0]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--variants", default="shipped,fresh", help="sweeps to run beside (a): shipped, fresh")
    parser.add_argument("--extra", nargs="*", default=[], help="config overrides of every run (a and b)")
    parser.add_argument("--out", default=str(RESULTS / "sweep_overhead.json"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    variants = [v for v in args.variants.split(",") if v]
    load_before, tic = load(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hyco-overhead-") as tmp:
        from hyco_ray.sweep import prepare_data

        tmp = Path(tmp)
        spec = make_spec(tmp, args.configs, args.epochs, args.concurrent, "seq", args.extra)
        prepare_data(spec)  # both sides find the data cached
        configs = fixed_configs(spec, args.configs)
        results = {"sequential": run_sequential(spec, configs)}
        for variant in variants:
            vspec = make_spec(tmp, args.configs, args.epochs, args.concurrent, variant, args.extra)
            results[variant] = run_tuned(vspec, configs, args.concurrent, legacy=variant == "fresh")
    seq = results["sequential"]
    lines = [
        f"# {args.configs} configs x {args.epochs} epochs, {args.concurrent} concurrent 1-CPU trials, FIFO; "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs",
        f"# load average before / after: {load_before} / {load()}; total {time.perf_counter() - tic:.0f} s",
        "| run | wall s | wall / sequential | epochs s | in-trial s | start cost s/trial | report+ckpt s/epoch "
        "| report+ckpt / epoch | final artefacts s/trial | trial setup s (in trial) | Ray start+stop s | driver CPU s "
        "| max rel. diff of final metric vs (a) | worker pids |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| (a) sequential | {seq['wall_s']:.1f} | 1.00 | {seq['epochs_s']:.1f} | {seq['wall_s']:.1f} | - | - | - | - "
        f"| {seq['setup_s']:.2f} | - | - | - | 1 |",
    ]
    for variant in variants:
        r = results[variant]
        diff = max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(r["finals"], seq["finals"]))
        r["max_rel_diff"] = diff
        lines.append(
            f"| (b) sweep, {variant} | {r['wall_s']:.1f} | {r['wall_s'] / seq['wall_s']:.2f} | {r['epochs_s']:.1f} "
            f"| {r['in_trial_s']:.1f} | {r['start_cost_s']:.2f} | {r['report_s']:.4f} | {r['report_fraction']:.3f} "
            f"| {r['final_artefacts_s']:.2f} | {r['setup_s']:.2f} | {r['ray_start_stop_s']:.1f} | {r['driver_cpu_s']:.1f} | {diff:.1e} | {r['pids']} |")
    print("\n".join(lines), flush=True)
    head = results[variants[0]] if variants else {}
    summary = {
        "wall_ratio": head["wall_s"] / seq["wall_s"] if head else None,
        "report_fraction": head.get("report_fraction"),
        "max_rel_diff": head.get("max_rel_diff"),  # final metric of the sweep vs the sequential loop (same configs)
        "start_cost_s": head.get("start_cost_s"),
        "final_artefacts_s": head.get("final_artefacts_s"),
        "variant": variants[0] if variants else None,
        "wall_s": {k: v["wall_s"] for k, v in results.items()},
        "wall_ratios": {k: v["wall_s"] / seq["wall_s"] for k, v in results.items()},
        "start_cost_s_per_trial": {k: v["start_cost_s"] for k, v in results.items() if k != "sequential"},
        "report_fractions": {k: v["report_fraction"] for k, v in results.items() if k != "sequential"},
        "setup_s_per_trial": {k: v["setup_s"] for k, v in results.items()},
        "ray_start_stop_s": {k: v["ray_start_stop_s"] for k, v in results.items() if k != "sequential"},
        "driver_cpu_s": {k: v["driver_cpu_s"] for k, v in results.items() if k != "sequential"},
        "configs": args.configs, "epochs": args.epochs, "concurrent": args.concurrent,
        "load_before": load_before, "load_after": load(),
        "machine": _cpu_model(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    write_summary(args.out, summary)
    return summary


def write_summary(out: str | None, summary: dict) -> None:
    """A bench's headline figures as JSON (``bench/results/<bench>.json``)."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"# wrote {out}")


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")
    except OSError:
        return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
