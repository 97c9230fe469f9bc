"""The cost of ``repeats: r`` seeds in one trial: r = 1, 2, 4, 8 side by side, batched and not.

    python bench/repeats.py [--problem burgers] [--repeats 1,2,4,8] [--epochs 3] [--device cpu]
                            [--sequential 4] [--extra key=value ...]

Each r is a :class:`hyco.training.SeedGroup` of one problem (a config of ``bench/epoch.py``, with
its settings: both steps every epoch). The groups are built first, each trains one untimed epoch
(PhiFlow traces, caches), then the timed epochs run round-robin, one epoch of each group in turn, so
every r sees the same machine load; ``--sequential`` adds groups of those r trained one seed after
another (the fallback) for comparison. Per group and part (seconds per epoch, summed over its
seeds where the part is per seed): ``S step`` (the networks' Adam passes), ``P step`` (the
physical step: one batched solve, or r solves), ``P rollouts`` (P's rollouts without gradient: the
interaction targets of S and the validation rollouts; one batch, or r), ``other`` (the rest: S's
validation rollouts, metrics) and the epoch.
Headline: ``repeats_cost_ratio[r]``, the epoch of r seeds over the epoch of one, to
``bench/results/repeats.json`` (the issue's target: r = 4 at most 2 on a CPU).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from epoch import Timers, problem_config  # noqa: E402
from sweep_overhead import _cpu_model, load, write_summary  # noqa: E402

PARTS = ["S step", "P step", "P rollouts", "other", "epoch"]


def instrumented(cfg, repeats: int, device: str, batched: bool):
    """A seed group of ``repeats`` with timers around its members' parts and its batched P step."""
    from hyco.training import SeedGroup, build_trainer

    group = SeedGroup.create(cfg, repeats, lambda member: build_trainer(member, device=device),
                             batched=None if batched else False)
    timers = Timers()
    for member in group.members:
        timers.wrap(member, "train_synthetic", "S step")
        timers.wrap(member, "train_physical", "P step")
        timers.wrap(member, "physical_rollout", "P rollouts")  # sequential: P's targets and validation rollouts
    timers.wrap(group, "train_physical", "P step")
    timers.wrap(group, "rollout", "P rollouts")  # batched: the same, all seeds at once
    return group, timers


def label(repeats: int, batched: bool) -> str:
    return f"r={repeats}" + ("" if batched else " sequential")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="burgers")
    parser.add_argument("--repeats", default="1,2,4,8")
    parser.add_argument("--sequential", default="4", help="r also trained one seed after another ('' for none)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per group (after one untimed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--extra", nargs="*", default=[], help="config overrides")
    parser.add_argument("--out", default=str(RESULTS / "repeats.json"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    import torch

    repeats = [int(r) for r in args.repeats.split(",") if r]
    sequential = [int(r) for r in args.sequential.split(",") if r]
    load_before, tic = load(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hyco-repeats-") as cache:
        # enough epochs that the schedule never ends the groups early
        cfg = problem_config(args.problem, cache, args.device, [*args.extra, f"trainer_params.epochs={args.epochs + 2}"])
        groups = {label(r, True): (r, *instrumented(cfg, r, args.device, True)) for r in repeats}
        groups.update({label(r, False): (r, *instrumented(cfg, r, args.device, False)) for r in sequential})
        modes = {name: ("batched" if group.batched else f"sequential ({group.sequential_reason})")
                 for name, (_, group, _) in groups.items()}
        fits = {name: group.fit() for name, (_, group, _) in groups.items()}
        for name in groups:  # untimed first epoch
            next(fits[name])
        totals: dict[str, dict[str, float]] = {name: defaultdict(float) for name in groups}
        for _ in range(args.epochs):
            for name, (_, _, timers) in groups.items():
                timers.seconds.clear()
                start = time.perf_counter()
                next(fits[name])
                totals[name]["epoch"] += (time.perf_counter() - start) / args.epochs
                for part, sec in timers.seconds.items():
                    totals[name][part] += sec / args.epochs
        for parts in totals.values():
            parts["other"] = parts["epoch"] - parts["S step"] - parts["P step"] - parts["P rollouts"]
    base = totals[label(1, True)]["epoch"] if 1 in repeats else None
    ratios = {str(r): totals[label(r, True)]["epoch"] / base for r in repeats} if base else {}
    seq_ratios = {str(r): totals[label(r, False)]["epoch"] / base for r in sequential} if base else {}
    lines = ["| group | mode | " + " | ".join(PARTS) + " | epoch / r=1 |", "|---|---|" + "---|" * (len(PARTS) + 1)]
    for name in groups:
        parts = totals[name]
        ratio = f"{parts['epoch'] / base:.2f}" if base else "-"
        lines.append(f"| {name} | {modes[name]} | " + " | ".join(f"{parts.get(p, 0.0):.3f}" for p in PARTS) + f" | {ratio} |")
    machine = torch.cuda.get_device_name() if args.device == "cuda" else _cpu_model()
    print("\n".join([f"# {args.problem}, device {args.device} ({machine}), torch {torch.__version__}, 1 torch thread, "
                     f"{args.epochs} timed epochs after 1 untimed, round-robin; seconds per epoch of the group",
                     f"# load average before / after: {load_before} / {load()}; total {time.perf_counter() - tic:.0f} s",
                     *lines]), flush=True)
    summary = {"problem": args.problem, "device": args.device, "machine": machine, "repeats_cost_ratio": ratios,
               "sequential_cost_ratio": seq_ratios, "seconds_per_epoch": {k: dict(v) for k, v in totals.items()},
               "modes": modes, "load_before": load_before, "load_after": load(), "epochs": args.epochs,
               "date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__, "extra": args.extra}
    write_summary(args.out, summary)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
