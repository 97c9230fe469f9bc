"""What a sweep found, for people: summary, best-config export, trials table, report figures and the
comparison of sweeps (the directory itself is read by :mod:`hyco_ray.core.sweep_dir`)."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import optuna
import pandas as pd

from hyco.errors import HycoError
from hyco.evaluation import plot_front, plot_runs, save, short_label
from hyco_ray.core import figures as sweep_figures
from hyco_ray.core.noise import margin_columns, noise_lines
from hyco_ray.core.sweep_dir import LINEAGE_FILE, Sweep, check_writable_dir, load_sweep, write_pbt_study


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def summary_text(sweep: Sweep, wall_s: float | None = None) -> str:
    """Best trial and its config, the Pareto front, ASHA stops per rung, compute spent in trial-epochs."""
    spec, started, stats = sweep.spec, len(sweep.trials), sweep_stats(sweep)
    counts = Counter(t.outcome(spec.max_t) for t in sweep.trials)
    wall = f", wall time {wall_s:.0f} s" if wall_s is not None else ""
    lines = [f"## sweep {spec.name}: {sweep.path}", "",
             f"trials: {started} started of num_samples {spec.num_samples}: {counts['complete']} complete, "
             f"{counts['stopped']} stopped early by ASHA, {counts['diverged']} diverged (NaN or inf), "
             f"{counts['error']} errored, {counts['unfinished']} unfinished{wall}"]
    # the trial hyco export writes: the best one, or the knee of a multi-objective front (not the best by metric)
    label = "chosen trial (the knee of the Pareto front, hyco export's default)" if spec.multi_objective else "best trial"
    try:
        best = sweep.default_pick()
    except HycoError as exc:
        lines.append(f"{label}: none ({exc})")
    else:
        keys = dict.fromkeys([*spec.objectives, spec.metric, "param_error"])
        shown = ", ".join(f"{k} = {_fmt(best.final.get(k))}" for k in keys if k in best.final)
        lines += [f"{label}: {best.trial_id} ({best.epochs} epochs): {shown}",
                  *(f"    {k}={_fmt(v)}" for k, v in best.params.items()),
                  f"    full config: hyco export {sweep.path} -o best.yaml; rerun: hyco train --config-file best.yaml"]
    lines += _defaults_lines(sweep) + noise_lines(sweep)
    lines += _front_lines(sweep) if spec.multi_objective else []
    stopped, retries = Counter(t.epochs for t in sweep.by_outcome("stopped")), sum(t.num_failures for t in sweep.trials)
    rungs = ", ".join(f"after {e} epoch{'s' if e > 1 else ''}: {n}" for e, n in sorted(stopped.items()))
    lines += [f"early stopping: none (scheduler {spec.scheduler.type})" if spec.scheduler.type != "asha"
              else f"ASHA stopped {sum(stopped.values())} trials; by rung (epochs completed): {rungs}" if stopped
              else "ASHA stopped no trial",
              f"compute: {stats['trial-epochs']} trial-epochs; early stopping saved {stats['saved trial-epochs']} "
              f"trial-epochs ({stats['saved %']:.0f}%); trial failures retried: {retries}"]
    if counts["unfinished"] or started < spec.num_samples:
        lines.append(f"interrupted: {counts['unfinished']} trials unfinished, {spec.num_samples - started} not "
                     "started; resume with hyco tune <space.yaml> --resume")
    return "\n".join(lines) + "\n"


def _defaults_lines(sweep: Sweep) -> list[str]:
    """The base config's own trial (the searcher's first point) and the best trial's ratio to it."""
    spec, ref = sweep.spec, sweep.defaults_trial()
    if ref is None:
        return ["defaults trial: none" + (" (a config-group key is searched)" if not spec.defaults else " ran")]
    metrics = list(dict.fromkeys([spec.metric, *spec.objectives, "param_error"]))
    line = (f"defaults trial: {ref.trial_id} ({ref.epochs} epochs, {ref.outcome(spec.max_t)}): "
            + ", ".join(f"{k} = {_fmt(ref.value(k))}" for k in metrics if k in ref.final))
    try:
        best = sweep.default_pick()
    except HycoError:
        return [line]
    ratios = ", ".join(f"{k} {best.value(k) / ref.value(k):.3g}" for k in metrics
                       if k in best.final and math.isfinite(ref.value(k)) and ref.value(k) != 0)
    name = "knee" if spec.multi_objective else "best"
    return [line, f"    {name} / defaults: {ratios}" + (f" (the defaults are the {name} trial)" if best is ref else "")]


def _front_lines(sweep: Sweep) -> list[str]:
    """The Pareto front's trials (objectives, settings), the knee marked."""
    objectives, front = sweep.spec.objectives, sweep.pareto_front()
    head = ", ".join(f"{mode} {name}" for name, mode in objectives.items())
    if not front:
        return [f"Pareto front ({head}): empty (no complete trial with finite objectives)"]
    knee, values = sweep.knee(), {id(t): ", ".join(f"{k} = {_fmt(t.value(k))}" for k in objectives) for t in front}
    return [f"Pareto front ({head}): {len(front)} of {len(sweep.by_outcome('complete'))} complete trials "
            "(stopped trials are not on it; * the knee, hyco export's default)",
            *(f"  {'*' if t is knee else ' '} {t.trial_id}: {values[id(t)]}; {short_label(t.params)}" for t in front),
            f"    export a front member: hyco export {sweep.path} --trial ID -o member.yaml"]


def export_best(sweep_dir: str | Path, out: str | Path, trial_id: str | None = None) -> Path:
    """Write the config a trial ran (saved in its directory): ``trial_id``, else the best trial, or the
    knee of a multi-objective sweep's front; ``hyco train --config-file`` reruns it."""
    out = Path(out)
    if out.is_dir():
        raise HycoError(f"-o {str(out)!r} is a directory; give a file name such as {str(out / 'best.yaml')!r}")
    check_writable_dir(out.parent, f"-o {str(out)!r}: directory", create=True)
    sweep = load_sweep(sweep_dir)
    spec, trial = sweep.spec, sweep.default_pick(trial_id)
    saved = trial.config_path
    if not saved.is_file():
        raise HycoError(f"{saved} is missing: the trial's config was not saved")
    threads = int(trial.final.get("num_threads", spec.num_threads))
    env = trial.final.get("env", {})
    header = [
        f"# hyco export {datetime.now():%Y-%m-%d %H:%M}: trial {trial.trial_id} of sweep {spec.name} ({sweep.path})",
        f"# {', '.join(f'{k} = {_fmt(trial.value(k))}' for k in dict.fromkeys([spec.metric, *spec.objectives]))} "
        f"after {trial.epochs} epochs; "
        + ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items()),
        *_schedule_lines(trial),
        f"# base config {spec.base!r} with overrides: {' '.join(spec.trial_overrides(trial.params, threads))}",
        "# trial environment: " + ", ".join(f"{k}={v}" for k, v in env.items()),
        f"# trial ran on {trial.final.get('hostname', '?')}, device {trial.final.get('device', 'cpu')}, "
        f"CUDA_VISIBLE_DEVICES={trial.final.get('cuda_visible_devices', '')!r}",
        "# same numbers need the same seed, num_threads, dtype, device and versions",
        "# rerun: hyco train --config-file THIS_FILE",
    ]
    out.write_text("\n".join(header) + "\n" + saved.read_text())
    return out


#: the scores of a trial's last epoch in the trials table, after the sweep's metric and objectives:
#: val_loss and its parts (S's and P's errors), param_error, and the test split's (complete trials only)
TABLE_METRICS = ("val_loss", "val_loss_synthetic", "val_loss_physical", "param_error",
                 "test_loss", "test_loss_synthetic", "test_loss_physical")


def _schedule_lines(trial) -> list[str]:
    """A PBT trial's settings per epoch segment (``schedule.json``), as the export's header says them;
    the config below replays them (``trainer_params.schedule``). None for a trial of one setting."""
    path = Path(trial.path) / LINEAGE_FILE
    segments = json.loads(path.read_text()) if path.is_file() else []
    if len(segments) < 2:
        return []
    ends = [s["from_epoch"] - 1 for s in segments[1:]] + [trial.epochs]
    return ["# PBT schedule (the settings above are the last segment's; trainer_params.schedule below replays it):",
            *(f"#   epochs {s['from_epoch']}-{end}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in (s["settings"] or {}).items())
              + f" (trained by {s['trained_by']}" + (", exploited its checkpoint" if s["exploit"] else "") + ")"
              for s, end in zip(segments, ends))]


def trials_table(sweep: Sweep, ranked: bool = False) -> pd.DataFrame:
    """One row per trial (outcome, epochs, trial-epochs run, metric, objectives, val_loss and its
    parts, param_error, test metrics, failures, sampled values) in the order they finished;
    ``ranked``: complete trials first, best first. Every trial of every Tune run of the sweep (Ray's
    own readers see one run only before ``hyco tune --resume`` merges them, docs/reliability.md)."""
    spec = sweep.spec
    metrics = list(dict.fromkeys([spec.metric, *spec.objectives, *TABLE_METRICS]))
    table = pd.DataFrame([{"trial_id": t.trial_id, "defaults": bool(t.history and t.history[0].get("defaults")),
                           "outcome": t.outcome(spec.max_t), "epochs": t.epochs,
                           "trial-epochs": t.trial_epochs, **{k: t.value(k) for k in metrics},
                           "failures": t.num_failures, **{k: t.params.get(k) for k in spec.space}}
                          for t in sweep.trials])
    keys = {"_done": table.outcome != "complete", "_value": table[spec.metric] * (1 if spec.mode == "min" else -1)}
    return table.assign(**keys).sort_values(list(keys)).drop(columns=list(keys)) if ranked else table


def sweep_stats(sweep: Sweep) -> dict[str, Any]:
    """What sweeps are compared by: the best complete trial, trials, compute spent and saved by early stopping."""
    spec, table = sweep.spec, trials_table(sweep, ranked=True)
    best = table.iloc[0] if table.outcome.iloc[0] == "complete" else {spec.metric: math.nan, "param_error": math.nan}
    spent, saved = int(table["trial-epochs"].sum()), int((spec.max_t - table.epochs[table.outcome == "stopped"]).sum())
    return {"sweep": sweep.path.name, "scheduler": spec.scheduler.type, "metric": spec.metric, "best": best[spec.metric],
            "param_error": best["param_error"], "trials": len(table), "trial-epochs": spent,
            "saved trial-epochs": saved, "saved %": 100 * saved / max(spent + saved, 1)}


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(map(_fmt, row)) + " |" for row in table.itertuples(index=False)]) + "\n"


def param_importances(study) -> tuple[dict[str, float], str]:
    """Optuna's (fANOVA) importances over complete trials; a note instead when too few."""
    if study is None:
        return {}, "no Optuna study database in this sweep (searcher.storage was null)"
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"parameter importances need at least 2 complete trials; this sweep has {len(complete)}"
    try:
        return dict(optuna.importance.get_param_importances(study)), f"fANOVA over {len(complete)} complete trials"
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return {}, f"parameter importances not available: {exc}"


def plot_curves(sweep: Sweep, ax=None):
    """Each trial's metric per epoch (:func:`hyco_ray.core.figures.plot_curves`: best trial, rungs, exploits marked)."""
    return sweep_figures.plot_curves(sweep, ax)


def plot_compare(sweeps: list[Sweep]):
    """The best complete trial's metric so far against the trial-epochs spent (trials in the order
    they finished), one line per sweep; then each sweep's curves."""
    fig, axes = plt.subplots(1, 1 + len(sweeps), figsize=(7 * (1 + len(sweeps)), 6.5), squeeze=False)
    best = {}
    for sweep, ax in zip(sweeps, axes[0, 1:]):
        table, spec = trials_table(sweep), sweep.spec
        done = table[spec.metric].where(table.outcome == "complete")
        best[f"{sweep.path.name} ({spec.scheduler.type}, {len(table)} trials)"] = (
            table["trial-epochs"].cumsum(), (done.cummin() if spec.mode == "min" else done.cummax()).ffill())
        plot_curves(sweep, ax)
    metric = sweeps[0].spec.metric
    plot_runs(best, xlabel="trial-epochs spent", ylabel=f"best {metric} so far (relative)", step=True, ax=axes[0, 0],
              title=f"best complete trial's {metric} against compute")
    fig.tight_layout()
    return fig


def plot_pareto(sweep: Sweep):
    """The first two objectives of every trial (hollow grey: stopped early or diverged; blue:
    complete), the Pareto front in red, labelled by its settings (* the knee)."""
    spec, front = sweep.spec, sweep.pareto_front()
    x, y = list(spec.objectives)[:2]
    labels = {id(t): f"{t.trial_id}: {short_label(t.params)}" for t in front}
    return plot_front([(t.value(x), t.value(y), t.outcome(spec.max_t) == "complete") for t in sweep.trials],
                      {labels[id(t)]: (t.value(x), t.value(y)) for t in front},
                      knee=labels[id(sweep.knee())] if front else None, xlabel=f"{x} ({spec.objectives[x]})",
                      ylabel=f"{y} ({spec.objectives[y]})", title=f"{sweep.path.name}: Pareto front ({len(front)} "
                      f"trials, red; * knee) of {len(sweep.trials)} trials (hollow: stopped early)")


def plot_study(study, out: Path, sweep: Sweep) -> dict[str, Path]:
    """Importances per objective, slice and parallel-coordinate plots (:mod:`hyco_ray.core.figures`)."""
    return sweep_figures.save_study_figures(sweep, study, out)


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None, compare: list = ()) -> dict[str, Path]:
    """Summary, trials table (CSV and markdown), curves, importances and Optuna's slice and parallel
    plots in ``out_dir`` (default ``<sweep dir>/report``); with ``compare`` (other sweep dirs) also
    ``compare-<last>.csv`` (:func:`sweep_stats` per sweep) and ``.png`` (:func:`plot_compare`)."""
    if out_dir:  # before any work
        check_writable_dir(out_dir, "report directory (-o)", create=True)
    sweep, others = load_sweep(sweep_dir), [load_sweep(d) for d in compare]
    out = check_writable_dir(Path(out_dir) if out_dir else sweep.path / "report", "report directory", create=True)
    table, study = margin_columns(trials_table(sweep, ranked=True), sweep), sweep.study()
    if study is None and sweep.spec.scheduler.type == "pbt" and sweep.spec.searcher.storage == "auto":  # a local copy of a remote one
        study = write_pbt_study(sweep)
    files = {"curves": save(plot_curves(sweep), out / "curves.png"), **plot_study(study, out, sweep),
             **({"pareto": save(plot_pareto(sweep), out / "pareto.png")} if sweep.spec.multi_objective else {}),
             "csv": out / "trials.csv", "markdown": out / "report.md", "importances": out / "importances.json"}
    table.to_csv(files["csv"], index=False)
    importances, note = param_importances(study)
    files["importances"].write_text(json.dumps({"importances": importances, "note": note}, indent=2))
    imp = "\n".join(f"- {k}: {v:.3f}" for k, v in importances.items()) or f"- {note}"
    text = (summary_text(sweep) + "\n## trials\n\n" + _markdown(table) + f"\n## parameter importances ({note})\n\n{imp}\n\n"
            + "".join(f"![{k}]({k}.png)\n" for k in ("pareto", "curves", "importance", "slice", "parallel") if k in files))
    if others:
        stem, stats = f"compare-{others[-1].path.name}", pd.DataFrame([sweep_stats(s) for s in (sweep, *others)])
        stats.to_csv(files.setdefault("compare_csv", out / f"{stem}.csv"), index=False)
        files["compare"] = save(plot_compare([sweep, *others]), out / f"{stem}.png")
        text += f"\n## compared with {', '.join(str(s.path) for s in others)}\n\n{_markdown(stats)}\n![compare]({stem}.png)\n"
    files["markdown"].write_text(text)
    return files
