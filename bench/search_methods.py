"""Search methods on problems where the settings matter, on one budget of trial-epochs, scored by the
*confirmed* metric of their pick on fresh seeds.

    nice -n 10 python bench/search_methods.py [--problems heat_quarter,burgers_middle] [--budget 24]
        [--epochs 4] [--seeds 0,1,2,3,4] [--confirm-seeds 3] [--cpus 2] [--methods ...]

Problems: the variants of ``bench/search_value.py`` whose landscape has spread (its JSON's
``landscape``: heat_quarter max/min 2.9, burgers_middle 1.6; burgers_half and burgers_thin 1.15 and
1.10), with its space (alpha, alpha_physical, interaction_region: 3 x 2 x 2 = 12 settings) and its
cosine learning-rate schedule; each trial ``--epochs`` epochs at the config's own seed. Every method
runs as a real sweep (``hyco_ray.runner.sweep.run_sweep``, one local Ray for all), once per searcher seed;
the first trial of every sweep is the defaults (the space's ``defaults``, as in any shipped sweep):

* ``random``: budget/epochs trials of Optuna's random sampler, FIFO;
* ``tpe-mv``: multivariate TPE (``searcher.sampler: tpe-multivariate``), FIFO;
* ``gp``: Optuna's GP sampler (``gp``), FIFO;
* ``cmaes``: Optuna's CMA-ES (``cmaes``), FIFO; not in the default methods: on this all-``choice``
  space it draws every setting from its random fallback, i.e. it *is* random search;
* ``tpe-mv+asha``: multivariate TPE with ASHA, one rung at half a trial (``--grace``, reduction 2:
  the setting issue 12's asha_vs_fifo found to keep the best), 4/3 budget/epochs + 1 trials (what the
  budget pays if half stop at the rung), cut at the budget;
* ``pbt``: a population of budget/epochs trials (Tune's seeded random start), all at once, the worst
  quarter exploits the best quarter every ``--pbt-interval`` epochs (exactly the budget);
* ``mo-front``: multivariate TPE on (val_loss_synthetic, val_loss_physical), FIFO; its pick is the
  front member with the lowest val_loss (their geometric mean: always on the front).

PB2 is not run: it models continuous bounds only and this space is all ``choice`` (and hyco_ray has
no ``pb2`` scheduler).

Anytime score: every trained epoch carries its wall time (``done_at``), so "after b trial-epochs"
means the trials whose last epoch was done before the b-th epoch of the sweep was. The pick at b is
the complete trial with the lowest val_loss then (before any: the defaults); its *confirmed* value is
its settings retrained from scratch (``hyco_ray.runner.retrain``, ``hyco confirm``'s runs) on
``--confirm-seeds`` fresh seeds (``run_params.seed = data.seed = 1000 + i``, never seen by a search),
the geometric mean of the objective (val_loss recomputed from S's and P's val errors) over them, as a
ratio to the defaults' on the same seeds. Settings are retrained once per problem, the first time
some sweep picks them (a pick is one of the 12 settings; PBT's is its final settings, retrained
without its schedule). Per method and problem: ``final_confirmed_ratio`` (at the budget) and
``compute_to_random_final`` (the first b at which the pick's confirmed value is within
``--tolerance`` (2 %) of random search's final one (median over its seeds) or below, as a fraction
of the budget; null: not within the budget)
with their spread over searcher seeds, and the paired difference to random (same searcher seed).

Writes ``bench/results/search_methods.json`` (after every sweep, so a stopped run keeps what it
has) and ``bench/results/search_methods.png`` (the anytime curves: median and range over seeds).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

import search_value  # noqa: E402
from sweep_overhead import _cpu_model, load, write_summary  # noqa: E402

METHODS = ("random", "tpe-mv", "gp", "tpe-mv+asha", "pbt", "mo-front")
ALL_METHODS = (*METHODS, "cmaes")
SAMPLER = {"random": "random", "tpe-mv": "tpe-multivariate", "gp": "gp", "cmaes": "cmaes",
           "tpe-mv+asha": "tpe-multivariate", "mo-front": "tpe-multivariate"}
PROBLEMS = ("heat_quarter", "burgers_middle")
METRIC = "val_loss"
MO = {"val_loss_synthetic": "min", "val_loss_physical": "min"}
SEED_OFFSET = 1000  # hyco_ray.runner.confirm's fresh seeds


def make_spec(tmp: Path, problem: str, method: str, seed: int, args):
    from hyco_ray.core.space import parse_space, validate_space

    base, overrides, _ = search_value.VARIANTS[problem]
    population = args.budget // args.epochs
    data = {"name": f"{problem}-{method.replace('+', '-')}-s{seed}", "base": base, "space": search_value.SPACE,
            "storage_path": str(tmp / "sweeps"), "metric": METRIC, "mode": "min", "max_concurrent": args.cpus,
            "max_failures": 0, "noise_seeds": 0, "resources": {"cpu": 1, "gpu": 0}, "num_samples": population,
            "scheduler": {"type": "fifo"},
            "overrides": [*overrides, *search_value.COMMON, f"trainer_params.epochs={args.epochs}",
                          f"data.cache_dir={tmp / 'cache'}", *args.extra],
            "searcher": {"type": "optuna", "seed": seed, "storage": None, "n_startup_trials": args.startup,
                         "sampler": SAMPLER.get(method, "random")}}
    if method == "tpe-mv+asha":
        data.update(num_samples=math.ceil(4 * population / 3) + 1,  # enough if half stop at the rung
                    scheduler={"type": "asha", "grace_period": args.grace, "reduction_factor": 2})
    elif method == "mo-front":
        data.update(objectives=MO)
    elif method == "pbt":
        data.update(max_concurrent=population, resources={"cpu": args.cpus / population, "gpu": 0},
                    scheduler={"type": "pbt", "perturbation_interval": args.pbt_interval})
    elif method not in SAMPLER:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(ALL_METHODS)}")
    return validate_space(parse_space(data, where=f"bench {method}"))


def key_of(params: dict) -> str:
    """A setting of the space as a short name (the confirmation runs' directory)."""
    return "_".join(str(params[k]) for k in search_value.SPACE)


def picks(sweep, max_t: int, budget: int, defaults: dict) -> list[dict]:
    """The pick after each b = 1..budget trial-epochs: the complete trial with the lowest val_loss
    among those done when the sweep had trained b epochs (before any: the defaults)."""
    times = sorted(r["done_at"] for t in sweep.trials for r in t.trained_rows())
    out = []
    for b in range(1, budget + 1):
        cutoff = times[min(b, len(times)) - 1] if times else -math.inf
        done = [t for t in sweep.trials if t.epochs >= max_t and "training_error" not in t.final
                and t.final.get("done_at", math.inf) <= cutoff and math.isfinite(t.value(METRIC))]
        best = min(done, key=lambda t: t.value(METRIC)) if done else None
        params = {k: best.params[k] for k in search_value.SPACE} if best else defaults
        out.append({"params": params, "search_value": best.value(METRIC) if best else None})
    return out


def confirm(tmp: Path, spec, table: dict, settings: list[dict], seeds: list[int]) -> float:
    """Retrain the settings not yet in ``table`` on the fresh seeds (Ray tasks, one CPU each); returns
    the seconds it took."""
    from hyco_ray.runner.retrain import TEST_METRICS, result_path, run_tasks

    todo = {key_of(p): p for p in settings if key_of(p) not in table}
    if not todo:
        return 0.0
    tic, root = time.perf_counter(), tmp / "confirm" / spec.name.split("-")[0]
    runs = [(SimpleNamespace(name=k, overrides=spec.trial_overrides(p, threads=1)), s) for k, p in todo.items() for s in seeds]
    with contextlib.redirect_stdout(io.StringIO()):
        run_tasks(root, spec.base, METRIC, runs, 0, len(runs), "runs")
    import json

    for k, p in todo.items():
        results = [json.loads(result_path(root, "runs", k, s).read_text()) for s in seeds]
        table[k] = {"params": p, **{m: [r.get(m, math.nan) for r in results] for m in ("objective", *TEST_METRICS)}}
    return time.perf_counter() - tic


def geomean(values: list[float]) -> float:
    return math.exp(statistics.mean(math.log(v) for v in values)) if values and all(v > 0 for v in values) else math.nan


def ratio(table: dict, params: dict, defaults: dict, metric: str = "objective") -> float:
    """The setting's confirmed value / the defaults', geometric mean over the fresh seeds (paired)."""
    a, b = table[key_of(params)][metric], table[key_of(defaults)][metric]
    return geomean([x / y for x, y in zip(a, b)])


T975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def spread(values: list) -> dict:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return {"median": statistics.median(finite) if finite else None, "min": min(finite) if finite else None,
            "max": max(finite) if finite else None, "per_seed": values}


def summarise(records: list[dict], table: dict, args, seeds, started, load_before, tic, refs) -> dict:
    out = {"bench": "search_methods", "command": "nice -n 10 python bench/search_methods.py " + " ".join(sys.argv[1:]),
           "started_utc": f"{started:%Y-%m-%d %H:%M}", "cpu": _cpu_model(), "load_before": load_before,
           "load_after": load(), "wall_s": round(time.perf_counter() - tic), "budget": args.budget,
           "epochs": args.epochs, "tolerance": args.tolerance, "searcher_seeds": seeds, "confirm_seeds": [SEED_OFFSET + i for i in range(args.confirm_seeds)],
           "metric": "objective (val_loss of the pick retrained on the fresh seeds) / the defaults', geometric mean",
           "space": search_value.SPACE, "problems": {}, "records": records,
           "confirmed_table": {p: t for p, t in table.items()}}
    for problem in dict.fromkeys(r["problem"] for r in records):
        recs = [r for r in records if r["problem"] == problem]
        rand = {r["seed"]: r["curve"][-1] for r in recs if r["method"] == "random"}
        target = statistics.median(rand.values()) if rand else None
        methods = {}
        for method in dict.fromkeys(r["method"] for r in recs):
            mine = [r for r in recs if r["method"] == method]
            to_target = []
            for r in mine:
                hit = next((b for b, v in enumerate(r["curve"], 1)
                            if target is not None and v <= target * (1 + args.tolerance)), None)
                to_target.append(hit / args.budget if hit else None)
            reached = sorted(v if v is not None else math.inf for v in to_target)
            med = statistics.median(reached) if reached else math.inf
            paired = [math.log(r["curve"][-1] / rand[r["seed"]]) for r in mine if r["seed"] in rand]
            diff = None
            if len(paired) > 1 and method != "random":
                m, s = statistics.mean(paired), statistics.stdev(paired)
                half = T975.get(len(paired) - 1, 2.0) * s / math.sqrt(len(paired))
                diff = {"geomean_ratio_to_random": math.exp(m), "interval95": [math.exp(m - half), math.exp(m + half)],
                        "seeds_better": sum(p < 0 for p in paired), "seeds_worse": sum(p > 0 for p in paired)}
            methods[method] = {
                "compute_to_random_final": {**spread(to_target), "median": med if math.isfinite(med) else None,
                                            "not_reached": sum(v is None for v in to_target)},
                "final_confirmed_ratio": spread([r["curve"][-1] for r in mine]),
                "final_confirmed_param_error_ratio": spread([r["param_error_ratio"] for r in mine]),
                "trained_epochs": [r["trained_epochs"] for r in mine], "wall_s": [round(r["wall_s"]) for r in mine],
                "vs_random_paired": diff}
        defaults = refs[problem]["defaults_params"]
        conf = table[problem]
        methods["reference: defaults"] = {"final_confirmed_ratio": spread([1.0]), "compute_to_random_final": None,
                                          "confirmed_objective": conf[key_of(defaults)]["objective"]}
        out["problems"][problem] = {
            "random_final_median": target, "methods": methods, **refs[problem],
            "best_setting_ratio": min(ratio(conf, t["params"], defaults) for t in conf.values()),
            "settings_confirmed": {k: ratio(conf, t["params"], defaults) for k, t in conf.items()}}
    return out


def figure(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(summary["problems"])
    fig, axes = plt.subplots(1, len(problems), figsize=(6 * len(problems), 4.5), squeeze=False)
    budget = summary["budget"]
    for ax, problem in zip(axes[0], problems):
        recs = [r for r in summary["records"] if r["problem"] == problem]
        for i, method in enumerate(dict.fromkeys(r["method"] for r in recs)):
            curves = [r["curve"] for r in recs if r["method"] == method]
            x = [b / budget for b in range(1, budget + 1)]
            med = [statistics.median(c[j] for c in curves) for j in range(budget)]
            lo = [min(c[j] for c in curves) for j in range(budget)]
            hi = [max(c[j] for c in curves) for j in range(budget)]
            colour = f"C{i}"
            ax.step(x, med, where="post", color=colour, label=f"{method} ({len(curves)} seeds)", lw=2 - 0.15 * i)
            ax.fill_between(x, lo, hi, step="post", color=colour, alpha=0.12)
        target = summary["problems"][problem]["random_final_median"]
        ax.axhline(1.0, color="k", lw=0.8, ls=":", label="defaults (no search)")
        if target:
            ax.axhline(target, color="C0", lw=0.8, ls="--", label="random's final (median)")
        ax.axhline(summary["problems"][problem]["best_setting_ratio"], color="grey", lw=0.8, ls="-.",
                   label="best of the 12 settings")
        ax.set(title=f"{problem}: budget {budget} trial-epochs ({summary['epochs']}-epoch trials)",
               xlabel="trial-epochs / budget", ylabel="pick's confirmed val_loss / defaults' (fresh seeds)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS), help=f"of {', '.join(search_value.VARIANTS)}")
    parser.add_argument("--budget", type=int, default=16, help="trial-epochs per method, problem and seed")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (max_t) and per confirmation run")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="searcher seeds")
    parser.add_argument("--confirm-seeds", type=int, default=3, help="fresh seeds each pick is retrained on")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (trials at once; PBT: all at once)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"of {', '.join(ALL_METHODS)}")
    parser.add_argument("--startup", type=int, default=2, help="random start-up trials of the model-based samplers")
    parser.add_argument("--grace", type=int, default=None, help="ASHA's rung (epochs; default: half a trial)")
    parser.add_argument("--pbt-interval", type=int, default=None, help="PBT's perturbation interval (default: half a trial)")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="'reached' random's final: within this fraction of it (below the confirmation's resolution)")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides of every problem (tests: a tinier one)")
    parser.add_argument("--out", default=str(RESULTS / "search_methods.json"))
    parser.add_argument("--figure", default=None, help="the png (default: --out with .png)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="train nothing: the records of these runs (e.g. searcher seeds run as separate "
                             "processes) summarised together into --out and its figure")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args)
    args.grace = args.grace or max(1, args.epochs // 2)
    args.pbt_interval = args.pbt_interval or max(1, args.epochs // 2)
    methods, problems = args.methods.split(","), args.problems.split(",")
    if args.budget < 2 * args.epochs or args.budget % args.epochs:
        parser.error(f"--budget {args.budget} must be a multiple of --epochs {args.epochs}, at least 2 trials' worth")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    fresh = [SEED_OFFSET + i for i in range(args.confirm_seeds)]
    load_before, tic, started = load(), time.perf_counter(), datetime.now(timezone.utc)
    figure_path = Path(args.figure or Path(args.out).with_suffix(".png"))

    import ray

    from hyco.config import load_config
    from hyco.training import create_trainer
    from hyco_ray.core.sweep_dir import load_sweep
    from hyco_ray.runner.sweep import connect_ray, run_sweep

    records, table, refs, summary = [], {p: {} for p in problems}, {}, {}
    with tempfile.TemporaryDirectory(prefix="hyco-search-") as tmp:
        tmp = Path(tmp)
        connect_ray(None, args.cpus)  # one Ray for every sweep and confirmation
        try:
            for problem in problems:
                spec = make_spec(tmp, problem, "random", 0, args)
                defaults = {k: spec.defaults[k] for k in search_value.SPACE}
                trainer = create_trainer(load_config(spec.base, spec.trial_overrides({}, threads=1)))
                refs[problem] = {"defaults_params": defaults,
                                 "guess_param_error": trainer.physical.param_error(trainer.problem.guess)}
                confirm(tmp, spec, table[problem], [defaults], fresh)
            for seed in seeds:
                for problem in problems:
                    for method in methods:
                        spec, start = make_spec(tmp, problem, method, seed, args), time.perf_counter()
                        with contextlib.redirect_stdout(io.StringIO()):
                            sweep = load_sweep(run_sweep(spec).experiment_dir)
                        searched = time.perf_counter() - start
                        chosen = picks(sweep, spec.max_t, args.budget, refs[problem]["defaults_params"])
                        confirmed = confirm(tmp, spec, table[problem], [c["params"] for c in chosen], fresh)
                        defaults = refs[problem]["defaults_params"]
                        records.append({
                            "problem": problem, "method": method, "seed": seed, "trials": len(sweep.trials),
                            "trained_epochs": sum(t.trial_epochs for t in sweep.trials), "wall_s": searched,
                            "confirm_s": confirmed, "pick": chosen[-1]["params"],
                            "search_value": chosen[-1]["search_value"],
                            "curve": [ratio(table[problem], c["params"], defaults) for c in chosen],
                            "param_error_ratio": ratio(table[problem], chosen[-1]["params"], defaults, "param_error")})
                        print(f"# {problem} {method} seed {seed}: {records[-1]['trained_epochs']} trial-epochs, "
                              f"pick {key_of(chosen[-1]['params'])}, confirmed ratio {records[-1]['curve'][-1]:.3f}; "
                              f"search {searched:.0f} s, confirmation {confirmed:.0f} s, total "
                              f"{time.perf_counter() - tic:.0f} s", flush=True)
                        summary = summarise(records, table, args, seeds, started, load_before, tic, refs)
                        write_summary(args.out, summary)
                        figure(summary, figure_path)
        finally:
            ray.shutdown()
    print_table(summary)
    return summary


def merge(args) -> dict:
    import json

    runs = [json.loads(Path(f).read_text()) for f in args.merge]
    first = runs[0]
    args.budget, args.epochs, args.confirm_seeds = first["budget"], first["epochs"], len(first["confirm_seeds"])
    assert all((r["budget"], r["epochs"], r["confirm_seeds"]) == (first["budget"], first["epochs"], first["confirm_seeds"])
               for r in runs), "runs of different budgets, lengths or fresh seeds"
    records = [rec for r in runs for rec in r["records"]]
    table: dict = {}
    for r in runs:  # a setting retrained by two runs: the same seeds, so the first run's values stand
        for problem, settings in r["confirmed_table"].items():
            table.setdefault(problem, {}).update({k: v for k, v in settings.items() if k not in table.get(problem, {})})
    refs = {p: {k: v[k] for k in ("defaults_params", "guess_param_error")} for p, v in first["problems"].items()}
    seeds = sorted({rec["seed"] for rec in records})
    summary = summarise(records, table, args, seeds, datetime.strptime(first["started_utc"], "%Y-%m-%d %H:%M"),
                        first["load_before"], time.perf_counter() - sum(r["wall_s"] for r in runs), refs)
    summary.update(wall_s=None, command=" ; ".join(r["command"] for r in runs) + " ; python bench/search_methods.py --merge "
                   + " ".join(args.merge), merged_runs=[{k: r[k] for k in ("command", "started_utc", "wall_s",
                                                        "load_before", "load_after", "searcher_seeds")} for r in runs])
    write_summary(args.out, summary)
    figure(summary, Path(args.figure or Path(args.out).with_suffix(".png")))
    print_table(summary)
    return summary


def fmt(cell: dict | None, digits: int = 3) -> str:
    if not cell or cell.get("median") is None:
        return "-" if not cell else f"> 1 ({cell.get('not_reached')} of {len(cell['per_seed'])} not)"
    return f"{cell['median']:.{digits}f} [{cell['min']:.{digits}f}, {cell['max']:.{digits}f}]"


def print_table(summary: dict) -> None:
    for problem, p in summary.get("problems", {}).items():
        print(f"\n{problem}: random's final {p['random_final_median']:.3f}, best of the settings {p['best_setting_ratio']:.3f}")
        print("| method | compute_to_random_final | final_confirmed_ratio | vs random (paired) |\n|---|---|---|---|")
        for m, v in p["methods"].items():
            d = v.get("vs_random_paired")
            paired = (f"{d['geomean_ratio_to_random']:.3f} [{d['interval95'][0]:.3f}, {d['interval95'][1]:.3f}]"
                      if d else "-")
            print(f"| {m} | {fmt(v['compute_to_random_final'], 2)} | {fmt(v['final_confirmed_ratio'])} | {paired} |")


if __name__ == "__main__":
    main()
