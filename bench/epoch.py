"""One HYCO epoch of each problem, broken down, with the top costs of a profile.

    python bench/epoch.py [--problems burgers,heat,smoke] [--epochs 2] [--device cpu] [--profile]
                          [--compare smoke:model.physical.jit=true]

A problem is a shipped config (``burgers``, ``heat``, ``smoke``: the quick tests, CPU-sized) or a
shipped search space's base and fixed overrides (``burgers_full``, ``heat_full``, ``smoke_full``:
GPU-sized). Every problem runs with ``warmup_epochs=0``, ``interleave_frequency=1``, ``alpha=0.5``
and ``physical.max_iterations=5``, so each epoch has both steps. The first epoch (PhiFlow traces,
caches warm up) is run untimed, then ``--epochs`` epochs are timed through the public
``trainer.fit()``; the parts come from timers around the trainer's methods:

* ``S step``: ``train_synthetic`` (Adam over the observed sims);
* ``P targets``: P's no-grad rollouts from the interaction states, the targets of S's step (rolled
  out just before it);
* ``P step``: ``train_physical`` (L-BFGS-B on theta and the initial states);
* ``validation``: ``evaluate`` on the val sims (full-length rollouts of S and P);
* ``P rollouts``: every ``problem.rollout`` of the epoch (inside the parts above);
* ``conversion``: field <-> tensor conversion (the trainer's own ``time_conversion``).

``--compare problem:key=value[,key=value]`` times that problem a second time with the overrides,
alternating epochs with the plain run, and prints the ratio per part (the before/after of a
change, measured side by side). ``--profile`` prints the top functions of one epoch by cumulative
time (cProfile). Peak memory: torch's peak on a GPU, the process's peak RSS on a CPU. Seconds per
part and problem go to ``bench/results/epoch.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import resource
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from sweep_overhead import _cpu_model, load, write_summary  # noqa: E402

EVERY_EPOCH = ["trainer_params.warmup_epochs=0", "trainer_params.interleave_frequency=1", "trainer_params.alpha=0.5",
               "trainer_params.physical.max_iterations=5"]
CONFIGS = {"burgers": "burgers_hybrid_quick_test", "heat": "heat_hybrid_quick_test", "smoke": "smoke_hybrid_quick_test"}
SPACES = {"burgers_full": "burgers_full.yaml", "heat_full": "heat.yaml", "smoke_full": "smoke.yaml"}
PARTS = ["S step", "P targets", "P step", "validation", "P rollouts", "conversion", "epoch"]


def problem_config(name: str, cache: str, device: str, extra: list[str] = ()):
    from hyco.config import load_config

    if name in CONFIGS:
        base, overrides = CONFIGS[name], []
    elif name in SPACES:
        space = yaml.safe_load((ROOT / "search_spaces" / SPACES[name]).read_text())
        base, overrides = space["base"], list(space.get("overrides", []))
    else:
        raise SystemExit(f"unknown problem {name!r}; known: {', '.join([*CONFIGS, *SPACES])}")
    return load_config(base, [*overrides, *EVERY_EPOCH, f"data.cache_dir={cache}", f"run_params.device={device}",
                              "run_params.num_threads=1", *extra])


class Timers:
    """Seconds spent in wrapped callables, by part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.sync = lambda: None

    def wrap_steps(self, obj, attr: str, part: str, flag: dict | None = None) -> None:
        """Time a generator method (``evaluate_steps``) from its start to its end, the answers to
        its requests included; ``flag["on"]`` is true meanwhile."""
        inner = getattr(obj, attr)

        def timed(*args, **kwargs):
            self.sync()
            tic = time.perf_counter()
            if flag is not None:
                flag["on"] = True
            try:
                return (yield from inner(*args, **kwargs))
            finally:
                if flag is not None:
                    flag["on"] = False
                self.sync()
                self.seconds[part] += time.perf_counter() - tic

        setattr(obj, attr, timed)

    def wrap(self, obj, attr: str, part: str, when=lambda *a, **k: True) -> None:
        inner = getattr(obj, attr)

        def timed(*args, **kwargs):
            if not when(*args, **kwargs):
                return inner(*args, **kwargs)
            self.sync()
            tic = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[part] += time.perf_counter() - tic

        setattr(obj, attr, timed)


def instrumented(cfg, device: str):
    import torch

    from hyco.training import create_trainer

    trainer = create_trainer(cfg, device=device)
    timers = Timers()
    if device == "cuda":
        timers.sync = torch.cuda.synchronize
    in_validation = {"on": False}
    # P's targets of S's step: its rollouts from the interaction states, asked for before the step
    timers.wrap(trainer, "solve", "P targets", when=lambda request: request[0] == "rollout" and not in_validation["on"])
    timers.wrap(trainer, "train_synthetic", "S step")
    timers.wrap(trainer, "train_physical", "P step")
    timers.wrap_steps(trainer, "evaluate_steps", "validation", in_validation)
    timers.wrap(trainer.problem, "rollout", "P rollouts")
    return trainer, timers


def check_device(trainer, device: str) -> None:
    """The network and PhiFlow's tensors live where the run says (a GPU run must not fall back)."""
    import torch
    from phi.torch import TORCH

    if device != "cuda":
        return
    x0 = trainer.initial[:1]
    with torch.no_grad():
        out = trainer.physical_rollout(x0, 1)
        state = trainer.problem.to_state(x0)
    fields = state if isinstance(state, (tuple, list)) else (state,)
    natives = [t for f in fields for t in f.values._natives()]  # phiml's backing tensors of each field
    assert next(trainer.model.parameters()).is_cuda, "the UNet's parameters are not on the GPU"
    assert out.is_cuda, "P's rollout came back on the CPU"
    assert natives and all(t.is_cuda for t in natives), f"PhiFlow tensors on {[t.device for t in natives]}, not the GPU"
    assert TORCH.get_default_device().device_type == "GPU", f"PhiFlow's default device is {TORCH.get_default_device()}"
    print(f"# device check: UNet, P's rollout and {len(natives)} PhiFlow field tensors on {out.device}")


def time_epochs(runs: dict, epochs: int) -> dict:
    """Time ``epochs`` epochs of every run, alternating runs epoch by epoch (same machine load)."""
    totals = {label: defaultdict(float) for label in runs}
    iters = {label: trainer.fit() for label, (trainer, _) in runs.items()}
    for label in runs:  # untimed first epoch: tracing, allocator, caches
        next(iters[label])
    for _ in range(epochs):
        for label, (_, timers) in runs.items():
            timers.seconds.clear()
            tic = time.perf_counter()
            metrics = next(iters[label])
            wall = time.perf_counter() - tic
            for part, sec in timers.seconds.items():
                totals[label][part] += sec / epochs
            totals[label]["conversion"] += metrics.get("time_conversion", 0.0) / epochs
            totals[label]["epoch"] += wall / epochs
    return {label: dict(parts) for label, parts in totals.items()}


def profile_epoch(trainer, top: int) -> str:
    prof = cProfile.Profile()
    it = trainer.fit()
    prof.enable()
    next(it)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    return "\n".join(lines[-top - 1:])


def peak_memory_gb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def row(label: str, parts: dict) -> str:
    epoch = parts["epoch"]
    cells = [f"{parts.get(p, 0.0):.3f} ({parts.get(p, 0.0) / epoch:.0%})" if p != "epoch" else f"{epoch:.3f}" for p in PARTS]
    return f"| {label} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="burgers,heat,smoke")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per problem (after one untimed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="cProfile one more epoch of each problem")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--compare", action="append", default=[],
                        help="problem:key=value[,key=value]: time it again with these overrides, side by side")
    parser.add_argument("--extra", nargs="*", default=[], help="config overrides of every problem")
    parser.add_argument("--out", default=str(RESULTS / "epoch.json"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no GPU (torch.cuda.is_available() is False)")
    compare: dict[str, list[str]] = {}
    for item in args.compare:
        name, _, overrides = item.partition(":")
        compare[name] = [o for o in overrides.split(",") if o]
    load_before, tic = load(), time.perf_counter()
    header = ["| problem | " + " | ".join(PARTS) + " |", "|---|" + "---|" * len(PARTS)]
    lines, results, profiles, ratio_lines = list(header), {}, {}, []
    with tempfile.TemporaryDirectory(prefix="hyco-epoch-") as cache:
        for name in [p for p in args.problems.split(",") if p]:
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            runs = {name: instrumented(problem_config(name, cache, args.device, args.extra), args.device)}
            check_device(runs[name][0], args.device)
            if name in compare:
                label = f"{name} + {' '.join(compare[name])}"
                runs[label] = instrumented(problem_config(name, cache, args.device, [*args.extra, *compare[name]]), args.device)
            timed = time_epochs(runs, args.epochs)
            for label, parts in timed.items():
                parts["peak_memory_gb"] = peak_memory_gb(args.device)
                results[label] = parts
                lines.append(row(label, parts))
            if name in compare:
                before, after = timed[name], timed[label]
                ratio_lines.append(f"| {label} | " + " | ".join(
                    f"{before.get(p, 0) / after[p]:.2f}x" if after.get(p) else "-" for p in PARTS) + " |")
            if args.profile:
                profiles[name] = profile_epoch(runs[name][0], args.top)
            print(lines[-1], flush=True)
            del runs
    out = [f"# device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else _cpu_model()}), "
           f"torch {torch.__version__}, 1 torch thread, {args.epochs} timed epochs after 1 untimed; seconds per epoch "
           "(share of the epoch)", f"# load average before / after: {load_before} / {load()}; "
           f"total {time.perf_counter() - tic:.0f} s", *lines]
    if ratio_lines:
        out += ["", "before / after, side by side (> 1: the override is faster):", *header[:1], header[1], *ratio_lines]
    peaks = ", ".join(f"{k} {v['peak_memory_gb']:.2f}" for k, v in results.items())
    out += [f"peak memory, GB (process-wide peak so far; on a GPU torch's peak per problem): {peaks}"]
    for name, text in profiles.items():
        out += ["", f"## {name}: one epoch under cProfile, top {args.top} by cumulative time", text]
    print("\n".join(out), flush=True)
    summary = {"device": args.device, "seconds_per_epoch": results, "load_before": load_before, "load_after": load(),
               "machine": torch.cuda.get_device_name() if args.device == "cuda" else _cpu_model(),
               "date": time.strftime("%Y-%m-%d %H:%M"), "epochs": args.epochs, "torch": torch.__version__}
    write_summary(args.out, summary)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
