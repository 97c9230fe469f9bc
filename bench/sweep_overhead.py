"""Sweep overhead: the same fixed configs one after another in one process and as a Ray Tune sweep.

    python bench/sweep_overhead.py [--configs 16] [--epochs 16] [--concurrent 2] [--variants shipped,all-figures]
        [--noise-seeds 0]

The problem, space, observation and trial length are the shipped quick sweep's
(``search_spaces/burgers_quick.yaml``: 16 trials of 16 epochs by default), with FIFO, a seeded random
sampler and no retries so that both sides train the same configs.

(a) ``sequential``: ``load_config`` + ``create_trainer`` + ``trainer.fit()`` for each config in this
    process, torch on 1 thread (a trial's share), no Ray;
(b) a sweep through ``hyco_ray.runner.sweep.run_sweep`` of the same configs (Optuna's random sampler with
    a fixed seed proposes them in the same order), ``--concurrent`` trials of 1 CPU each at a time,
    FIFO (no early stopping); its wall time includes Ray start-up and shutdown. ``shipped`` is the
    trainable and tuner as they ship (workers reused; figures drawn for the sweep's pick only, at the
    end); ``all-figures`` every complete trial draws its figures (``trial_figures: all``, as before
    issue 23); ``fresh`` a new worker process per trial (as before issue 13); ``with-noise`` the
    shipped sweep's seed-noise runs after the search (the other variants run none, as (a) does).

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
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

#: the shipped quick sweep (problem, space, observation, trial length); the bench swaps in what makes
#: both sides run the same configs: FIFO (no early stopping), a fixed-seed random sampler, no retries
SHIPPED = ROOT / "search_spaces" / "burgers_quick.yaml"
FIXED = {
    "scheduler": {"type": "fifo"},
    "searcher": {"type": "optuna", "sampler": "random", "seed": 0, "storage": None},
    "max_failures": 0,
    "callbacks": [],
}


def shipped_space() -> dict:
    data = yaml.safe_load(SHIPPED.read_text())
    data.update(json.loads(json.dumps(FIXED)))
    return data


def shipped_epochs(data: dict) -> int:
    """The shipped trial length: ``trainer_params.epochs`` of the space's fixed overrides."""
    return next(int(o.split("=", 1)[1]) for o in data["overrides"] if o.startswith("trainer_params.epochs="))


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


#: what a variant changes in the shipped spec (``fresh``: also a new worker per trial, run_tuned);
#: ``with-noise``: the shipped space's seed-noise runs after the search (their cost, apart in the parts)
VARIANTS = {"shipped": {}, "all-figures": {"trial_figures": "all"}, "fresh": {},
            "with-noise": {"noise_seeds": yaml.safe_load(SHIPPED.read_text())["noise_seeds"]}}


def make_spec(tmp: Path, configs: int, epochs: int, concurrent: int, name: str, extra: list[str] = (),
              noise_seeds: int = 0):
    from hyco_ray.core.space import parse_space, validate_space

    data = shipped_space()
    # noise_seeds 0: the sweep machinery only, as (a) runs no seed-noise runs (--noise-seeds: their cost)
    data.update(name=name, num_samples=configs, max_concurrent=concurrent, storage_path=str(tmp / "sweeps"),
                noise_seeds=noise_seeds)
    data.update(VARIANTS.get(name, {}))
    kept = [o for o in data["overrides"] if not o.startswith("trainer_params.epochs=")]
    data["overrides"] = [*kept, f"trainer_params.epochs={epochs}", f"data.cache_dir={tmp / 'cache'}", *extra]
    return validate_space(parse_space(data, where="bench"))


def fixed_configs(spec, n: int) -> list[dict]:
    """The params the sweep's searcher proposes, in order: the defaults, then its seeded sampler's draws."""
    from hyco_ray.core.space import proposals

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


@contextmanager
def timed(owner, name: str, spans: dict, key: str):
    """Record when ``owner.name`` is called and returns (``spans[key] = (start, end)``, wall clock)."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        begin = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            spans[key] = (begin, time.time())

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def run_tuned(spec, configs: list[dict], concurrent: int, legacy: bool) -> dict:
    """(b): the sweep, Ray start-up and shutdown included in its wall time, its parts timed apart:
    Ray start (``connect_ray``), the tuning loop, the seed-noise runs, Ray stop, the pick's figures."""
    import ray

    from hyco_ray.core.sweep_dir import load_sweep
    from hyco_ray.runner import sweep as sweep_module

    kwargs = {"reuse_workers": False} if legacy else {}
    spans: dict[str, tuple[float, float]] = {}
    tic, cpu, t0 = time.perf_counter(), time.process_time(), time.time()
    with (timed(sweep_module, "connect_ray", spans, "ray_start"), timed(ray, "shutdown", spans, "ray_stop"),
          timed(sweep_module, "measure_noise", spans, "noise"), timed(sweep_module, "write_pick_figures", spans, "figures")):
        outcome = sweep_module.run_sweep(spec, num_cpus=concurrent, **kwargs)
    wall, cpu, t1 = time.perf_counter() - tic, time.process_time() - cpu, time.time()
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
    # the tuning loop: from Ray up to the search's end (before the noise runs); per worker, the time
    # before its first trial's clock started (imports, Tune's start) and after its last ended (idle)
    loop = (spans["ray_start"][1], spans["noise"][0])
    by_pid: dict = {}
    for t in trials:
        by_pid.setdefault(t.history[0].get("pid"), []).append((t.history[0]["done_at"] - t.history[0]["time_this_iter_s"],
                                                               t.history[-1]["done_at"]))
    head = statistics.mean(min(a for a, _ in v) - loop[0] for v in by_pid.values())
    tail = statistics.mean(loop[1] - max(b for _, b in v) for v in by_pid.values())
    return {
        "wall_s": wall,
        "driver_cpu_s": cpu,  # this process: Tune's loop, searcher, result files (not raylet/GCS)
        "before_ray_s": spans["ray_start"][0] - t0,  # checks, dataset cache hit, spec copy
        "ray_start_s": spans["ray_start"][1] - spans["ray_start"][0],
        "ray_stop_s": spans["ray_stop"][1] - spans["ray_stop"][0],
        "noise_s": spans["noise"][1] - spans["noise"][0],
        "pick_figures_s": spans["figures"][1] - spans["figures"][0] if "figures" in spans else 0.0,
        "after_ray_s": t1 - spans["ray_stop"][1],  # experiment merge, pick's figures, summary
        "loop_s": loop[1] - loop[0],
        "worker_head_s": head,  # per worker: Ray up -> its first trial's clock (worker start, imports)
        "worker_tail_s": tail,  # per worker: its last trial's end -> the last trial's end (idle)
        "ray_start_stop_s": wall - (loop[1] - loop[0]) - (spans["noise"][1] - spans["noise"][0]),
        "setup_s": statistics.mean(r["time_this_iter_s"] - r["time_epoch"] for r in firsts),
        "tuning_wall_s": loop[1] - loop[0],
        "epochs_s": sum(r["time_epoch"] for r in rows),
        "in_trial_s": in_trial,
        "start_cost_s": (concurrent * (loop[1] - loop[0]) - in_trial) / len(trials),
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
    parser.add_argument("--configs", type=int, default=None, help="configs (default: the shipped num_samples)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the shipped space's)")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--variants", default="shipped,all-figures",
                        help=f"sweeps to run beside (a): {', '.join(VARIANTS)}")
    parser.add_argument("--noise-seeds", type=int, default=0, help="the sweeps' noise_seeds (0: none, as (a))")
    parser.add_argument("--extra", nargs="*", default=[], help="config overrides of every run (a and b)")
    parser.add_argument("--out", default=str(RESULTS / "sweep_overhead.json"))
    args = parser.parse_args(argv)
    args.epochs = args.epochs or shipped_epochs(shipped_space())
    args.configs = args.configs or shipped_space()["num_samples"]
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    variants = [v for v in args.variants.split(",") if v]
    load_before, tic = load(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hyco-overhead-") as tmp:
        from hyco_ray.runner.sweep import prepare_data

        tmp = Path(tmp)
        spec = make_spec(tmp, args.configs, args.epochs, args.concurrent, "seq", args.extra)
        prepare_data(spec)  # both sides find the data cached
        configs = fixed_configs(spec, args.configs)
        results = {"sequential": run_sequential(spec, configs)}
        for variant in variants:
            vspec = make_spec(tmp, args.configs, args.epochs, args.concurrent, variant, args.extra, args.noise_seeds)
            results[variant] = run_tuned(vspec, configs, args.concurrent, legacy=variant == "fresh")
    seq = results["sequential"]
    lines = [
        f"# {args.configs} configs x {args.epochs} epochs, {args.concurrent} concurrent 1-CPU trials, FIFO, "
        f"noise_seeds {args.noise_seeds}; python {platform.python_version()}, {os.cpu_count()} CPUs",
        f"# load average before / after: {load_before} / {load()}; total {time.perf_counter() - tic:.0f} s",
        "| run | wall s | wall / sequential | epochs s | epoch floor | in-trial s | start cost s/trial "
        "| report+ckpt s/epoch | report+ckpt / epoch | final artefacts s/trial | trial setup s (in trial) "
        "| max rel. diff of final metric vs (a) | worker pids |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| (a) sequential | {seq['wall_s']:.1f} | 1.00 | {seq['epochs_s']:.1f} | - | {seq['wall_s']:.1f} | - | - | - "
        f"| - | {seq['setup_s']:.2f} | - | 1 |",
    ]
    parts = ["", "Wall of each sweep in parts (s): before Ray (checks, data cache, spec) | Ray start | tuning loop "
             "(per worker: before its first trial, idle after its last) | noise runs | Ray stop | after (merge, "
             "the pick's figures, summary) | driver CPU",
             "| run | before Ray | Ray start | tuning loop | worker head | worker tail | noise runs | Ray stop "
             "| after Ray | of which pick's figures | driver CPU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant in variants:
        r = results[variant]
        diff = max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(r["finals"], seq["finals"]))
        r["max_rel_diff"] = diff
        # the floor: this sweep's own epochs spread over the cores, before any overhead
        r["epoch_floor"] = r["epochs_s"] / args.concurrent / seq["wall_s"]
        lines.append(
            f"| (b) sweep, {variant} | {r['wall_s']:.1f} | {r['wall_s'] / seq['wall_s']:.2f} | {r['epochs_s']:.1f} "
            f"| {r['epoch_floor']:.2f} | {r['in_trial_s']:.1f} | {r['start_cost_s']:.2f} | {r['report_s']:.4f} "
            f"| {r['report_fraction']:.3f} | {r['final_artefacts_s']:.2f} | {r['setup_s']:.2f} | {diff:.1e} | {r['pids']} |")
        parts.append(f"| {variant} | {r['before_ray_s']:.1f} | {r['ray_start_s']:.1f} | {r['loop_s']:.1f} "
                     f"| {r['worker_head_s']:.1f} | {r['worker_tail_s']:.1f} | {r['noise_s']:.1f} | {r['ray_stop_s']:.1f} "
                     f"| {r['after_ray_s']:.1f} | {r['pick_figures_s']:.1f} | {r['driver_cpu_s']:.1f} |")
    print("\n".join(lines + parts), flush=True)
    head = results[variants[0]] if variants else {}
    keys = ("before_ray_s", "ray_start_s", "loop_s", "worker_head_s", "worker_tail_s", "noise_s", "ray_stop_s",
            "after_ray_s", "pick_figures_s", "driver_cpu_s", "epochs_s", "in_trial_s", "epoch_floor")
    summary = {
        "wall_ratio": head["wall_s"] / seq["wall_s"] if head else None,
        "epoch_floor": head.get("epoch_floor"),  # the sweep's epochs / cores / (a): the ratio with no overhead
        "report_fraction": head.get("report_fraction"),
        "max_rel_diff": head.get("max_rel_diff"),  # final metric of the sweep vs the sequential loop (same configs)
        "start_cost_s": head.get("start_cost_s"),
        "final_artefacts_s": head.get("final_artefacts_s"),
        "variant": variants[0] if variants else None,
        "wall_s": {k: v["wall_s"] for k, v in results.items()},
        "wall_ratios": {k: v["wall_s"] / seq["wall_s"] for k, v in results.items()},
        "start_cost_s_per_trial": {k: v["start_cost_s"] for k, v in results.items() if k != "sequential"},
        "report_fractions": {k: v["report_fraction"] for k, v in results.items() if k != "sequential"},
        "final_artefacts_s_per_trial": {k: v["final_artefacts_s"] for k, v in results.items() if k != "sequential"},
        "setup_s_per_trial": {k: v["setup_s"] for k, v in results.items()},
        "ray_start_stop_s": {k: v["ray_start_stop_s"] for k, v in results.items() if k != "sequential"},
        "parts_s": {k: {p: v[p] for p in keys} for k, v in results.items() if k != "sequential"},
        "sequential_epochs_s": seq["epochs_s"],
        "configs": args.configs, "epochs": args.epochs, "concurrent": args.concurrent, "noise_seeds": args.noise_seeds,
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
