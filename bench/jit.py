"""Eager vs traced (``math.jit_compile``) physical rollouts, forward + backward, side by side.

    python bench/jit.py [--batch 52] [--frames 10] [--repeats 5]

Prints seconds per rollout+gradient for each problem at its quick-test size and the ratio
eager / traced, alternating the two so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch

from hyco.config import load_config
from hyco.physics import make_problem

warnings.filterwarnings("ignore")
CONFIGS = ("burgers_hybrid_quick_test", "heat_hybrid_quick_test", "smoke_hybrid_quick_test")


def timed(problem, x0: torch.Tensor, frames: int) -> float:
    theta = problem.guess.float().clone().requires_grad_(True)
    tic = time.perf_counter()
    (problem.rollout(x0, theta, frames) ** 2).sum().backward()
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=52)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| problem | batch x frames | eager s | traced s | eager / traced |")
    print("|---|---|---|---|---|")
    for name in CONFIGS:
        cfg = load_config(name)
        problems = {}
        for jit in (False, True):
            physical = copy.deepcopy(cfg.model.physical)
            physical.jit = jit
            problems[jit] = make_problem(physical)
        batch = args.batch if cfg.model.physical.name != "smoke" else max(1, args.batch // 8)
        x0 = problems[False].sample_initial(batch, torch.Generator().manual_seed(0))
        times: dict[bool, list[float]] = {False: [], True: []}
        for jit in (False, True):
            timed(problems[jit], x0, 2)  # warm-up (and trace)
        for _ in range(args.repeats):
            for jit in (False, True):
                times[jit].append(timed(problems[jit], x0, args.frames))
        eager, traced = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {cfg.model.physical.name} | {batch} x {args.frames} | {eager:.4f} | {traced:.4f} | {eager / traced:.1f}x |")


if __name__ == "__main__":
    main()
