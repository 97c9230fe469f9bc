"""Early stopping: the same configs under FIFO and under ASHA (shipped rungs and more aggressive ones).

    python bench/asha_vs_fifo.py [--configs 24] [--epochs 16] [--seeds 0,1,2] [--concurrent 2]

For each sampler seed, Optuna's random sampler (seeded) proposes the same ``--configs`` configs
for every scheduler; each runs as a real sweep (``hyco_ray.runner.sweep.run_sweep``, one local Ray for
all of them) on the tiny 1D Burgers problem of ``tests/sweep_util.py``, half observed with 2 %
noise as in burgers_quick, for ``--epochs`` epochs
(max_t). Training is deterministic per config, so a config ASHA lets finish ends with the metric
it has under FIFO. Printed per scheduler: trial-epochs (the compute) and the best final metric
among trials that ran all epochs, both as ratios to FIFO, per seed and averaged. The metric is
the sweep's default objective (``val_loss``; ``--metric`` for another).

Headline figures (``trial_epochs_ratio``, ``best_metric_ratio`` of the recommended setting, and
every setting's) go to ``bench/results/asha_vs_fifo.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from sweep_overhead import _cpu_model, load, write_summary  # noqa: E402
from sweep_util import SMALL  # noqa: E402

#: (label, grace_period, reduction_factor). The shipped spaces now use one rung at half of max_t, reduction 2
#: (g8 r2 here): the only setting that kept the best trial (bench/RESULTS.md)
SCHEDULERS = [
    ("fifo", None, None),
    ("asha g2 r2 (burgers_quick until 2026-12)", 2, 2),
    ("asha g3 r3 (burgers_full, heat until 2026-12)", 3, 3),
    ("asha g2 r3 (smoke until 2026-12)", 2, 3),
    ("asha g1 r3", 1, 3),
    ("asha g1 r4", 1, 4),
    ("asha g4 r2", 4, 2),
    ("asha g8 r2 (half of max_t: shipped)", 8, 2),
]

#: burgers_quick's observation case: half the domain, 2 % noise (with every point observed the
#: default interaction region is empty and the coupling weights change nothing)
PARTIAL = ["data.observation.mask=region", "data.observation.region=[[0.0,0.5]]", "data.observation.noise=0.02"]

SPACE = {
    "base": "burgers_hybrid_quick_test",
    "space": {
        "trainer_params.alpha": {"type": "uniform", "low": 0.05, "high": 1.0},
        "trainer_params.alpha_physical": {"type": "uniform", "low": 0.3, "high": 1.0},
        "trainer_params.physical.max_iterations": {"type": "int", "low": 1, "high": 8},
        "trainer_params.interleave_frequency": {"type": "choice", "values": [1, 2, 4]},
        "trainer_params.synthetic.learning_rate": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
    },
    "mode": "min",
    "resources": {"cpu": 1, "gpu": 0},
    "max_failures": 0,
}


def rungs(grace: int, factor: int, max_t: int) -> list[int]:
    return [r for r in (grace * factor**k for k in range(32)) if r < max_t]


def make_spec(tmp: Path, name: str, seed: int, args, grace: int | None, factor: int | None):
    from hyco_ray.core.space import parse_space, validate_space

    data = json.loads(json.dumps(SPACE))
    data.update(name=name, num_samples=args.configs, max_concurrent=args.concurrent, metric=args.metric,
                storage_path=str(tmp / "sweeps"), noise_seeds=0)  # trial-epochs of the search only
    data["searcher"] = {"type": "optuna", "sampler": "random", "seed": seed, "storage": None}
    data["scheduler"] = ({"type": "fifo"} if grace is None else
                         {"type": "asha", "grace_period": grace, "reduction_factor": factor})
    data["overrides"] = [*SMALL, f"trainer_params.epochs={args.epochs}", "trainer_params.warmup_epochs=1",
                         f"data.cache_dir={tmp / 'cache'}", *PARTIAL]
    return validate_space(parse_space(data, where="bench"))


def run_one(spec) -> dict:
    from hyco_ray.core.sweep_dir import load_sweep
    from hyco_ray.runner.sweep import run_sweep

    tic = time.perf_counter()
    outcome = run_sweep(spec)
    sweep = load_sweep(outcome.experiment_dir)
    complete = [t for t in sweep.by_outcome("complete") if math.isfinite(t.value(spec.metric))]
    best = min(complete, key=lambda t: t.value(spec.metric))
    return {
        "trial_epochs": sum(t.epochs for t in sweep.trials),
        "best": best.value(spec.metric),
        "best_params": best.params,
        "complete": len(complete),
        "wall_s": time.perf_counter() - tic,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--metric", default="val_loss")
    parser.add_argument("--schedulers", default=",".join(str(i) for i in range(len(SCHEDULERS))),
                        help="indices into SCHEDULERS (0 = FIFO, always run)")
    parser.add_argument("--recommend", default="asha g8 r2 (half of max_t: shipped)", help="the setting whose ratios are the headline")
    parser.add_argument("--out", default=str(RESULTS / "asha_vs_fifo.json"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = [SCHEDULERS[0]] + [SCHEDULERS[int(i)] for i in args.schedulers.split(",") if int(i) != 0]
    load_before, tic = load(), time.perf_counter()

    import ray

    from hyco_ray.runner.sweep import connect_ray

    results: dict[str, list[dict]] = {label: [] for label, _, _ in chosen}
    with tempfile.TemporaryDirectory(prefix="hyco-asha-") as tmp:
        connect_ray(None, args.concurrent)  # one Ray for every sweep
        try:
            for seed in seeds:
                for i, (label, grace, factor) in enumerate(chosen):
                    spec = make_spec(Path(tmp), f"s{seed}-{i}", seed, args, grace, factor)
                    results[label].append(run_one(spec))
        finally:
            ray.shutdown()

    fifo = results["fifo"]
    lines = [
        f"# {args.configs} configs x {args.epochs} epochs (max_t), tiny 1D Burgers, random sampler seeds {seeds}, "
        f"{args.concurrent} concurrent 1-CPU trials, metric {args.metric}",
        f"# load average before / after: {load_before} / {load()}; total {time.perf_counter() - tic:.0f} s",
        "| scheduler | rungs | trial-epochs (per seed) | trial-epochs / FIFO | best metric (per seed) "
        "| best / FIFO best (per seed) | mean trial-epochs ratio | mean best ratio | worst best ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    table = {}
    for label, grace, factor in chosen:
        rows = results[label]
        te = [r["trial_epochs"] / f["trial_epochs"] for r, f in zip(rows, fifo)]
        bm = [r["best"] / f["best"] for r, f in zip(rows, fifo)]
        table[label] = {"rungs": rungs(grace, factor, args.epochs) if grace else [],
                        "trial_epochs": [r["trial_epochs"] for r in rows], "best": [r["best"] for r in rows],
                        "best_params": [r["best_params"] for r in rows],
                        "trial_epochs_ratio": statistics.mean(te), "best_metric_ratio": statistics.mean(bm),
                        "worst_best_metric_ratio": max(bm), "wall_s": [r["wall_s"] for r in rows]}
        lines.append(
            f"| {label} | {', '.join(map(str, table[label]['rungs'])) or '-'} | {', '.join(str(r['trial_epochs']) for r in rows)} "
            f"| {', '.join(f'{x:.2f}' for x in te)} | {', '.join(f'{b:.4g}' for b in table[label]['best'])} "
            f"| {', '.join(f'{x:.3f}' for x in bm)} | {statistics.mean(te):.2f} | {statistics.mean(bm):.3f} | {max(bm):.3f} |")
    print("\n".join(lines), flush=True)
    head = table.get(args.recommend) or table[chosen[-1][0]]
    summary = {
        "trial_epochs_ratio": head["trial_epochs_ratio"],
        "best_metric_ratio": head["best_metric_ratio"],
        "recommended": args.recommend if args.recommend in table else chosen[-1][0],
        "schedulers": table,
        "configs": args.configs, "epochs": args.epochs, "seeds": seeds, "metric": args.metric,
        "load_before": load_before, "load_after": load(), "machine": _cpu_model(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    write_summary(args.out, summary)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
