"""The objective's seed noise: the defaults trained on a few extra seeds, and every trial's margin read against it.

A sweep trains each setting once, at the config's seed, so a trial that beats the defaults by less than
the seed-to-seed spread of the objective has shown nothing. After the search, on the same Ray, the
defaults (the base config with the space's fixed overrides, nothing sampled: the searcher's first
point) train at the sweep's trial length on ``noise_seeds`` seeds, ``run_params.seed = data.seed =
2000 + i`` (neither the search's seed nor ``hyco confirm``'s fresh 1000 + i), one task each with a
trial's resources (:func:`hyco_ray.runner.confirm.measure_noise`). Each run writes
``noise/defaults/seed_<s>/result.json`` as it finishes: an interrupted measurement loses only the runs
in flight, and ``hyco tune --resume`` goes on from the rest. ``noise.json`` holds each seed's objective
(as a trial reports it: the last epoch's, or the best epoch's with ``objective_epoch: best``) and the
spread: mean, sd, coefficient of variation (sd / mean), min, max and the sd of the logarithms.

Reading a margin (``trial / defaults trial - 1``, both at the search's seed): one seed's draw of either
has the seed sd ``s`` of the log objective, their difference ``sqrt(2) s``. A margin is *beyond noise*
when ``|log(trial / defaults)| > Z s`` with ``Z = 2 sqrt(2)``: two sd of that difference, about 95 % for
one trial named in advance. The best of many trials is picked for its luck as well, so even a margin
beyond noise is a hint; ``hyco confirm`` retrains on fresh seeds and decides. Ray-free: the runs are
started by :mod:`hyco_ray.runner.confirm`.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from hyco_ray.core.space import SweepSpec
from hyco_ray.core.sweep_dir import NOISE_DIR, NOISE_FILE, Sweep

#: noise seeds are NOISE_SEED_OFFSET + i: not the configs' own (0, 1, ...) nor confirm's fresh 1000 + i
NOISE_SEED_OFFSET = 2000
#: the setting's directory under noise/ (as confirm names its runs of the defaults)
NOISE_SETTING = "defaults"
#: a margin is beyond noise past Z seed sd's of the log objective: two sd of the difference of two draws
Z = 2 * math.sqrt(2)
#: the test metrics whose spread is recorded beside the objective's (hyco_ray.runner.confirm.TEST_METRICS)
METRICS = ("test_loss_synthetic", "test_loss_physical", "param_error")


def noise_seeds(k: int) -> list[int]:
    return [NOISE_SEED_OFFSET + i for i in range(k)]


def result_path(root: str | Path, seed: int) -> Path:
    """``<sweep dir>/noise/defaults/seed_<s>/result.json``: one finished noise run."""
    return Path(root) / NOISE_DIR / NOISE_SETTING / f"seed_{seed}" / "result.json"


def plan_line(spec: SweepSpec) -> str:
    """What the noise measurement costs (``hyco tune --dry-run``)."""
    k = spec.noise_seeds
    if not k:
        return "seed noise: not measured (noise_seeds: 0): margins over the defaults cannot be read against it"
    seeds = noise_seeds(k)
    return (f"seed noise: the defaults on {k} extra seeds (run_params.seed = data.seed = {seeds[0]}..{seeds[-1]}) after "
            f"the search, same Ray, {spec.resources.cpu:g} CPU {spec.resources.gpu:g} GPU each: {k} x {spec.max_t} = "
            f"{k * spec.max_t} trial-epochs more (the search: at most {spec.num_samples} x {spec.max_t} = "
            f"{spec.num_samples * spec.max_t})")


def objective(result: dict, spec: SweepSpec) -> float:
    """A run's objective as a trial of ``spec`` reports it (the best epoch's with ``objective_epoch: best``)."""
    key = f"best_{spec.metric}" if spec.objective_epoch == "best" and f"best_{spec.metric}" in result else spec.metric
    value = result.get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def spread(values: list[float]) -> dict[str, Any]:
    """The seed spread of positive values: mean, sd, cv (sd / mean), min, max, sd of the logs and the
    margins (relative, below and above 0) beyond which a single-seed comparison is outside it."""
    xs = [v for v in values if math.isfinite(v)]
    if len(xs) < 2:
        return {"n": len(xs), "values": xs}
    mean, sd = statistics.mean(xs), statistics.stdev(xs)
    logs = [math.log(v) for v in xs if v > 0]
    sd_log = statistics.stdev(logs) if len(logs) == len(xs) else math.nan
    return {"n": len(xs), "values": xs, "mean": mean, "sd": sd, "cv": sd / mean if mean else math.nan,
            "min": min(xs), "max": max(xs), "sd_log": sd_log,
            "beyond_below": math.exp(-Z * sd_log) - 1, "beyond_above": math.exp(Z * sd_log) - 1}


def write_noise(root: str | Path, spec: SweepSpec) -> dict:
    """``noise.json`` from the finished noise runs: per seed the objective and test metrics, their spreads."""
    seeds, runs = noise_seeds(spec.noise_seeds), {}
    for seed in seeds:
        path = result_path(root, seed)
        if path.is_file():
            runs[seed] = json.loads(path.read_text())
    values = {seed: objective(r, spec) for seed, r in runs.items()}
    doc = {"metric": spec.metric, "mode": spec.mode, "objective_epoch": spec.objective_epoch, "epochs": spec.max_t,
           "seeds": seeds, "seed_rule": f"run_params.seed = data.seed = {NOISE_SEED_OFFSET} + i",
           "complete": len(runs) == len(seeds), "objective": {str(s): v for s, v in values.items()},
           "spread": spread([values[s] for s in seeds if s in values]), "z": Z,
           "test_spread": {k: spread([float(r[k]) for r in runs.values() if isinstance(r.get(k), (int, float))])
                           for k in METRICS},
           "errors": {str(s): r["error"] for s, r in runs.items() if "error" in r}}
    Path(root, NOISE_FILE).write_text(json.dumps(doc, indent=2))
    return doc


def load_noise(sweep_dir: str | Path) -> dict | None:
    path = Path(sweep_dir) / NOISE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def judge(ratio: float, noise: dict, mode: str = "min") -> str:
    """``within noise``, ``better beyond noise`` or ``worse beyond noise`` for a trial / defaults ratio."""
    s = noise["spread"].get("sd_log", math.nan)
    if not (math.isfinite(ratio) and ratio > 0 and math.isfinite(s)):
        return "not comparable"
    if abs(math.log(ratio)) <= Z * s:
        return "within noise"
    better = ratio < 1 if mode == "min" else ratio > 1
    return f"{'better' if better else 'worse'} beyond noise"


def margins(sweep: Sweep, noise: dict) -> dict[str, dict]:
    """Per complete trial (id): its objective, the defaults' it is compared with, the margin and the verdict.
    The reference is the defaults trial (same seed as every trial), else the mean of the noise runs."""
    spec, metric = sweep.spec, sweep.spec.metric
    ref_trial = sweep.defaults_trial()
    ref = ref_trial.value(metric) if ref_trial is not None else math.nan
    source = f"defaults trial {ref_trial.trial_id}" if ref_trial is not None and math.isfinite(ref) else "noise mean"
    if source == "noise mean":
        ref = noise["spread"].get("mean", math.nan)
    out = {}
    for t in sweep.by_outcome("complete"):
        value = t.value(metric)
        ratio = value / ref if math.isfinite(value) and math.isfinite(ref) and ref else math.nan
        out[t.trial_id] = {"value": value, "reference": ref, "reference_source": source, "margin": ratio - 1,
                           "verdict": judge(ratio, noise, spec.mode)}
    return out


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %" if math.isfinite(x) else "n/a"


def noise_lines(sweep: Sweep) -> list[str]:
    """The summary's seed-noise section: the spread, then every complete trial's margin over the defaults next to it."""
    spec = sweep.spec
    if not spec.noise_seeds:
        return ["seed noise: not measured (noise_seeds: 0)"]
    noise = load_noise(sweep.path)
    if noise is None or not noise.get("complete"):
        return [f"seed noise: not measured yet ({spec.noise_seeds} runs of the defaults): hyco tune <space.yaml> --resume"]
    sp = noise["spread"]
    if "sd" not in sp:
        return [f"seed noise: fewer than 2 noise runs finished ({noise.get('errors')}); no spread"]
    lines = [f"seed noise: the defaults on {sp['n']} seeds {noise['seeds'][0]}..{noise['seeds'][-1]} ({noise['epochs']} "
             f"epochs): {spec.metric} {sp['mean']:.4g} ± {sp['sd']:.2g} (cv ±{100 * sp['cv']:.1f} %, "
             f"min {sp['min']:.4g}, max {sp['max']:.4g})",
             f"    a margin over the defaults is beyond noise below {_pct(sp['beyond_below'])} or above "
             f"{_pct(sp['beyond_above'])} (|log ratio| > {Z:.2f} sd of log {spec.metric}); hyco confirm decides"]
    rows = margins(sweep, noise)
    if not rows:
        return [*lines, "    no complete trial to compare"]
    ref = next(iter(rows.values()))
    lines.append(f"    margin of each complete trial over the defaults ({ref['reference_source']}, "
                 f"{spec.metric} {ref['reference']:.4g}), best first:")
    sign = 1.0 if spec.mode == "min" else -1.0
    for tid, r in sorted(rows.items(), key=lambda kv: sign * kv[1]["value"] if math.isfinite(kv[1]["value"]) else math.inf):
        lines.append(f"      {tid}: margin {_pct(r['margin'])} vs seed spread ±{100 * sp['cv']:.1f} %: {r['verdict']}")
    return lines


def margin_columns(table: pd.DataFrame, sweep: Sweep) -> pd.DataFrame:
    """The trials table with ``margin`` (over the defaults) and ``vs noise`` columns, when the noise is measured."""
    noise = load_noise(sweep.path)
    if noise is None or "sd" not in noise.get("spread", {}):
        return table
    rows = margins(sweep, noise)
    return table.assign(margin=[rows.get(t, {}).get("margin", math.nan) for t in table.trial_id],
                        **{"vs noise": [rows.get(t, {}).get("verdict", "") for t in table.trial_id]})
