"""Physics benchmark: batched vs one-at-a-time stepping, L-BFGS-B iteration time, conversion cost.

Run:  python bench/physics.py [--repeats 5]

For each problem at its test size (burgers 1D 128 from burgers_physical_quick_test, heat 32x32
from heat_hybrid_quick_test, smoke 32x32 from smoke_hybrid_quick_test) it prints

* ms per simulated step (one ``problem.step``, i.e. dt, not a stored frame) for B=8 states at
  once, and for the same 8 states stepped one at a time (8 separate calls per step), and the
  ratio separate / batched (how much batching saves);
* seconds per L-BFGS-B iteration of ``PhysicalTrainer.optimize`` (max_iterations=5, theta
  starting at the configured guess) on the training observations as the trainers use them
  (one rollout per sim from frame 0 over the whole observed horizon, initial states fitted
  with theta), plus seconds per loss+gradient evaluation;
* field <-> tensor conversion (``to_state`` + ``to_array`` of the B=8 batch) as a fraction of
  one batched step.

Timings: ``time.perf_counter``, one warm-up, medians over repeats (batched and separate take
turns, so they see the same machine load), torch on 1 thread, seed 0, float32, no gradient for
stepping and conversion. Data are simulated into a temporary cache. The load average is
printed: on a shared machine the absolute numbers move, the ratios much less.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import replace

import torch

from hyco.config import load_config
from hyco.data import build_dataset
from hyco.physics import make_problem
from hyco.runtime import configure
from hyco.training.physical import PhysicalTrainer

#: (label, shipped config, steps per timed stepping chain): smoke steps are ~100x dearer
PROBLEMS = [
    ("burgers", "burgers_physical_quick_test", 20),
    ("heat", "heat_hybrid_quick_test", 20),
    ("smoke", "smoke_hybrid_quick_test", 3),
]
BATCH = 8
LBFGS_ITERATIONS = 5


def median_times(fns: list, repeats: int, warmup: int = 1) -> list[float]:
    """Median seconds of each function; the functions take turns, so they see the same load."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench_problem(label: str, config: str, cache: str, repeats: int, steps: int) -> dict:
    cfg = load_config(config, [f"data.cache_dir={cache}"])
    configure(cfg.run_params)
    torch.set_num_threads(1)
    problem = make_problem(cfg.model.physical)
    dt = problem.cfg.dt
    theta = problem.truth.to(torch.float32)
    x = problem.sample_initial(BATCH, torch.Generator().manual_seed(0))
    singles = [x[i : i + 1] for i in range(BATCH)]

    with torch.no_grad():
        state8 = problem.to_state(x)  # PhiFlow states are immutable: every repeat starts here
        states1 = [problem.to_state(s) for s in singles]

        def batched():
            state = state8
            for _ in range(steps):
                state = problem.step(state, theta, dt)

        def separate():
            states = states1
            for _ in range(steps):
                states = [problem.step(s, theta, dt) for s in states]

        def convert():
            problem.to_array(problem.to_state(x))

        def one_step():
            problem.step(state8, theta, dt)

        t_batched, t_separate = (t / steps for t in median_times([batched, separate], repeats))
        # conversion is fast: time 10 conversions per sample, next to one batched step each time
        t_convert, t_step = median_times([lambda: [convert() for _ in range(10)], one_step], repeats)
        t_convert /= 10

    data = build_dataset(cfg, problem)
    obs = data.observations
    params = replace(cfg.trainer_params.physical, max_iterations=LBFGS_ITERATIONS, suppress_convergence_errors=True)
    iteration_times, evaluation_times, iterations = [], [], []
    for _ in range(max(1, repeats // 2)):
        trainer = PhysicalTrainer(problem, params)
        step = trainer.optimize(trainer.data_loss(obs.initial, obs.frames, obs.mask, obs.stride), initial=obs.initial)
        iterations.append(step.iterations)
        iteration_times.append(step.seconds / max(step.iterations, 1))
        evaluation_times.append(step.seconds / max(step.evaluations, 1))
    return {
        "problem": label,
        "size": "x".join(str(n) for n in problem.resolution),
        "batched_ms": 1e3 * t_batched,
        "separate_ms": 1e3 * t_separate,
        "ratio": t_separate / t_batched,
        "windows": f"{obs.initial.shape[0]}x{obs.num_frames}x{problem.cfg.substeps}",
        "iterations": statistics.median(iterations),
        "lbfgs_s_per_iter": statistics.median(iteration_times),
        "lbfgs_s_per_eval": statistics.median(evaluation_times),
        "convert_ms": 1e3 * t_convert,
        "convert_fraction": t_convert / t_step,
    }


def table(rows: list[dict]) -> str:
    head = (
        "| problem | size | step ms, B=8 batched | step ms, 8 separate | separate/batched "
        "| L-BFGS-B rollouts (sims x frames x substeps) | iters | s/iter | s/eval "
        "| convert ms (B=8) | convert / batched step |"
    )
    lines = [head, "|" + "|".join(["---"] * 11) + "|"]
    for r in rows:
        lines.append(
            f"| {r['problem']} | {r['size']} | {r['batched_ms']:.2f} | {r['separate_ms']:.2f} | {r['ratio']:.1f}x "
            f"| {r['windows']} | {r['iterations']:g} | {r['lbfgs_s_per_iter']:.3f} | {r['lbfgs_s_per_eval']:.3f} "
            f"| {r['convert_ms']:.3f} | {r['convert_fraction']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hyco-bench-") as cache:
        for label, config, steps in PROBLEMS:
            rows.append(bench_problem(label, config, cache, args.repeats, steps))
            print(f"# {label} done at {time.perf_counter() - start:.0f} s", flush=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, python {platform.python_version()}, "
          f"load average before/after: {load_before} / {load}")
    print(table(rows))
    print(f"# total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
