"""Search methods side by side on one budget of trial-epochs: random, TPE+ASHA, multi-objective, PBT.

    python bench/search_methods.py [--budget 64] [--epochs 8] [--seeds 0,1,2] [--concurrent 2]

The problem and space are burgers_quick's (``search_spaces/burgers_quick.yaml``: the quick 1D
Burgers test config, half the domain observed with 2 % noise, six HYCO settings searched), each
trial ``--epochs`` epochs. Every method runs as a real sweep (``hyco_ray.sweep.run_sweep``, one
local Ray for all), once per searcher seed:

* ``random``: budget/epochs configs of Optuna's random sampler, FIFO (exactly the budget);
* ``tpe+asha``: TPE (4 random start-up trials) with burgers_quick's ASHA rungs;
* ``mo-tpe+asha``: multi-objective TPE on (val_loss_synthetic, val_loss_physical), ASHA on the
  scalarisation val_loss with burgers_pareto's rungs;
* ``pbt``: a population of budget/epochs trials (seeded random start), the worst quarter
  exploits the best quarter every 2 epochs, mutating the schedulable settings (exactly the budget).

The ASHA methods get twice budget/epochs trials and are cut at the budget: every trained epoch
carries its wall time (``done_at``), so "reached within b trial-epochs" means among trials whose
last epoch was done before the b-th epoch of the sweep was. Printed at budget/4, budget/2 and
budget: the best combined metric (val_loss) among trials that ran all epochs, the lowest θ error
among them, and the θ error of the trial the metric picks. References beside them: θ at its
guess, and the base config's default settings trained as long as one trial (no search).

Headline figures go to ``bench/results/search_methods.json``: one record per (method, seed) with
``trial_epochs``, ``best_metric``, ``best_param_error`` (and the rest).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from sweep_overhead import _cpu_model, load, write_summary  # noqa: E402

METHODS = ("random", "tpe+asha", "mo-tpe+asha", "pbt")
METRIC = "val_loss"


def quick_space() -> dict:
    """burgers_quick.yaml as data (its problem, space and resources), without its epochs."""
    data = yaml.safe_load((ROOT / "search_spaces" / "burgers_quick.yaml").read_text())
    data["overrides"] = [o for o in data["overrides"] if not o.startswith("trainer_params.epochs=")]
    return data


def make_spec(tmp: Path, method: str, seed: int, args):
    from hyco_ray.space import parse_space, validate_space

    quick, pareto = quick_space(), yaml.safe_load((ROOT / "search_spaces" / "burgers_pareto.yaml").read_text())
    population = args.budget // args.epochs
    data = {**quick, "name": f"{method.replace('+', '-')}-s{seed}", "storage_path": str(tmp / "sweeps"),
            "max_concurrent": args.concurrent, "max_failures": 0, "metric": METRIC, "mode": "min", "noise_seeds": 0,
            "overrides": [*quick["overrides"], f"trainer_params.epochs={args.epochs}",
                          f"data.cache_dir={tmp / 'cache'}", *args.extra]}
    searcher = {"type": "optuna", "seed": seed, "storage": None, "n_startup_trials": 4}
    if method == "random":
        data.update(num_samples=population, scheduler={"type": "fifo"}, searcher={**searcher, "sampler": "random"})
    elif method == "tpe+asha":
        data.update(num_samples=2 * population, searcher={**searcher, "sampler": "tpe"})
    elif method == "mo-tpe+asha":
        data.update(num_samples=2 * population, searcher={**searcher, "sampler": "tpe"},
                    objectives=pareto["objectives"], scheduler=pareto["scheduler"])
    elif method == "pbt":
        data.update(num_samples=population, max_concurrent=population,
                    resources={"cpu": args.concurrent / population, "gpu": 0},
                    scheduler={"type": "pbt", "perturbation_interval": args.pbt_interval},
                    searcher={"type": "optuna", "sampler": "random", "seed": seed})
    else:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    if data["scheduler"]["type"] == "asha":  # rungs below max_t only (tiny runs in the tests)
        data["scheduler"]["grace_period"] = min(data["scheduler"]["grace_period"], max(1, args.epochs // 2))
    return validate_space(parse_space(data, where=f"bench {method}"))


def trained_rows(trial) -> list[dict]:
    """Every epoch this trial trained (:meth:`hyco_ray.sweep_dir.TrialRecord.trained_rows`)."""
    return trial.trained_rows()


def reached(sweep, max_t: int, budgets: list[int]) -> dict[int, dict]:
    """At each budget b: the best metric, the lowest θ error and the θ error of the best-metric trial
    among trials that had run all ``max_t`` epochs when the sweep had trained b epochs."""
    times = sorted(r["done_at"] for t in sweep.trials for r in trained_rows(t))
    out = {}
    for b in budgets:
        cutoff = times[min(b, len(times)) - 1]
        done = [t for t in sweep.trials if t.epochs >= max_t and "training_error" not in t.final
                and t.final["done_at"] <= cutoff and math.isfinite(t.value(METRIC))]
        best = min(done, key=lambda t: t.value(METRIC)) if done else None
        out[b] = {"trial_epochs": min(b, len(times)), "complete": len(done),
                  "best_metric": best.value(METRIC) if best else math.nan,
                  "best_param_error": min(t.value("param_error") for t in done) if done else math.nan,
                  "param_error_of_best": best.value("param_error") if best else math.nan,
                  "best_params": best.params if best else None}
    return out


def references(spec) -> dict:
    """θ at its guess, and the base config's defaults trained ``max_t`` epochs (what no search gives)."""
    from hyco.config import load_config
    from hyco.training import create_trainer

    trainer = create_trainer(load_config(spec.base, spec.trial_overrides({}, threads=1)))
    guess = trainer.physical.param_error(trainer.problem.guess)
    metrics = list(trainer.fit())[-1]
    return {"guess_param_error": guess, "defaults_metric": metrics[METRIC], "defaults_param_error": metrics["param_error"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=64, help="trial-epochs per method and seed")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per trial (max_t)")
    parser.add_argument("--seeds", default="0,1,2", help="searcher seeds")
    parser.add_argument("--concurrent", type=int, default=2, help="CPUs (and trials at once, PBT: all at once)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--pbt-interval", type=int, default=2, help="PBT's perturbation interval (epochs)")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides of the problem (tests: a tinier one)")
    parser.add_argument("--out", default=str(RESULTS / "search_methods.json"))
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    if args.budget < 2 * args.epochs or args.budget % args.epochs:
        parser.error(f"--budget {args.budget} must be a multiple of --epochs {args.epochs}, at least 2 trials' worth")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = sorted({max(args.epochs, args.budget // 4), args.budget // 2, args.budget})
    load_before, tic = load(), time.perf_counter()

    import ray

    from hyco_ray.sweep import connect_ray, run_sweep
    from hyco_ray.sweep_dir import load_sweep

    records = []
    with tempfile.TemporaryDirectory(prefix="hyco-search-") as tmp:
        refs = references(make_spec(Path(tmp), "random", 0, args))
        connect_ray(None, args.concurrent)  # one Ray for every sweep
        try:
            for seed in seeds:
                for method in methods:
                    spec, start = make_spec(Path(tmp), method, seed, args), time.perf_counter()
                    sweep = load_sweep(run_sweep(spec).experiment_dir)
                    spent = sum(t.trial_epochs for t in sweep.trials)  # lines of each trial's metrics.jsonl
                    at = reached(sweep, spec.max_t, budgets)
                    records.append({"method": method, "seed": seed, **at[args.budget], "trials": len(sweep.trials),
                                    "trained_epochs_total": spent, "wall_s": time.perf_counter() - start,
                                    "at_budget": {str(b): {k: v for k, v in r.items() if k != "best_params"}
                                                  for b, r in at.items()}})
                    print(f"# {method} seed {seed}: {spent} trial-epochs trained, best {METRIC} at {args.budget}: "
                          f"{records[-1]['best_metric']:.4g}, {records[-1]['wall_s']:.0f} s", flush=True)
        finally:
            ray.shutdown()

    print("\n".join(table(records, refs, budgets, methods, args, seeds, load_before, time.perf_counter() - tic)))
    means = {m: {k: statistics.mean(r[k] for r in records if r["method"] == m)
                 for k in ("best_metric", "best_param_error", "param_error_of_best")} for m in methods}
    summary = {"records": records, "mean": means, "references": refs, "budget": args.budget, "budgets": budgets,
               "epochs": args.epochs, "seeds": seeds, "metric": METRIC, "concurrent": args.concurrent,
               "load_before": load_before, "load_after": load(), "machine": _cpu_model(),
               "date": time.strftime("%Y-%m-%d %H:%M"), "wall_s": time.perf_counter() - tic}
    write_summary(args.out, summary)
    return summary


def table(records, refs, budgets, methods, args, seeds, load_before, wall) -> list[str]:
    def cell(values, fmt="{:.4g}"):
        finite = [v for v in values if math.isfinite(v)]
        spread = f" ± {statistics.stdev(finite):.2g}" if len(finite) > 1 else ""
        return (fmt.format(statistics.mean(finite)) + spread if finite else "-") + (
            f" ({len(values) - len(finite)} none)" if len(finite) < len(values) else "")

    head = " | ".join(f"best {METRIC} @{b}" for b in budgets)
    lines = [f"# budget {args.budget} trial-epochs, {args.epochs} epochs per trial, burgers_quick's problem and space, "
             f"searcher seeds {seeds}, {args.concurrent} CPUs",
             f"# load average before / after: {load_before} / {load()}; total {wall:.0f} s",
             f"| method | trial-epochs (trained / counted) | complete trials @{args.budget} | {head} "
             f"| lowest θ error @{args.budget} | θ error of best-{METRIC} trial |",
             "|---|---|---|" + "---|" * len(budgets) + "---|---|"]
    for m in methods:
        rows = [r for r in records if r["method"] == m]
        per_budget = " | ".join(cell([r["at_budget"][str(b)]["best_metric"] for r in rows]) for b in budgets)
        lines.append(f"| {m} | {'/'.join(str(r['trained_epochs_total']) for r in rows)} / {args.budget} "
                     f"| {', '.join(str(r['complete']) for r in rows)} | {per_budget} "
                     f"| {cell([r['best_param_error'] for r in rows])} | {cell([r['param_error_of_best'] for r in rows])} |")
    lines.append(f"| reference: defaults, no search ({args.epochs} epochs) | {args.epochs} | 1 | "
                 + " | ".join(f"{refs['defaults_metric']:.4g}" for _ in budgets)
                 + f" | {refs['defaults_param_error']:.4g} | {refs['defaults_param_error']:.4g} |")
    lines.append("| reference: θ at its guess | 0 | - | " + " | ".join("-" for _ in budgets)
                 + f" | {refs['guess_param_error']:.4g} | {refs['guess_param_error']:.4g} |")
    return lines


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
