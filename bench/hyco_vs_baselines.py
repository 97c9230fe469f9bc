"""HYCO against its baselines on burgers and heat, full and partial observations.

alpha = 1 trains P (physics-only) and S (synthetic-only) on data alone in one run; HYCO at
alpha = 0.5 and 0.8 couples them. Equal epochs, 3 seeds. Prints one table of mean +- std of
param_error of P and test rollout errors (relative L2, full fields) of S and P.

    python bench/hyco_vs_baselines.py [--seeds 3] [--epochs 12] [--out bench/hyco_vs_baselines.md]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

from hyco.config import load_config
from hyco.training import create_trainer

warnings.filterwarnings("ignore")

PROBLEMS = {
    "burgers": ("burgers_hybrid_quick_test", [[0.0, 0.25]]),
    "heat": ("heat_hybrid_quick_test", [[0.0, 0.5], [0.0, 0.5]]),
}
ALPHAS = (1.0, 0.5, 0.8)


def run(config: str, region: list | None, alpha: float, seed: int, epochs: int, cache: str) -> dict:
    overrides = [
        f"data.cache_dir={cache}",
        f"run_params.seed={seed}",
        f"data.seed={seed}",
        f"trainer_params.alpha={alpha}",
        f"trainer_params.epochs={epochs}",
        "trainer_params.warmup_epochs=2",
        "trainer_params.synthetic.learning_rate=3e-3",
    ]
    if region is not None:
        regions = "[" + ",".join(f"[{lo},{hi}]" for lo, hi in region) + "]"
        overrides += ["data.observation.mask=region", f"data.observation.region={regions}", "data.observation.noise=0.01"]
    trainer = create_trainer(load_config(config, overrides))
    trainer.train()
    test = trainer.evaluate(trainer.dataset.test)
    return {"param_error": trainer.physical.param_error(), "test_S": test["loss_synthetic"], "test_P": test["loss_physical"]}


def fmt(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {std:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = ["| problem | observations | setting | param_error P | test error S | test error P |",
            "|---|---|---|---|---|---|"]
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        for problem, (config, region) in PROBLEMS.items():
            for obs_name, obs_region in (("full", None), ("quarter region, 1% noise", region)):
                for alpha in ALPHAS:
                    results = [run(config, obs_region, alpha, seed, args.epochs, cache) for seed in range(args.seeds)]
                    setting = "alpha=1 (P alone, S alone)" if alpha == 1 else f"HYCO alpha={alpha}"
                    row = (f"| {problem} | {obs_name} | {setting} | {fmt([r['param_error'] for r in results])} | "
                           f"{fmt([r['test_S'] for r in results])} | {fmt([r['test_P'] for r in results])} |")
                    rows.append(row)
                    print(row, flush=True)
    table = "\n".join(rows)
    print(f"\n{table}\n\n{args.seeds} seeds, {args.epochs} epochs, {time.perf_counter() - tic:.0f} s")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
