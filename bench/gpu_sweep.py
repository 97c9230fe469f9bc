"""Sweep throughput on one GPU: the same trials at a fraction of a GPU each (several at once)
against a whole GPU each (one at a time). Part of ``bench/gpu_check.sh`` (issue 13).

    python bench/gpu_sweep.py [--space search_spaces/burgers_full.yaml] [--samples 4] [--epochs 2]
                              [--fraction 0.25] [--device cuda]

Both runs use the same seeded random sampler (so the same configs), the same CPUs per trial
(the machine's CPUs shared among the concurrent trials), FIFO, no early stopping,
``warmup_epochs=0`` and ``interleave_frequency=1`` (every epoch has both steps). Prints the walls
and the throughput ratio wall(whole)/wall(fraction) (target >= 2.5x at 0.25), asserts that every
trial ran on ``--device``, and writes ``bench/results/gpu_sweep.json``. ``--device cpu --fraction 0``
runs the same code path on a machine without a GPU (a smoke test of this script).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXED = ("trainer_params.epochs", "trainer_params.warmup_epochs", "trainer_params.interleave_frequency")


def sweep_data(space: dict, name: str, args, gpu: float, concurrent: int, cpus: int, storage: Path) -> dict:
    return {
        **space,
        "name": name,
        "num_samples": args.samples,
        "max_concurrent": concurrent,
        "storage_path": str(storage),
        "scheduler": {"type": "fifo"},
        "searcher": {"type": "optuna", "sampler": "random", "seed": 0, "storage": None},
        "resources": {"cpu": cpus, "gpu": gpu},
        "max_failures": 0,
        "noise_seeds": 0,  # the search's throughput only
        "space": {k: v for k, v in space["space"].items() if k not in FIXED},
        "overrides": [o for o in space.get("overrides", []) if not o.startswith(FIXED)]
        + [
            f"trainer_params.epochs={args.epochs}",
            "trainer_params.warmup_epochs=0",
            "trainer_params.interleave_frequency=1",
            f"data.cache_dir={storage / 'cache'}",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "burgers_full.yaml"))
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.25, help="GPU per trial in the shared run")
    parser.add_argument("--device", default="cuda", help="where every trial must have run")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_sweep.json"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)

    import ray

    from hyco_ray.core.space import parse_space, validate_space
    from hyco_ray.core.sweep_dir import load_sweep
    from hyco_ray.runner.sweep import connect_ray, run_sweep

    space = yaml.safe_load(Path(args.space).read_text())
    storage = Path(tempfile.mkdtemp(prefix="hyco-gpu-"))
    shared = max(1, round(1 / args.fraction)) if args.fraction else 2
    runs = (("shared", args.fraction, shared), ("whole", 1 if args.fraction else 0, 1))
    cpus = max(1, (os.cpu_count() or 2) // shared - 1) if args.fraction else 1  # the same in both runs
    walls, epochs = {}, {}
    connect_ray(None, os.cpu_count())
    try:
        for name, gpu, concurrent in runs:
            spec = validate_space(
                parse_space(sweep_data(space, name, args, gpu, concurrent, cpus, storage), where=name)
            )
            tic = time.perf_counter()
            outcome = run_sweep(spec)
            walls[name] = time.perf_counter() - tic
            trials = load_sweep(outcome.experiment_dir).trials
            devices = {row.get("device") for t in trials for row in t.history}
            assert devices == {args.device}, f"{name}: trials ran on {devices}, not {args.device}"
            epochs[name] = sum(t.epochs for t in trials)
            assert epochs[name] == args.samples * args.epochs, f"{name}: {epochs[name]} trial-epochs ran"
    finally:
        ray.shutdown()
    ratio = walls["whole"] / walls["shared"]
    print(
        f"{args.samples} trials x {args.epochs} epochs of {Path(args.space).stem}: {args.fraction:g} GPU each "
        f"({shared} at once) {walls['shared']:.1f} s, 1 GPU each (one at a time) {walls['whole']:.1f} s; "
        f"throughput ratio {ratio:.2f}x (target >= 2.5x at 0.25)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "throughput_ratio": ratio,
                "wall_s": walls,
                "fraction": args.fraction,
                "concurrent": shared,
                "samples": args.samples,
                "epochs": args.epochs,
                "space": Path(args.space).name,
                "device": args.device,
                "date": time.strftime("%Y-%m-%d %H:%M"),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
