"""Is a sweep's pick worth anything? Search, then confirm on fresh seeds, on several problem variants.

    nice -n 10 python bench/search_value.py [--trials 6] [--seeds 5] [--top 1] [--epochs 8] [--cpus 2] [--baselines]

Per variant: a real sweep (``hyco_ray.runner.sweep.run_sweep``: ``--trials`` trials of Optuna's random
sampler, FIFO, ``--epochs`` epochs each, seed 0 of the config) over a small space where the settings
are known to act (alpha_S, alpha_P, the interaction region), the defaults trained once at the search's
seed (the search's reference), then ``hyco confirm --top K --seeds N`` (``hyco_ray.runner.confirm``: the top K,
the defaults and, with ``--baselines``, both baselines on seeds 1000..1000+N-1). One local Ray for everything.

Variants (the shipped spaces' problem is burgers_quick's; the others are not in any shipped space):

* ``burgers_half``: burgers_quick's problem, x in [0, 0.5] observed, 2 % noise;
* ``burgers_middle``: x in [0.25, 0.6] observed, 3 % noise (issue 19's "variant nobody tuned to");
* ``burgers_thin``: viscosity truth 0.02 (guess 0.15), x in [0.5, 1.0] observed, 1 % noise;
* ``heat_corner``: heat, x, y in [0.5, 1] observed, 2 % noise, amplitudes truth (0.03, 0.01, 0.015);
* ``heat_strip``: heat, y in [0, 0.3] observed (all x), 1 % noise;
* ``heat_quarter``: heat, x, y in [0, 0.5] observed, 1 % noise (alpha_P 0.9 vs 0.99 doubles heat's
  theta error there: bench/RESULTS.md, hyco_vs_baselines).

Writes ``bench/results/search_value.json``: one record per (variant, metric in objective,
test_loss_synthetic, test_loss_physical, param_error) with ``noise_cv`` (the defaults' seed spread:
std / mean over the fresh seeds), ``search_margin`` (the search's best trial / the defaults at the
search seed), ``confirmed_ratio`` (the pick / the defaults, geometric mean over the fresh seeds, with
its interval), ``seeds_better``, ``n_seeds`` and ``verdict`` (hyco confirm's); per variant also the
landscape (the objective's spread over the trials).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from sweep_overhead import _cpu_model, load, write_summary  # noqa: E402

METRICS = ("objective", "test_loss_synthetic", "test_loss_physical", "param_error")
COMMON = ["trainer_params.synthetic.lr_schedule=cosine"]
VARIANTS = {  # name -> (base config, overrides, in a shipped space?)
    "burgers_half": ("burgers_hybrid_quick_test", ["data.observation.mask=region", "data.observation.region=[[0.0,0.5]]",
                                                    "data.observation.noise=0.02"], True),
    "burgers_middle": ("burgers_hybrid_quick_test", ["data.observation.mask=region", "data.observation.region=[[0.25,0.6]]",
                                                      "data.observation.noise=0.03"], False),
    "burgers_thin": ("burgers_hybrid_quick_test", ["model.physical.params.viscosity.truth=[0.02]", "data.observation.mask=region",
                                                    "data.observation.region=[[0.5,1.0]]", "data.observation.noise=0.01"], False),
    "heat_quarter": ("heat_hybrid_quick_test", ["data.observation.mask=region", "data.observation.region=[[0.0,0.5],[0.0,0.5]]",
                                                 "data.observation.noise=0.01"], False),
    # two more heat cases made for issue 19's "at least two variants": other regions, noise and truths
    "heat_corner": ("heat_hybrid_quick_test", ["data.observation.mask=region", "data.observation.region=[[0.5,1.0],[0.5,1.0]]",
                                                "data.observation.noise=0.02", "model.physical.params.amplitudes.truth=[0.03,0.01,0.015]"],
                    False),
    "heat_strip": ("heat_hybrid_quick_test", ["data.observation.mask=region", "data.observation.region=[[0.0,1.0],[0.0,0.3]]",
                                               "data.observation.noise=0.01"], False),
}
#: the settings searched: the ones the science benches found to act on partially observed problems
SPACE = {
    "trainer_params.alpha": {"type": "choice", "values": [0.2, 0.5, 0.8]},
    "trainer_params.alpha_physical": {"type": "choice", "values": [0.9, 0.99]},
    "trainer_params.interaction_region": {"type": "choice", "values": ["unobserved", "all"]},
}


def make_spec(tmp: Path, variant: str, args):
    from hyco_ray.core.space import parse_space, validate_space

    base, overrides, _ = VARIANTS[variant]
    data = {"name": variant, "base": base, "storage_path": str(tmp / "sweeps"), "space": SPACE,
            "overrides": [*overrides, *COMMON, f"trainer_params.epochs={args.epochs}", f"data.cache_dir={tmp / 'cache'}",
                          *args.extra],
            "metric": "val_loss", "mode": "min", "num_samples": args.trials, "max_concurrent": args.cpus,
            "scheduler": {"type": "fifo"}, "searcher": {"type": "optuna", "sampler": "random", "seed": 0, "storage": None},
            "resources": {"cpu": 1, "gpu": 0}, "max_failures": 0,
            "noise_seeds": 0}  # the defaults' seed noise is measured by confirm's runs here
    return validate_space(parse_space(data, where="bench"))


def trial_metrics(trial) -> dict:
    from hyco_ray.runner.confirm import objective_of

    return {"objective": objective_of(trial.final, "val_loss"), **{k: trial.value(k) for k in METRICS[1:]}}


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else math.nan


def run_variant(tmp: Path, variant: str, args) -> tuple[list[dict], dict]:
    from hyco_ray.core.sweep_dir import load_sweep
    from hyco_ray.runner.confirm import DEFAULTS, run_confirm, train_one
    from hyco_ray.runner.sweep import run_sweep

    spec = make_spec(tmp, variant, args)
    tic = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the live view: a line per epoch and trial
        outcome = run_sweep(spec)
    sweep = load_sweep(outcome.experiment_dir)
    trials = [t for t in sweep.by_outcome("complete")]
    values = [trial_metrics(t) for t in trials]
    best_i = min(range(len(trials)), key=lambda i: values[i]["objective"])
    default_search = train_one(spec.base, spec.trial_overrides({}, threads=1), str(tmp / f"{variant}-defaults-search"), "val_loss")
    print(f"  search: {len(trials)} trials in {time.perf_counter() - tic:.0f} s; best {trials[best_i].params} "
          f"objective {values[best_i]['objective']:.4g} vs defaults {default_search['objective']:.4g}", flush=True)
    doc = run_confirm(outcome.experiment_dir, top=args.top, seeds=args.seeds, baselines=args.baselines)
    pick = next(s["name"] for s in doc["settings"] if s["name"].startswith("trial_"))
    objectives = [v["objective"] for v in values]
    landscape = {"trials": len(trials), "min": min(objectives), "max": max(objectives),
                 "max_over_min": max(objectives) / min(objectives), "cv": cv(objectives),
                 "defaults_at_search_seed": default_search["objective"],
                 "trials_table": [{"params": t.params, **v} for t, v in zip(trials, values)]}
    records = []
    for metric in METRICS:
        defaults = [doc["runs"][DEFAULTS][str(s)][metric] for s in doc["seeds"]]
        paired = doc["paired"][pick][metric]
        winner_paired = doc["paired"][doc["winner"]][metric] if doc["winner"] else None
        records.append({
            "variant": variant, "shipped_problem": VARIANTS[variant][2], "metric": metric,
            "noise_cv": cv(defaults),
            "search_margin": values[best_i][metric] / default_search[metric],
            "pick": pick, "pick_params": trials[best_i].params,
            "confirmed_ratio": paired["geomean"] if isinstance(paired, dict) else None,
            "interval": [paired["low"], paired["high"]] if isinstance(paired, dict) else None,
            "ratio_range": [min(paired["ratios"]), max(paired["ratios"])] if isinstance(paired, dict) else None,
            "seeds_better": paired["better"] if isinstance(paired, dict) else None,
            "sign_p": paired["sign_p"] if isinstance(paired, dict) else None,
            "n_seeds": len(doc["seeds"]),
            "winner": doc["winner"],
            "winner_ratio": winner_paired["geomean"] if isinstance(winner_paired, dict) else 1.0,
            "baselines": {b: doc["paired"][b][metric]["geomean"] for b in ("physics-only", "synthetic-only")
                          if isinstance(doc["paired"].get(b, {}).get(metric), dict)},
            "verdict": doc["verdict"],
        })
    print(f"  {variant}: {time.perf_counter() - tic:.0f} s; {doc['verdict']}", flush=True)
    return records, landscape


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--trials", type=int, default=6, help="trials per search")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per trial and per confirmation run")
    parser.add_argument("--seeds", type=int, default=5, help="fresh seeds of the confirmation")
    parser.add_argument("--top", type=int, default=1, help="settings confirmed (the search's best K)")
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=False,
                        help="also confirm physics-only and synthetic-only (doubles the confirmation's cost)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (runs at once)")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides of every problem (tests: a tinier one)")
    parser.add_argument("--merge", action="store_true", help="keep the other variants' records already in --out")
    parser.add_argument("--out", default=str(RESULTS / "search_value.json"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    load_before, tic, started = load(), time.perf_counter(), datetime.now(timezone.utc)

    import ray

    from hyco_ray.runner.sweep import connect_ray

    records, landscapes = [], {}
    with tempfile.TemporaryDirectory(prefix="hyco-value-") as tmp:
        connect_ray(None, args.cpus)  # one Ray for every sweep and confirmation
        try:
            for variant in args.variants.split(","):
                print(f"{variant} ({time.perf_counter() - tic:.0f} s so far)", flush=True)
                recs, landscapes[variant] = run_variant(Path(tmp), variant, args)
                records += recs
                write_summary(args.out, summarise(records, landscapes, args, started, load_before, tic))
        finally:
            ray.shutdown()
    summary = summarise(records, landscapes, args, started, load_before, tic)
    write_summary(args.out, summary)
    print_table(records)
    return summary


def summarise(records, landscapes, args, started, load_before, tic) -> dict:
    if args.merge and Path(args.out).is_file():  # keep the other variants of an earlier (or parallel) run
        old = json.loads(Path(args.out).read_text())
        records = [r for r in old.get("records", []) if r["variant"] not in landscapes] + records
        landscapes = {**{k: v for k, v in old.get("landscape", {}).items() if k not in landscapes}, **landscapes}
    return {"bench": "search_value", "command": "nice -n 10 python bench/search_value.py " + " ".join(sys.argv[1:]),
            "started_utc": f"{started:%Y-%m-%d %H:%M}", "cpu": _cpu_model(), "load_before": load_before,
            "load_after": load(), "wall_s": round(time.perf_counter() - tic), "trials": args.trials, "epochs": args.epochs,
            "seeds": args.seeds, "top": args.top, "space": SPACE, "records": records, "landscape": landscapes}


def print_table(records: list[dict]) -> None:
    print(f"\n{'variant':15} {'metric':20} {'noise_cv':>8} {'search':>7} {'confirmed':>9} {'interval':>17} better  verdict")
    for r in records:
        iv = f"[{r['interval'][0]:.3f}, {r['interval'][1]:.3f}]" if r["interval"] else "-"
        print(f"{r['variant']:15} {r['metric']:20} {r['noise_cv']:8.3f} {r['search_margin']:7.3f} "
              f"{r['confirmed_ratio'] or math.nan:9.3f} {iv:>17} {r['seeds_better']}/{r['n_seeds']}  {r['verdict'][:40]}")


if __name__ == "__main__":
    main()
