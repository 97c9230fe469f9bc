"""The report's figures of a sweep (``hyco report``): every trial's curve, and the searched settings
against the objective (importances, slice, parallel coordinates).

Drawn here, not by Optuna's matplotlib plots: those overprinted long key names (slice), cut them
(parallel), drew the worst trials white on white and called objectives "Objective Value 0". Here a
key goes by its short name (α_S, α_P, ...: ``hyco.evaluation.figures.SHORT``), an objective by its
metric name, colours are distinct per trial, and the trial ``hyco export`` writes is marked.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure

from hyco.errors import HycoError
from hyco.evaluation import epoch_axis, save
from hyco.evaluation.figures import distinct_styles, short_label, short_names
from hyco_ray.core.sweep_dir import LINEAGE_FILE, Sweep, TrialRecord

#: how a trial that did not run all epochs ended, in legends
ENDED = {"stopped": "ASHA-stopped", "diverged": "diverged", "error": "errored", "unfinished": "unfinished"}
#: objective colours of the parallel plot: viridis without its pale yellow end (no line fades into white)
OBJECTIVE_CMAP = LinearSegmentedColormap.from_list("viridis_dark", plt.get_cmap("viridis")(np.linspace(0.0, 0.8, 256)))


def asha_rungs(spec) -> list[int]:
    """The epochs after which ASHA compares trials (grace period times powers of the reduction factor)."""
    sch = spec.scheduler
    if sch.type != "asha":
        return []
    return [r for r in (sch.grace_period * int(sch.reduction_factor) ** k for k in range(32)) if r < spec.max_t]


def exploits(trial: TrialRecord) -> list[tuple[int, str]]:
    """(epoch, the trial whose checkpoint it took over after that epoch) of a PBT trial (``schedule.json``)."""
    lineage = Path(trial.path) / LINEAGE_FILE
    if not lineage.is_file():
        return []
    segments = json.loads(lineage.read_text())
    return [(int(s["from_epoch"]) - 1, str(before["trained_by"])) for before, s in zip(segments, segments[1:]) if s.get("exploit")]


def _pick(sweep: Sweep) -> tuple[TrialRecord | None, str]:
    """The trial ``hyco export`` writes and what it is called (the knee of a multi-objective front)."""
    try:
        return sweep.default_pick(), "knee" if sweep.spec.multi_objective else "best"
    except HycoError:
        return None, ""


def _finite(values: list[Any]) -> list[float]:
    return [float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan for v in values]


def plot_curves(sweep: Sweep, ax=None) -> Figure:
    """Each trial's metric per epoch in a colour (and marker) of its own, labelled by its id and
    settings and how it ended (dotted: it did not run all epochs); the best trial (a front's knee)
    thick with a star; ASHA's rungs as dashed verticals; PBT exploits as crosses."""
    spec, (pick, pick_name) = sweep.spec, _pick(sweep)
    columns = 1 if ax else 2  # beside other panels (hyco report A B): legends one column wide, apart
    ax = ax or plt.subplots(figsize=(9, 5.5))[1]
    exploit_label = "X: PBT exploit (took over a better trial's checkpoint after this epoch)"
    for trial, (colour, marker) in zip(sweep.trials, distinct_styles(len(sweep.trials))):
        outcome = trial.outcome(spec.max_t)
        x, y = [r["epoch"] for r in trial.history], _finite([r.get(spec.metric) for r in trial.history])
        label = f"{trial.trial_id}: {short_label(trial.params)}" + (f" ({ENDED[outcome]})" if outcome in ENDED else "")
        best = trial is pick
        ax.plot(x, y, "-" if outcome == "complete" else ":", color=colour, marker=marker, markersize=4,
                linewidth=3.0 if best else 1.2, zorder=3 if best else 2, label=f"★ {pick_name}, {label}" if best else label)
        if best and y and math.isfinite(y[-1]):
            ax.plot(x[-1], y[-1], "*", markersize=18, color=colour, markeredgecolor="k", zorder=4, label="_star")
        for epoch, donor in exploits(trial):
            if epoch in x and math.isfinite(y[x.index(epoch)]):
                ax.plot(epoch, y[x.index(epoch)], "X", markersize=10, color=colour, markeredgecolor="k", zorder=4,
                        label=exploit_label)
                ax.annotate(f"{trial.trial_id} takes {donor}'s", (epoch, y[x.index(epoch)]), textcoords="offset points",
                            xytext=(6, 8), fontsize=7, bbox={"fc": "white", "ec": "none", "alpha": 0.8})
                exploit_label = "_exploit"
    if all(v > 0 for line in ax.get_lines() for v in line.get_ydata() if math.isfinite(v)):
        ax.set_yscale("log")
    rungs = asha_rungs(spec)
    for rung in rungs:  # after the scale: a vertical line's data (0 to 1) is not a metric
        ax.axvline(rung, color="0.4", linestyle="--", linewidth=1, zorder=1,
                   label=f"ASHA rung{'s' if len(rungs) > 1 else ''} (after epoch {', '.join(map(str, rungs))}): "
                   f"the best 1/{spec.scheduler.reduction_factor:g} go on" if rung == rungs[0] else "_rung")
    ax.set(ylabel=f"{spec.metric} (relative)", title=f"{sweep.path.name}: {spec.metric} per epoch, every trial")
    epoch_axis(ax)
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=columns)
    return ax.figure


def _axis_values(sweep: Sweep, key: str, trials: list[TrialRecord]) -> tuple[list[float], list[str] | None]:
    """A searched key's values as numbers (a choice: its index, with the choices as tick labels)."""
    param = sweep.spec.space[key]
    if param.type == "choice":
        choices = list(param.values)
        return [float(choices.index(t.params.get(key))) if t.params.get(key) in choices else math.nan for t in trials], \
            [str(c) for c in choices]
    return [float(t.params.get(key, math.nan)) for t in trials], None


def _is_log(param) -> bool:
    return param.type == "loguniform" or bool(param.log)


def _log_span(values: list[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) > 10 * min(finite)


def plot_slice(sweep: Sweep) -> Figure:
    """The metric against each searched key, one panel each (its short name under it): complete
    trials coloured by the order they finished, ASHA-stopped ones hollow (their value at the stop),
    the best trial (a front's knee) a red star."""
    spec, (pick, pick_name) = sweep.spec, _pick(sweep)
    keys, names = list(spec.space), short_names(list(spec.space))
    shown = [t for t in sweep.trials if t.outcome(spec.max_t) in ("complete", "stopped") and math.isfinite(t.value(spec.metric))]
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), sharey=True, squeeze=False)
    y = [t.value(spec.metric) for t in shown]
    order = Normalize(0, max(len(shown) - 1, 1))
    for ax, key in zip(axes.flat, keys):
        x, ticks = _axis_values(sweep, key, shown)
        for i, (t, xi, yi) in enumerate(zip(shown, x, y)):
            done = t.outcome(spec.max_t) == "complete"
            ax.scatter(xi, yi, s=40, facecolors=plt.get_cmap("viridis")(order(i)) if done else "none",
                       edgecolors="k" if done else "0.4", linewidths=0.6, zorder=2)
            if t is pick:
                ax.scatter(xi, yi, s=220, marker="*", color="tab:red", edgecolors="k", zorder=3,
                           label=f"{pick_name} trial {t.trial_id}")
        if ticks:
            ax.set_xticks(range(len(ticks)), ticks)
            ax.set_xlim(-0.5, len(ticks) - 0.5)
        elif _is_log(spec.space[key]):
            ax.set_xscale("log")
        ax.set_xlabel(names[key])
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{spec.metric} (relative)")
    if _log_span(y):
        axes[0, 0].set_yscale("log")
    handles = [h for ax in axes.flat for h in ax.get_legend_handles_labels()[0]][:1]
    fig.colorbar(plt.cm.ScalarMappable(order, "viridis"), ax=axes, label="finished (trial order)", shrink=0.8)
    fig.suptitle(f"{sweep.path.name}: {spec.metric} against each setting ({len(shown)} trials; hollow: "
                 f"ASHA-stopped, value at the stop)" + (f"; red star: the {pick_name} trial" if handles else ""))
    return fig


def plot_parallel(sweep: Sweep) -> Figure:
    """Parallel coordinates: one vertical axis per searched key (short names, values at its ends),
    then the objectives and the metric; complete trials coloured by the metric (no pale colour), stopped ones grey
    dashed; the best trial (a front's knee) thick red."""
    spec, (pick, pick_name) = sweep.spec, _pick(sweep)
    keys, names = list(spec.space), short_names(list(spec.space))
    shown = [t for t in sweep.trials if t.outcome(spec.max_t) in ("complete", "stopped") and math.isfinite(t.value(spec.metric))]
    metric = [t.value(spec.metric) for t in shown]
    columns, labels = [], []
    for key in keys:
        values, ticks = _axis_values(sweep, key, shown)
        columns.append((values, ticks, _is_log(spec.space[key])))
        labels.append(names[key])
    for name in dict.fromkeys([*spec.objectives, spec.metric]):  # a multi-objective sweep's objectives too
        values = [t.value(name) for t in shown]
        columns.append((values, None, _log_span(values)))
        labels.append(name)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.7 * len(columns) + 2), 5.5))
    scaled = []
    for i, (values, ticks, log) in enumerate(columns):
        if ticks:
            lo, hi = 0.0, float(max(len(ticks) - 1, 1))
            for j, tick in enumerate(ticks):
                ax.text(i + 0.04, j / hi, tick, fontsize=8, va="center")
            scaled.append([v / hi for v in values])
            continue
        vals = np.log10(values) if log else np.asarray(values, dtype=float)
        lo, hi = (float(np.nanmin(vals)), float(np.nanmax(vals))) if len(vals) else (0.0, 1.0)
        span = hi - lo or 1.0
        scaled.append(list((vals - lo) / span))
        for end, v in ((0.0, lo), (1.0, hi)):
            ax.text(i + 0.04, end, f"{10 ** v if log else v:.3g}", fontsize=8, va="top" if end else "bottom")
    done = [m for t, m in zip(shown, metric) if t.outcome(spec.max_t) == "complete"]
    norm = Normalize(min(done, default=0.0), max(done, default=1.0))
    for k, t in enumerate(shown):
        points = [column[k] for column in scaled]
        if t.outcome(spec.max_t) != "complete":
            ax.plot(range(len(columns)), points, "--", color="0.6", linewidth=1, zorder=1)
        elif t is not pick:
            ax.plot(range(len(columns)), points, "-", color=OBJECTIVE_CMAP(norm(metric[k])), linewidth=1.5, zorder=2)
        else:
            ax.plot(range(len(columns)), points, "-", color="tab:red", linewidth=3.5, zorder=3,
                    label=f"{pick_name} trial {t.trial_id}")
    for i in range(len(columns)):
        ax.axvline(i, color="k", linewidth=1, zorder=0)
    ax.set_xticks(range(len(columns)), labels)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(columns) - 0.5)
    ax.set_ylim(-0.05, 1.05)
    fig.colorbar(plt.cm.ScalarMappable(norm, OBJECTIVE_CMAP), ax=ax, label=f"{spec.metric} (complete trials)")
    if pick in shown:
        ax.plot([], [], "--", color="0.6", label="ASHA-stopped (value at the stop)")
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    ax.set_title(f"{sweep.path.name}: settings of {len(shown)} trials and their {spec.metric}")
    return fig


def importances(study, sweep: Sweep) -> dict[str, dict[str, float]]:
    """Optuna's importances of the searched keys per objective (by its metric name), complete trials only."""
    import optuna

    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)) if study is not None else []
    if len(complete) < 2:
        return {}
    objectives = list(sweep.spec.objectives) or [sweep.spec.metric]
    found = {}
    for i, name in enumerate(objectives):
        target = (lambda t, i=i: t.values[i]) if len(objectives) > 1 else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "computes the importances ... to achieve low target values"
                found[name] = dict(optuna.importance.get_param_importances(study, target=target))
        except (RuntimeError, ValueError, ZeroDivisionError):
            return {}
    return found


def plot_importances(found: dict[str, dict[str, float]], sweep: Sweep) -> Figure:
    """Horizontal bars per searched key (short names), one colour per objective, named."""
    keys = list(sweep.spec.space)
    names = short_names(keys)
    fig, ax = plt.subplots(figsize=(8, 1.8 + 0.5 * len(keys) * max(1, len(found))))
    height = 0.8 / max(len(found), 1)
    for j, (objective, values) in enumerate(found.items()):
        ys = [i + (j - (len(found) - 1) / 2) * height for i in range(len(keys))]
        widths = [values.get(k, 0.0) for k in keys]
        ax.barh(ys, widths, height=height, label=objective, color=f"C{j}")
        for yi, w in zip(ys, widths):
            ax.text(w, yi, f" {w:.2f}", va="center", fontsize=8)
    ax.set_yticks(range(len(keys)), [names[k] for k in keys])
    ax.invert_yaxis()
    ax.set(xlabel="importance (Optuna's get_param_importances; sums to 1 per objective)",
           title=f"{sweep.path.name}: which settings matter")
    ax.set_xlim(0, 1.15 * max((v for values in found.values() for v in values.values()), default=1.0))
    ax.legend(title="objective", fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(found))
    fig.tight_layout()
    return fig


def save_study_figures(sweep: Sweep, study, out: Path) -> dict[str, Path]:
    """importance.png (needs the Optuna study and 2 complete trials), slice.png and parallel.png
    (not for PBT: its settings change during a trial)."""
    files = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fANOVA's and matplotlib's chatter
        found = importances(study, sweep)
        if found:
            files["importance"] = save(plot_importances(found, sweep), out / "importance.png")
        if sweep.spec.scheduler.type != "pbt" and any(t.outcome(sweep.spec.max_t) in ("complete", "stopped") for t in sweep.trials):
            files["slice"] = save(plot_slice(sweep), out / "slice.png")
            files["parallel"] = save(plot_parallel(sweep), out / "parallel.png")
    return files
