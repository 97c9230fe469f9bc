"""``hyco confirm``: does a sweep's pick hold up on seeds the search never saw?

A sweep ranks settings by one draw of the data and one network init each, so its best trial can be
the luckiest draw rather than the best setting. Confirmation retrains the top K settings, the
defaults (the base config with the space's fixed overrides, nothing sampled) and, where the problem
trains both models, the physics-only and synthetic-only baselines, at the sweep's full trial length
on N fresh seeds (``run_params.seed = data.seed = 1000 + i``: the search uses the config's seed), one
CPU each on Ray. Every setting is paired per seed with the defaults (:func:`hyco.evaluation.paired.paired_ratio`):
the seed-to-seed spread of the problem cancels in the ratio.

The verdict's rule: a setting beats the defaults only when the whole bootstrap interval of its
objective ratio lies below 1; of those, the one with the smallest geometric mean wins. Otherwise the
verdict is "keep the defaults", and ``hyco export`` writes them.

Each run writes ``confirm/<setting>/seed_<s>/result.json`` when it finishes, so an interrupted or
crashed confirmation loses only the runs in flight, and running it again skips the finished ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hyco.errors import HycoError
from hyco.evaluation.paired import PairedRatio, paired_ratio
from hyco_ray.core.sweep_dir import Sweep, SweepError, load_sweep
from hyco_ray.runner.retrain import (  # noqa: F401 (RESULT_FILE, objective_of, train_one: their old home; bench, tests)
    FLOOR,
    RESULT_FILE,
    TEST_METRICS,
    objective_of,
    result_path,
    run_tasks,
    train_one,
)

CONFIRM_DIR, CONFIRM_JSON, CONFIRM_MD = "confirm", "confirm.json", "confirm.md"
#: fresh seeds are SEED_OFFSET + i: far from the configs' own seeds (0, 1, ...) that the search trained on
SEED_OFFSET = 1000
DEFAULTS, PHYSICS_ONLY, SYNTHETIC_ONLY = "defaults", "physics-only", "synthetic-only"


@dataclass
class Setting:
    """One configuration to retrain: a sweep trial's sampled values, the defaults or a baseline."""

    name: str
    overrides: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    search_value: float = math.nan  # its objective in the search (trials and, if a trial, the defaults)


def fresh_seeds(n: int) -> list[int]:
    return [SEED_OFFSET + i for i in range(n)]


def check_args(top: int, seeds: int) -> None:
    if top < 1:
        raise HycoError(f"--top {top}: confirm at least 1 setting (--top >= 1)")
    if seeds < 2:
        raise HycoError(f"--seeds {seeds}: a paired comparison needs at least 2 seeds (--seeds >= 2)")


def open_sweep(sweep_dir: str | Path) -> Sweep:
    path = Path(sweep_dir)
    if not path.is_dir():
        raise HycoError(f"{sweep_dir} is not a directory: name a sweep directory (<storage_path>/<name>)")
    try:
        return load_sweep(path)
    except SweepError as exc:
        raise HycoError(str(exc)) from None


def ranked_trials(sweep: Sweep) -> list:
    """Complete trials with a finite objective, best first (ties: first to finish)."""
    metric, sign = sweep.spec.metric, 1.0 if sweep.spec.mode == "min" else -1.0
    done = [t for t in sweep.by_outcome("complete") if math.isfinite(t.value(metric))]
    if not done:
        raise HycoError(f"{sweep.path}: no trial finished all {sweep.spec.max_t} epochs with a finite {metric}; "
                        "nothing to confirm")
    return sorted(done, key=lambda t: sign * t.value(metric))


def plan_settings(sweep: Sweep, top: int, baselines: bool = True) -> list[Setting]:
    """The defaults, the top ``top`` trials (a trial identical to the defaults is the defaults) and the
    two baselines when the base config trains both models (and ``baselines``)."""
    from hyco.config import load_config

    spec, metric = sweep.spec, sweep.spec.metric
    base = spec.trial_overrides({}, threads=1)
    defaults = Setting(DEFAULTS, base)
    settings, enqueued = [defaults], sweep.defaults_trial()
    if enqueued is not None:
        defaults.search_value = enqueued.value(metric)
    for trial in ranked_trials(sweep):
        if len(settings) > top:
            break
        overrides = spec.trial_overrides(trial.params, threads=1)
        # the sweep's enqueued defaults trial (its rows say defaults: true), or a sampled trial that drew them
        if trial is enqueued or overrides == base or (spec.defaults and trial.params == spec.defaults):
            if math.isnan(defaults.search_value):
                defaults.search_value = trial.value(metric)
            continue
        settings.append(Setting(f"trial_{trial.trial_id}", overrides, dict(trial.params), trial.value(metric)))
    if baselines and load_config(spec.base, base).run_params.model_type == "hybrid":
        settings += [Setting(PHYSICS_ONLY, [*base, "run_params.model_type=physical"]),
                     Setting(SYNTHETIC_ONLY, [*base, "run_params.model_type=synthetic"])]
    return settings


def _result_path(root: Path, setting: str, seed: int) -> Path:
    return result_path(root, CONFIRM_DIR, setting, seed)


def _paired(values: dict[str, dict[int, float]], name: str, seeds: list[int]) -> PairedRatio | str:
    """``name`` vs the defaults over ``seeds`` (values floored at FLOOR); a string says why not."""
    a, b = [values[name].get(s, math.nan) for s in seeds], [values[DEFAULTS].get(s, math.nan) for s in seeds]
    if not all(math.isfinite(x) for x in a + b):
        return "missing or non-finite runs"
    return paired_ratio([max(x, FLOOR) for x in a], [max(x, FLOOR) for x in b])


def statistics(settings: list[Setting], runs: dict[str, dict[int, dict]], seeds: list[int], metric: str,
               mode: str) -> dict[str, dict[str, dict | str]]:
    """Per setting (not the defaults) and metric: the paired statistics against the defaults. A
    maximised objective is compared as its inverse, so below 1 is always better."""
    out: dict[str, dict[str, dict | str]] = {}
    for key in ("objective", *TEST_METRICS):
        values = {}
        for s in settings:
            per_seed = {}
            for seed, r in runs.get(s.name, {}).items():
                v = r.get(key)
                v = float(v) if isinstance(v, (int, float)) else math.nan
                per_seed[seed] = 1.0 / v if key == "objective" and mode == "max" and v else v
            values[s.name] = per_seed
        for s in settings[1:]:
            pr = _paired(values, s.name, seeds)
            out.setdefault(s.name, {})[key] = pr if isinstance(pr, str) else pr.to_dict()
    return out


def verdict(settings: list[Setting], stats: dict, n: int) -> tuple[str | None, str]:
    """(winner or None, the sentence). Only sweep trials can win (a baseline is not a setting to export)."""
    candidates = []
    for s in settings[1:]:
        obj = stats.get(s.name, {}).get("objective")
        if s.name.startswith("trial_") and isinstance(obj, dict) and obj["high"] < 1.0:
            candidates.append((obj["geomean"], s.name, obj))
    if not candidates:
        return None, "no setting beats the defaults beyond seed noise: keep them"
    ratio, name, obj = min(candidates)
    return name, (f"setting {name} beats the defaults by {1 / ratio:.3g}x (ratio {ratio:.3g}, interval "
                  f"[{obj['low']:.3g}, {obj['high']:.3g}], {obj['better']}/{n} seeds better) on {n} fresh seeds")


RULE = ("rule: a setting beats the defaults only when the 95% bootstrap interval of its per-seed objective ratio "
        "(setting / defaults, same seed) lies wholly below 1; the smallest geometric mean among those wins")


def table(settings: list[Setting], runs: dict, stats: dict, metric: str) -> str:
    """The paired table (markdown): per setting and metric, ratio to the defaults [interval], seeds better, sign p."""
    def cell(name: str, key: str) -> str:
        entry = stats.get(name, {}).get(key)
        if not isinstance(entry, dict):
            return entry or ""
        return (f"{entry['geomean']:.3g} [{entry['low']:.3g}, {entry['high']:.3g}] "
                f"({min(entry['ratios']):.2g}-{max(entry['ratios']):.2g}) {entry['better']}/{entry['n']} p={entry['sign_p']:.2g}")

    keys = ("objective", *TEST_METRICS)
    lines = [f"| setting | objective ({metric}) | " + " | ".join(TEST_METRICS) + " | values |",
             "|---" * (len(keys) + 2) + "|"]
    for s in settings:
        means = {k: _geomean([r.get(k) for r in runs.get(s.name, {}).values()]) for k in keys}
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in s.params.items()) or " ".join(
            o for o in s.overrides if o.startswith("run_params.model_type")) or "the base config's"
        if s.name == DEFAULTS:
            row = [f"{_fmt(means[k])} (geomean)" for k in keys]
        else:
            row = [cell(s.name, k) for k in keys]
        lines.append(f"| {s.name} | " + " | ".join(row) + f" | {values} |")
    return "\n".join(lines)


def _geomean(values: list) -> float:
    xs = [max(float(v), FLOOR) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def load_runs(root: Path, settings: list[Setting], seeds: list[int]) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {}
    for s in settings:
        for seed in seeds:
            path = _result_path(root, s.name, seed)
            if path.is_file():
                runs.setdefault(s.name, {})[seed] = json.loads(path.read_text())
    return runs


def write_summary(sweep: Sweep, settings: list[Setting], seeds: list[int], runs: dict) -> dict:
    """confirm.json (every run's metrics, the statistics, the verdict) and confirm.md (the table)."""
    spec = sweep.spec
    stats = statistics(settings, runs, seeds, spec.metric, spec.mode)
    complete = all(len(runs.get(s.name, {})) == len(seeds) for s in settings)
    winner, sentence = verdict(settings, stats, len(seeds)) if complete else (None, "unfinished: run hyco confirm again")
    doc = {
        "sweep": spec.name, "metric": spec.metric, "mode": spec.mode, "epochs": spec.max_t, "seeds": seeds,
        "seed_rule": f"run_params.seed = data.seed = {SEED_OFFSET} + i (the search used the config's own seed)",
        "settings": [{"name": s.name, "params": s.params, "overrides": s.overrides, "search_value": s.search_value}
                     for s in settings],
        "runs": {name: {str(k): v for k, v in per.items()} for name, per in runs.items()},
        "paired": stats, "complete": complete, "winner": winner, "verdict": sentence, "rule": RULE,
        "written": f"{datetime.now():%Y-%m-%d %H:%M}",
    }
    (sweep.path / CONFIRM_JSON).write_text(json.dumps(doc, indent=2, default=_json_default))
    md = (f"# Confirmation of sweep {spec.name}\n\n{len(seeds)} fresh seeds ({doc['seed_rule']}), {spec.max_t} epochs each. "
          f"Each cell: geometric mean of setting / defaults per seed [95% bootstrap interval] (range) seeds better, "
          f"sign test p. Below 1 is better.\n\n{table(settings, runs, stats, spec.metric)}\n\n"
          f"**Verdict: {sentence}.**\n\n{RULE}.\n")
    (sweep.path / CONFIRM_MD).write_text(md)
    return doc


def _json_default(o: Any) -> Any:
    return str(o)


def run_confirm(sweep_dir: str | Path, top: int, seeds: int, address: str | None = None,
                num_cpus: int | None = None, baselines: bool = True) -> dict:
    """Retrain the plan's missing runs on Ray (results written as each finishes), then write and
    return the summary. Ctrl-C keeps the finished runs: a rerun goes on from them. ``baselines``
    False: the top trials and the defaults only (a bench on a small budget)."""
    check_args(top, seeds)
    sweep = open_sweep(sweep_dir)
    settings, seed_list = plan_settings(sweep, top, baselines), fresh_seeds(seeds)
    root, spec = sweep.path, sweep.spec
    todo = [(s, seed) for s in settings for seed in seed_list if not _result_path(root, s.name, seed).is_file()]
    total = len(settings) * len(seed_list)
    print(f"confirm {spec.name}: {len(settings)} settings ({', '.join(s.name for s in settings)}) x {seeds} fresh seeds "
          f"{seed_list[0]}..{seed_list[-1]}, {spec.max_t} epochs each; {total - len(todo)} of {total} runs done already",
          flush=True)
    if todo:
        _run_on_ray(root, spec.base, spec.metric, todo, total - len(todo), total, address, num_cpus)
    doc = write_summary(sweep, settings, seed_list, load_runs(root, settings, seed_list))
    print(table(settings, load_runs(root, settings, seed_list), doc["paired"], spec.metric))
    print(f"\n{RULE}\nverdict: {doc['verdict']}")
    print(f"wrote {root / CONFIRM_JSON} and {root / CONFIRM_MD}")
    return doc


def _run_on_ray(root: Path, base: str, metric: str, todo: list, done: int, total: int, address: str | None,
                num_cpus: int | None) -> None:
    """Train ``todo`` on Ray (a new local one, or ``address``): :func:`hyco_ray.runner.retrain.run_tasks`."""
    import ray

    from hyco_ray.runner.sweep import connect_ray

    started = connect_ray(address, num_cpus, str(root / CONFIRM_DIR))
    try:
        run_tasks(root, base, metric, todo, done, total, CONFIRM_DIR)
    finally:
        if started:
            ray.shutdown()


def export_confirmed(sweep_dir: str | Path, out: str | Path) -> tuple[Path, str] | None:
    """``hyco export`` after a finished confirmation: the confirmed winner's trial config, or the
    defaults with a comment saying why. None when there is no finished confirmation."""
    from hyco.config import config_to_yaml, load_config
    from hyco_ray.core.analysis import export_best

    path = Path(sweep_dir) / CONFIRM_JSON
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    if not doc.get("complete"):
        return None
    out = Path(out)
    if doc.get("winner"):
        export_best(sweep_dir, out, trial_id=doc["winner"].removeprefix("trial_"))
        why = f"confirmed on {len(doc['seeds'])} fresh seeds: {doc['verdict']}"
        out.write_text(f"# {why}\n" + out.read_text())
        return out, why
    sweep = open_sweep(sweep_dir)
    overrides = sweep.spec.trial_overrides({})
    why = f"the defaults, not a trial: {doc['verdict']} ({CONFIRM_JSON}, {len(doc['seeds'])} fresh seeds)"
    header = [f"# hyco export {datetime.now():%Y-%m-%d %H:%M}: {why}",
              f"# base config {sweep.spec.base!r} with overrides: {' '.join(overrides)}",
              "# --trial ID exports a sweep trial instead; rerun: hyco train --config-file THIS_FILE"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header) + "\n" + config_to_yaml(load_config(sweep.spec.base, overrides)))
    return out, why
