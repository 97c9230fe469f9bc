"""HYCO against physics-only and synthetic-only, with trivial references beside every result.

Cases (observation settings of the training sims; val/test are always full and clean):
  full     burgers and heat, every point, no noise
  quarter  heat, region x, y in [0, 0.5], 1 % noise
  half     burgers, x in [0, 0.5], 2 % noise; heat, x in [0, 0.5], 1 % noise
  quarter_model_error, half_model_error   the same with data simulated finer than P
           (data.simulation.refine 2: 2x the grid, 1/4 the step, cell-averaged to P's grid)
  quarter_missing_term   heat quarter with data from a PDE with a loss term -0.5 u that P lacks
           (data.simulation.decay 0.5: 10 % lost over the 0.2 time units observed)
  authors_heat   the HYCO authors' heat case, config heat_authors (Dirichlet, kappa = 0.1 + two
           bumps with unknown amplitudes and centres, 60 moving sensors in one quadrant, data 4x
           finer, interaction in the hidden bump's quadrant); seed s is also the sensor draw
           (hyco.data.observe.spiral_sensor_paths(..., draw=s))
Methods: physics_only (P alone: whole-trajectory rollouts from frame 0, initial states fitted,
the best physics-only fit the library has), synthetic_only (S alone), hyco (settings below).
Every record also carries the trivial references of its case: theta at the guess; the components
that the data cannot see (heat bumps centred outside the observed region: amplitude, and centre
where learned) at the guess with the visible ones at the truth; and the hidden amplitudes at zero
(hidden centres at the guess), so that neither staying put nor a collapse can pass for recovery.

Paired by seed: seed s sets the data seed and the network seed of every method, so HYCO and
each baseline see the same data draw and initial network. The summary (printed, and written to
bench/results/hyco_vs_baselines_paired.json) gives per-seed ratios with
hyco.evaluation.paired.paired_ratio: HYCO's theta error and P's test error over physics-only's,
S's test error over synthetic-only's, and HYCO's theta error over each trivial reference.

    python bench/hyco_vs_baselines.py [--seeds 3] [--seed-start 0] [--epochs 40] [--cases full,quarter,half]
                                      [--methods physics_only:-,hyco:default] [--merge] [--summary-only]

--merge adds the new records to the existing JSON (replacing those with the same problem, case,
method, setting and seed); --summary-only recomputes the paired summary and the figures from the
JSON: *_paired.png (every seed's ratio per case) and *_components.png (every component of theta per
seed against the truth and the guess: the mechanism behind each ratio).

Training: 40 epochs (3 of warm-up), S's learning rate on a cosine schedule to 5 %, and S's test
error taken at its best val epoch (early stopping on the full, clean val sims, the same rule for
synthetic_only and hyco; the last epoch's is recorded too). Why: with partial data S-only overfits
the observed part (burgers half: its val error is lowest near epoch 16 and doubles by epoch 40),
while HYCO's S keeps improving to epoch 20-36 (heat quarter); 40 epochs with the cosine schedule
covers both minima. theta is the last epoch's.

Writes bench/results/hyco_vs_baselines.json: one record per (problem, case, method, setting,
seed) with param_error, test_synthetic, test_physical, theta, truth.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from hyco.config import load_config
from hyco.data.observe import spiral_sensor_paths
from hyco.evaluation.paired import paired_ratio
from hyco.training import create_trainer

warnings.filterwarnings("ignore")

CONFIGS = {"burgers": "burgers_hybrid_quick_test", "heat": "heat_hybrid_quick_test"}
#: cases with a config of their own (instead of the problem's quick test)
CASE_CONFIGS = {"authors_heat": "heat_authors"}
CASES = {  # case -> problem -> (region or None, noise)
    "full": {"burgers": (None, 0.0), "heat": (None, 0.0)},
    "quarter": {"heat": ([[0.0, 0.5], [0.0, 0.5]], 0.01)},
    "half": {"burgers": ([[0.0, 0.5]], 0.02), "heat": ([[0.0, 0.5], [0.0, 1.0]], 0.01)},
}
#: data with model error: the partial cases with train/val/test data simulated on a 2x finer grid
#: with a 4x smaller step (data.simulation.refine, cell-averaged onto P's grid); P fits on its own grid
REFINE = 2
CASES["quarter_model_error"] = CASES["quarter"]
CASES["half_model_error"] = CASES["half"]
CASE_OVERRIDES = {"quarter_model_error": [f"data.simulation.refine={REFINE}"],
                  "half_model_error": [f"data.simulation.refine={REFINE}"]}
#: data from a PDE with a term P lacks: heat quarter with a loss -r u in the data only (data.simulation.decay)
DECAY = 0.5
CASES["quarter_missing_term"] = CASES["quarter"]
CASE_OVERRIDES["quarter_missing_term"] = [f"data.simulation.decay={DECAY}"]
CASES["authors_heat"] = {"heat": (None, 0.0)}  # sensors, refine and interaction box from its config
ADAM = ["trainer_params.physical.method=adam", "trainer_params.physical.max_iterations=20"]
METHODS = {  # (method, setting) -> overrides
    ("physics_only", "-"): ["run_params.model_type=physical"],
    ("synthetic_only", "-"): ["run_params.model_type=synthetic"],
    ("hyco", "default"): [],  # the shipped defaults: alpha_S 0.5, alpha_P 0.99, region unobserved
    ("hyco", "alpha_p_0.9"): ["trainer_params.alpha_physical=0.9"],  # the default before the 40-epoch table
    ("hyco", "region_all_alpha_p_0.9"): ["trainer_params.interaction_region=all", "trainer_params.alpha_physical=0.9"],
    # theta by the HYCO authors' optimiser: 20 Adam steps per epoch (the registry's adam, lr 0.01 in the scaled variable)
    ("physics_only", "adam"): ["run_params.model_type=physical", *ADAM],
    ("hyco", "adam"): ADAM,
}
RESULTS = Path(__file__).resolve().parent / "results" / "hyco_vs_baselines.json"
KEY = ("problem", "case", "method", "setting", "seed")


def overrides_for(problem: str, case: str, seed: int, epochs: int, cache: str) -> list[str]:
    region, noise = CASES[case][problem]
    out = [f"data.cache_dir={cache}", f"run_params.seed={seed}", f"data.seed={seed}",
           f"trainer_params.epochs={epochs}", "trainer_params.warmup_epochs=3", f"data.observation.noise={noise}",
           "trainer_params.synthetic.lr_schedule=cosine"]
    if region is not None:
        regions = "[" + ",".join(f"[{lo},{hi}]" for lo, hi in region) + "]"
        out += ["data.observation.mask=region", f"data.observation.region={regions}"]
    if case == "authors_heat":  # seed s: sensor draw s
        out.append(f"data.observation.sensors={json.dumps(authors_sensors(seed)).replace(' ', '')}")
    return out + CASE_OVERRIDES.get(case, [])


def authors_sensors(draw: int) -> list:
    """The authors' case's sensor draw: 60 of a 10 x 10 lattice over x, y in [0.5, 1], spiralling."""
    return spiral_sensor_paths([[0.5, 1.0], [0.5, 1.0]], 10, 60, draw)


def hidden_components(trainer) -> list[int]:
    """theta entries of the heat bumps centred where no point is ever observed (the data cannot see
    them directly): each such bump's amplitude, and its centre's x, y where centres are learned."""
    problem = trainer.problem
    if problem.name != "heat" or bool(trainer.mask.all()):
        return []
    n = problem.num_bumps
    learned = problem.fixed_centres is None
    centres = problem.truth[n:].reshape(-1, 2) if learned else problem.fixed_centres
    length = getattr(problem, "length", 1.0)
    ny, nx = trainer.mask.shape
    bumps = [i for i, (x, y) in enumerate(centres.tolist()) if trainer.mask[int(y / length * ny), int(x / length * nx)] == 0]
    return sorted(bumps + ([n + 2 * i + k for i in bumps for k in (0, 1)] if learned else []))


def run(problem: str, case: str, method: tuple[str, str], seed: int, epochs: int, cache: str) -> dict:
    cfg = load_config(CASE_CONFIGS.get(case, CONFIGS[problem]), overrides_for(problem, case, seed, epochs, cache) + METHODS[method])
    trainer = create_trainer(cfg)
    history, best_s, best_epoch, best_val = [], None, 0, float("inf")
    for metrics in trainer.fit():  # S kept at its best val epoch (early stopping, the same for every method)
        history.append(metrics)
        if metrics["val_loss_synthetic"] < best_val:
            best_val, best_epoch = metrics["val_loss_synthetic"], metrics["epoch"]
            best_s = copy.deepcopy(trainer.model.state_dict())
    last_s = trainer.evaluate(trainer.dataset.test)["loss_synthetic"]
    trainer.model.load_state_dict(best_s)
    test = trainer.evaluate(trainer.dataset.test)
    truth, guess = trainer.problem.truth, trainer.problem.guess
    hidden = hidden_components(trainer)
    collapsed, stayed = truth.clone(), truth.clone()
    stayed[hidden] = guess[hidden].to(stayed)
    amplitudes = [i for i in hidden if i < getattr(trainer.problem, "num_bumps", len(truth))]
    collapsed[hidden] = guess[hidden].to(collapsed)  # hidden centres (if learned) at the guess
    collapsed[amplitudes] = 0.0
    s_curve = [m["val_loss_synthetic"] for m in history]
    return {
        "problem": problem, "case": case, "method": method[0], "setting": method[1], "seed": seed,
        "param_error": trainer.physical.param_error(),
        "test_synthetic": test["loss_synthetic"], "test_physical": test["loss_physical"],
        "test_synthetic_last_epoch": last_s, "s_best_val_epoch": best_epoch,
        "theta": trainer.physical.theta.tolist(), "truth": truth.tolist(), "guess": guess.tolist(),
        "reference_guess": trainer.physical.param_error(guess),
        "reference_hidden_guess": trainer.physical.param_error(stayed) if hidden else None,
        "reference_hidden_zero": trainer.physical.param_error(collapsed) if hidden else None,
        "hidden_components": hidden,
        # S converged? its val error over the last 3 epochs (relative change)
        "s_val_last3_change": (s_curve[-1] - s_curve[-4]) / s_curve[-4] if len(s_curve) >= 4 else None,
        "epochs": epochs,
    }


def mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {sd:.4f}"


def table(records: list[dict]) -> str:
    rows = ["| problem | case | method | setting | param_error | theta (mean) | test S | test P | ref: guess | ref: hidden=0 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["problem"], r["case"], r["method"], r["setting"]) for r in records},
                  key=lambda k: (k[0], list(CASES).index(k[1]), k[2], k[3]))
    for key in keys:
        group = [r for r in records if (r["problem"], r["case"], r["method"], r["setting"]) == key]
        theta = [statistics.fmean(t) for t in zip(*(r["theta"] for r in group))]
        rows.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {mean_sd([r['param_error'] for r in group])} | "
            f"{[round(t, 4) for t in theta]} (truth {group[0]['truth']}) | {mean_sd([r['test_synthetic'] for r in group])} | "
            f"{mean_sd([r['test_physical'] for r in group])} | {group[0]['reference_guess']:.3f} | "
            f"{mean_sd([r['reference_hidden_zero'] for r in group])} |"
        )
    return "\n".join(rows)


def backfill(records: list[dict]) -> None:
    """Records written before the references were widened: the guess is synthetic-only's theta
    (S alone never trains theta; its param_error equals reference_guess), the references follow."""
    guesses = {(r["problem"], r["case"], r["seed"]): r["theta"] for r in records if r["method"] == "synthetic_only"}
    for r in records:
        if "guess" not in r and (r["problem"], r["case"], r["seed"]) in guesses:
            r["guess"] = guesses[(r["problem"], r["case"], r["seed"])]
        if "reference_hidden_guess" not in r and "guess" in r:
            hidden = r["hidden_components"]
            stayed = [g if i in hidden else t for i, (t, g) in enumerate(zip(r["truth"], r["guess"]))]
            r["reference_hidden_guess"] = relative_error(stayed, r["truth"]) if hidden else None


def relative_error(theta: list[float], truth: list[float]) -> float:
    """The same |theta - theta*| / |theta*| as PhysicalTrainer.param_error, on stored lists."""
    return float((torch.tensor(theta, dtype=torch.float64) - torch.tensor(truth, dtype=torch.float64)).norm()
                 / torch.tensor(truth, dtype=torch.float64).norm())


def paired_summary(records: list[dict]) -> list[dict]:
    """Per (problem, case, HYCO setting): paired ratios over the seeds every method of the case ran.

    theta and P's test error against physics-only (with the same theta optimiser where that ran:
    hyco "adam" against physics_only "adam"), S's test error against synthetic-only, theta
    against the trivial references; and per hidden component, in how many seeds HYCO's value lies
    below physics-only's and physics-only's above the truth (the mechanism of a theta gain).
    """
    by = {tuple(r[k] for k in KEY): r for r in records}
    out = []
    for problem, case in sorted({(r["problem"], r["case"]) for r in records}, key=lambda k: (list(CASES).index(k[1]), k[0])):
        for setting in sorted({r["setting"] for r in records if (r["problem"], r["case"], r["method"]) == (problem, case, "hyco")}):
            # physics-only with the same theta optimiser where it ran (setting "adam"), else the default one
            base = setting if any(k[:4] == (problem, case, "physics_only", setting) for k in by) else "-"
            seeds = sorted(s for (p, c, m, st, s) in by if (p, c, m, st) == (problem, case, "hyco", setting)
                           and (p, c, "physics_only", base, s) in by and (p, c, "synthetic_only", "-", s) in by)
            if not seeds:
                continue
            hy = [by[(problem, case, "hyco", setting, s)] for s in seeds]
            po = [by[(problem, case, "physics_only", base, s)] for s in seeds]
            so = [by[(problem, case, "synthetic_only", "-", s)] for s in seeds]
            row = {"problem": problem, "case": case, "setting": setting, "seeds": seeds, "physics_only_setting": base,
                   "theta_vs_physics_only": paired_ratio([r["param_error"] for r in hy], [r["param_error"] for r in po]).to_dict(),
                   "test_physical_vs_physics_only": paired_ratio([r["test_physical"] for r in hy], [r["test_physical"] for r in po]).to_dict(),
                   "test_synthetic_vs_synthetic_only": paired_ratio([r["test_synthetic"] for r in hy], [r["test_synthetic"] for r in so]).to_dict(),
                   "theta_vs_guess": paired_ratio([r["param_error"] for r in hy], [r["reference_guess"] for r in hy]).to_dict()}
            hidden = hy[0]["hidden_components"]
            if hidden:
                for ref in ("hidden_guess", "hidden_zero"):
                    row[f"theta_vs_{ref}"] = paired_ratio([r["param_error"] for r in hy], [r[f"reference_{ref}"] for r in hy]).to_dict()
                    row[f"physics_only_theta_vs_{ref}"] = paired_ratio([r["param_error"] for r in po],
                                                                       [r[f"reference_{ref}"] for r in po]).to_dict()
            row["components"] = [
                {"index": i, "hidden": i in hidden, "truth": hy[0]["truth"][i], "guess": hy[0]["guess"][i] if "guess" in hy[0] else None,
                 "hyco": [r["theta"][i] for r in hy], "physics_only": [r["theta"][i] for r in po],
                 "hyco_below_physics_only": sum(h["theta"][i] < p["theta"][i] for h, p in zip(hy, po)),
                 "physics_only_above_truth": sum(p["theta"][i] > p["truth"][i] for p in po),
                 "hyco_closer": sum(abs(h["theta"][i] - h["truth"][i]) < abs(p["theta"][i] - p["truth"][i]) for h, p in zip(hy, po))}
                for i in range(len(hy[0]["truth"]))]
            out.append(row)
    return out


def summary_text(summary: list[dict]) -> str:
    """The paired table: geometric mean [95 % CI], seeds better / n, sign p."""
    def cell(d: dict | None) -> str:
        if d is None:
            return "-"
        return f"{d['geomean']:.3g} [{d['low']:.3g}, {d['high']:.3g}], {d['better']}/{d['n']}, p={d['sign_p']:.2g}"
    rows = ["| problem | case | HYCO setting | n | θ err / physics-only | P test / physics-only | S test / S-only | "
            "θ err / θ at guess | θ err / hidden at guess | θ err / hidden at 0 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary:
        rows.append(f"| {r['problem']} | {r['case']} | {r['setting']} | {len(r['seeds'])} | {cell(r['theta_vs_physics_only'])} | "
                    f"{cell(r['test_physical_vs_physics_only'])} | {cell(r['test_synthetic_vs_synthetic_only'])} | "
                    f"{cell(r['theta_vs_guess'])} | {cell(r.get('theta_vs_hidden_guess'))} | {cell(r.get('theta_vs_hidden_zero'))} |")
    lines = ["\n".join(rows), "", "Per component (seeds in order; truth; HYCO below physics-only / physics-only above truth / HYCO closer):"]
    for r in summary:
        for c in r["components"]:
            lines.append(f"- {r['problem']} {r['case']} {r['setting']} θ[{c['index']}]{' (hidden)' if c['hidden'] else ''} "
                         f"truth {c['truth']}: HYCO {[round(v, 4) for v in c['hyco']]}, physics-only "
                         f"{[round(v, 4) for v in c['physics_only']]}; {c['hyco_below_physics_only']}/{len(r['seeds'])} below, "
                         f"{c['physics_only_above_truth']}/{len(r['seeds'])} above truth, {c['hyco_closer']}/{len(r['seeds'])} closer")
    return "\n".join(lines)


#: the ratios the figure shows: (summary key, panel title)
FIGURE_RATIOS = (("theta_vs_physics_only", "θ error: HYCO / physics-only"),
                 ("test_synthetic_vs_synthetic_only", "S test error: HYCO / S-only"),
                 ("theta_vs_hidden_guess", "θ error: HYCO / hidden at its guess"))


def plot_paired(summary: list[dict], path: Path) -> None:
    """Every seed's ratio (dots), the geometric mean and its 95 % interval (bar), one row per case,
    on a log axis with 1 (no difference) marked: where HYCO helps, where it hurts, and how much the
    seeds disagree, at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    rows = [r for r in summary if r["setting"] in ("default", "adam")]
    labels = [f"{r['problem']} {r['case']}{' (Adam)' if r['setting'] == 'adam' else ''}, n={len(r['seeds'])}" for r in rows]
    fig, axes = plt.subplots(1, len(FIGURE_RATIOS), figsize=(15, 0.45 * len(rows) + 1.6), sharey=True)
    for ax, (key, title) in zip(axes, FIGURE_RATIOS):
        for y, r in enumerate(rows):
            d = r.get(key)
            if d is None:
                continue
            colour = "tab:green" if d["high"] < 1 else "tab:red" if d["low"] > 1 else "tab:grey"
            ax.scatter(d["ratios"], [y] * len(d["ratios"]), s=12, color=colour, alpha=0.6, zorder=3)
            ax.errorbar(d["geomean"], y, xerr=[[d["geomean"] - d["low"]], [d["high"] - d["geomean"]]], fmt="D",
                        color="black", ms=5, capsize=3, zorder=4)
            ax.annotate(f"{d['geomean']:.2f}, {d['better']}/{d['n']}", (d["high"], y), xytext=(4, 3),
                        textcoords="offset points", fontsize=7)
        ax.axvline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ratio per seed (< 1: HYCO better)")
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("HYCO paired by seed (dots: seeds; diamond: geometric mean, 95 % bootstrap interval; "
                 "green / red: interval below / above 1)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_components(summary: list[dict], path: Path) -> None:
    """Every component of theta per seed, physics-only beside HYCO, as its error relative to the
    truth, with the guess marked and hidden components shaded: shows *why* a theta ratio is what it
    is (which component moved, whether it left its guess, whether HYCO pulled it the right way)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if r["setting"] in ("default", "adam")]
    cols = 3
    fig, axes = plt.subplots(-(-len(rows) // cols), cols, figsize=(15, 3.0 * -(-len(rows) // cols)), squeeze=False)
    for ax, r in zip(axes.flat, rows):
        for c in r["components"]:
            i, scale = c["index"], abs(c["truth"]) or 1.0
            if c["hidden"]:
                ax.axvspan(i - 0.45, i + 0.45, color="0.9", zorder=0)
            for offset, key, colour in ((-0.15, "physics_only", "tab:blue"), (0.15, "hyco", "tab:orange")):
                ax.scatter([i + offset] * len(c[key]), [(v - c["truth"]) / scale for v in c[key]], s=14, color=colour,
                           alpha=0.7, zorder=3, label=key.replace("_", "-") if i == 0 else None)
        # the axis spans the fitted values; a guess beyond it sits at the edge with its value written
        fitted = [(v - c["truth"]) / (abs(c["truth"]) or 1.0) for c in r["components"] for k in ("physics_only", "hyco")
                  for v in c[k]]
        span = max(max(fitted) - min(fitted), 0.1)
        low, high = min(min(fitted), 0.0) - 0.15 * span, max(max(fitted), 0.0) + 0.15 * span
        for c in (c for c in r["components"] if c["guess"] is not None):
            g = (c["guess"] - c["truth"]) / (abs(c["truth"]) or 1.0)
            inside = low <= g <= high
            ax.scatter([c["index"]], [min(max(g, low), high)], marker="x" if inside else ("^" if g > high else "v"),
                       s=40, color="black", zorder=4, label="guess" if c["index"] == 0 else None, clip_on=False)
            if not inside:
                ax.annotate(f"guess {g:+.2g}", (c["index"], high if g > high else low), xytext=(5, -10 if g > high else 4),
                            textcoords="offset points", fontsize=7)
        ax.set_ylim(low, high)
        ax.set_xlim(-0.6, len(r["components"]) - 0.4)
        ax.axhline(0.0, color="black", lw=0.8, ls="--")
        ax.set_xticks([c["index"] for c in r["components"]],
                      [f"θ[{c['index']}]{' hidden' if c['hidden'] else ''}" for c in r["components"]], fontsize=7)
        ratio = r["theta_vs_physics_only"]
        ax.set_title(f"{r['problem']} {r['case']}{' (Adam)' if r['setting'] == 'adam' else ''}: "
                     f"θ err ratio {ratio['geomean']:.2f}, {ratio['better']}/{ratio['n']}", fontsize=9)
        ax.set_ylabel("(θ − truth) / |truth|", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle("θ per component and seed (grey: components the observed data cannot see; 0: the truth)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--cases", default="full,quarter,half")
    parser.add_argument("--problems", default=None, help="comma-separated problems of each case (default: all it has)")
    parser.add_argument("--methods", default=None, help="comma-separated method:setting labels (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--merge", action="store_true", help="add to the records in --out instead of replacing them")
    parser.add_argument("--summary-only", action="store_true", help="only recompute the paired summary from --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tic = time.perf_counter()
    load_before = os.getloadavg()
    records = json.loads(args.out.read_text()) if (args.merge or args.summary_only) and args.out.exists() else []
    if not args.summary_only:
        methods = list(METHODS) if not args.methods else [tuple(m.split(":")) for m in args.methods.split(",")]
        with tempfile.TemporaryDirectory() as cache:
            for case in args.cases.split(","):
                for problem in [p for p in CASES[case] if not args.problems or p in args.problems.split(",")]:
                    for seed in range(args.seed_start, args.seed_start + args.seeds):  # seed-major: pairs complete early
                        for method in methods:
                            t0 = time.perf_counter()
                            record = run(problem, case, method, seed, args.epochs, cache)
                            record["wall_s"] = time.perf_counter() - t0
                            records = [r for r in records if tuple(r[k] for k in KEY) != tuple(record[k] for k in KEY)]
                            records.append(record)
                            print(json.dumps({k: record[k] for k in (*KEY, "param_error", "test_synthetic", "test_physical",
                                                                     "wall_s")}), flush=True)
                            args.out.parent.mkdir(parents=True, exist_ok=True)
                            args.out.write_text(json.dumps(records, indent=1))  # after every run: a killed bench keeps its pairs
    backfill(records)
    args.out.write_text(json.dumps(records, indent=1))
    summary = paired_summary(records)
    args.out.with_name(args.out.stem + "_paired.json").write_text(json.dumps(summary, indent=1))
    plot_paired(summary, args.out.with_name(args.out.stem + "_paired.png"))
    plot_components(summary, args.out.with_name(args.out.stem + "_components.png"))
    print(table(records))
    print()
    print(summary_text(summary))
    print(f"\n{args.seeds} seeds from {args.seed_start}, {args.epochs} epochs, {time.perf_counter() - tic:.0f} s, "
          f"load average before/after {load_before[0]:.1f} / {os.getloadavg()[0]:.1f}; records in {args.out}")


if __name__ == "__main__":
    main()
