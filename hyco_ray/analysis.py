"""Read a finished (or interrupted) sweep directory: summary, best-config export, report.

A trial's outcome: ``complete`` (ran all ``max_t`` epochs), ``stopped`` (ASHA ended it early;
its rung is the number of epochs it finished), ``error`` (failed after its retries) or
``diverged`` (a NaN or inf metric; reported as the worst value, not retried) or ``unfinished``
(the sweep was interrupted; ``hyco tune --resume`` continues it).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from hyco.errors import HycoError
from hyco_ray.space import SweepSpec


@dataclass
class TrialRecord:
    trial_id: str
    status: str  # Tune's: TERMINATED, ERROR, PENDING, RUNNING, PAUSED
    params: dict[str, Any]
    history: list[dict]  # one result per epoch, ordered by epoch
    path: str
    num_failures: int = 0

    @property
    def epochs(self) -> int:
        return int(self.history[-1].get("epoch", len(self.history))) if self.history else 0

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    def value(self, metric: str) -> float:
        v = self.final.get(metric)
        return float(v) if isinstance(v, (int, float)) and v is not None else math.nan

    def outcome(self, max_t: int) -> str:
        if self.status == "ERROR":
            return "error"
        if self.status != "TERMINATED":
            return "unfinished"
        if "training_error" in self.final:
            return "diverged"
        return "complete" if self.epochs >= max_t else "stopped"


@dataclass
class Sweep:
    path: Path
    spec: SweepSpec
    trials: list[TrialRecord] = field(default_factory=list)

    def by_outcome(self, outcome: str) -> list[TrialRecord]:
        return [t for t in self.trials if t.outcome(self.spec.max_t) == outcome]

    def best(self, trial_id: str | None = None) -> TrialRecord:
        """The named trial, else the best complete one (all epochs run) by the sweep's metric."""
        if trial_id:
            for t in self.trials:
                if t.trial_id == trial_id or Path(t.path).name == trial_id:
                    return t
            raise HycoError(f"no trial {trial_id!r} in {self.path}")
        metric, sign = self.spec.metric, (1 if self.spec.mode == "min" else -1)
        done = [t for t in self.by_outcome("complete") if math.isfinite(t.value(metric))]
        if not done:
            raise HycoError(f"no trial of {self.path} finished all {self.spec.max_t} epochs with a finite {metric}")
        return min(done, key=lambda t: sign * t.value(metric))


def _read_history(trial_dir: Path) -> list[dict]:
    """Epoch rows of Tune's ``result.json``, completed from the latest checkpoint's history.

    Ray copies the storage's (possibly stale) ``result.json`` over its own when a failed trial
    restarts, so rows reported shortly before a crash can be missing there; every checkpoint
    holds the whole history (written by the trainable), so nothing is lost.
    """
    rows: dict[int, dict] = {}
    checkpoints = sorted(trial_dir.glob("checkpoint_*/history.json"))
    if checkpoints:
        for row in json.loads(checkpoints[-1].read_text()):
            rows[int(row["epoch"])] = row
    path = trial_dir / "result.json"
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[int(row.get("epoch", row.get("training_iteration", len(rows) + 1)))] = row
    return [rows[k] for k in sorted(rows)]


def _trial_states(path: Path) -> dict[str, tuple[dict, dict]]:
    """Tune's record of each trial (status, config, failures) from the JSON experiment states;
    a later run in the same directory (trials added by ``--resume``) adds its own file."""
    states = {}
    for state_file in sorted(path.glob("experiment_state-*.json")):  # timestamped names: oldest first
        for trial_json, run_json in json.loads(state_file.read_text())["trial_data"]:
            trial = json.loads(trial_json)
            states[trial["trial_id"]] = (trial, json.loads(run_json))
    return states


def load_sweep(path: str | Path) -> Sweep:
    """Trials of a local sweep directory, read from JSON only (Tune's experiment states, each
    trial's ``result.json`` and checkpoint history); no pickle in the directory is loaded."""
    from hyco_ray.sweep import load_saved_spec

    path = Path(path).expanduser().resolve()
    spec = load_saved_spec(path)
    states = _trial_states(path)
    if not states:
        raise HycoError(f"{path}: no Tune experiment state (experiment_state-*.json); did a trial start?")
    trials = []
    for trial_id, (t, run) in states.items():
        trial_dir = path / t.get("relative_logdir", f"trial_{trial_id}")
        params = {k: t["config"][k] for k in spec.space if k in t.get("config", {})}
        trials.append(TrialRecord(trial_id, t["status"], params, _read_history(trial_dir), str(trial_dir),
                                  int(run.get("num_failures", 0))))
    trials.sort(key=lambda r: r.path)
    return Sweep(path, spec, trials)


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def summary_text(sweep: Sweep, wall_s: float | None = None) -> str:
    """Best trial and its config, ASHA stops per rung, compute spent in trial-epochs."""
    spec, max_t = sweep.spec, sweep.spec.max_t
    counts = Counter(t.outcome(max_t) for t in sweep.trials)
    lines = [f"## sweep {spec.name}: {sweep.path}", ""]
    wall = f", wall time {wall_s:.0f} s" if wall_s is not None else ""
    lines.append(f"trials: {len(sweep.trials)} started of num_samples {spec.num_samples}: {counts['complete']} complete, "
                 f"{counts['stopped']} stopped early by ASHA, {counts['diverged']} diverged (NaN or inf), {counts['error']} errored, "
                 f"{counts['unfinished']} unfinished{wall}")
    try:
        best = sweep.best()
    except HycoError as exc:
        lines.append(f"best trial: none ({exc})")
    else:
        shown = ", ".join(f"{k} = {_fmt(best.final.get(k))}" for k in (spec.metric, "param_error") if k in best.final)
        lines.append(f"best trial: {best.trial_id} ({best.epochs} epochs): {shown}")
        lines += [f"    {k}={_fmt(v)}" for k, v in best.params.items()]
        lines.append(f"    full config: hyco export {sweep.path} -o best.yaml; rerun: hyco train --config-file best.yaml")
    stopped = Counter(t.epochs for t in sweep.by_outcome("stopped"))
    if spec.scheduler.type != "asha":
        lines.append(f"early stopping: none (scheduler {spec.scheduler.type})")
    elif stopped:
        rungs = ", ".join(f"after {e} epoch{'s' if e > 1 else ''}: {n}" for e, n in sorted(stopped.items()))
        lines.append(f"ASHA stopped {sum(stopped.values())} trials; by rung (epochs completed): {rungs}")
    else:
        lines.append("ASHA stopped no trial")
    spent = sum(len(t.history) for t in sweep.trials)
    saved = sum(max_t - t.epochs for t in sweep.by_outcome("stopped"))
    share = f" ({100 * saved / (spent + saved):.0f}%)" if spent + saved else ""
    retries = sum(t.num_failures for t in sweep.trials)
    lines.append(f"compute: {spent} trial-epochs; early stopping saved {saved} trial-epochs{share}; "
                 f"trial failures retried: {retries}")
    if counts["unfinished"] or len(sweep.trials) < spec.num_samples:
        lines.append(f"interrupted: {counts['unfinished']} trials unfinished, "
                     f"{spec.num_samples - len(sweep.trials)} not started; resume with hyco tune <space.yaml> --resume")
    return "\n".join(lines) + "\n"


def export_best(sweep_dir: str | Path, out: str | Path, trial_id: str | None = None) -> Path:
    """Write the config the best trial ran (saved in its directory); ``hyco train --config-file`` reruns it."""
    sweep = load_sweep(sweep_dir)
    spec, trial = sweep.spec, sweep.best(trial_id)
    saved = Path(trial.path) / "hyco_config.yaml"
    if not saved.is_file():
        raise HycoError(f"{saved} is missing: the trial's config was not saved")
    threads = int(trial.final.get("num_threads", spec.num_threads))
    env = trial.final.get("env", {})
    header = [
        f"# hyco export {datetime.now():%Y-%m-%d %H:%M}: trial {trial.trial_id} of sweep {spec.name} ({sweep.path})",
        f"# {spec.metric} = {_fmt(trial.value(spec.metric))} after {trial.epochs} epochs; "
        + ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items()),
        f"# base config {spec.base!r} with overrides: {' '.join(spec.trial_overrides(trial.params, threads))}",
        "# trial environment: " + ", ".join(f"{k}={v}" for k, v in env.items()),
        f"# trial ran on {trial.final.get('hostname', '?')}, device {trial.final.get('device', 'cpu')}, "
        f"CUDA_VISIBLE_DEVICES={trial.final.get('cuda_visible_devices', '')!r}",
        "# same numbers need the same seed, num_threads, dtype, device and versions",
        "# rerun: hyco train --config-file THIS_FILE",
    ]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header) + "\n" + saved.read_text())
    return out


def trials_table(sweep: Sweep) -> list[dict]:
    spec = sweep.spec
    rows = []
    for t in sweep.trials:
        row = {"trial_id": t.trial_id, "outcome": t.outcome(spec.max_t), "epochs": t.epochs,
               spec.metric: t.value(spec.metric), "param_error": t.value("param_error"), "failures": t.num_failures}
        row.update({k: t.params.get(k) for k in spec.space})
        rows.append(row)
    sign = 1 if spec.mode == "min" else -1
    rows.sort(key=lambda r: (r["outcome"] != "complete", sign * r[spec.metric] if math.isfinite(r[spec.metric]) else math.inf))
    return rows


def _markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no trials)\n"
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(out) + "\n"


def load_study(sweep: Sweep):
    """The sweep's Optuna study from its database; None where the study lived in memory."""
    import optuna

    url = sweep.spec.searcher.storage
    if url == "auto":
        url = f"sqlite:///{sweep.path}/optuna.db" if (sweep.path / "optuna.db").exists() else None
    return optuna.load_study(study_name=sweep.spec.searcher.study_name or sweep.spec.name, storage=url) if url else None


def param_importances(sweep: Sweep) -> tuple[dict[str, float], str]:
    """Optuna's (fANOVA) importances over complete trials; a note instead when too few."""
    import optuna

    study = load_study(sweep)
    if study is None:
        return {}, "no Optuna study database in this sweep (searcher.storage was null)"
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"parameter importances need at least 2 complete trials; this sweep has {len(complete)}"
    try:
        return dict(optuna.importance.get_param_importances(study)), f"fANOVA over {len(complete)} complete trials"
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return {}, f"parameter importances not available: {exc}"


def plot_study(study, out: Path) -> dict[str, Path]:
    """Optuna's own figures: per-epoch curves, importances, slice and parallel-coordinate plots."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    plots = {"curves": vis.plot_intermediate_values, "importance": vis.plot_param_importances,
             "slice": vis.plot_slice, "parallel": vis.plot_parallel_coordinate}
    files = {}
    for name, plot in plots.items() if study is not None else ():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. importances need 2 complete trials
                continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(10, 5)
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        files[name] = out / f"{name}.png"
    return files


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Curves figure, trials table (CSV and markdown), importances and summary in ``out_dir``."""
    sweep = load_sweep(sweep_dir)
    out = Path(out_dir) if out_dir else sweep.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = trials_table(sweep)
    files = {**plot_study(load_study(sweep), out), "csv": out / "trials.csv", "markdown": out / "report.md",
             "importances": out / "importances.json"}
    pd.DataFrame(rows or [{"trial_id": None}]).iloc[: len(rows)].to_csv(files["csv"], index=False)
    importances, note = param_importances(sweep)
    files["importances"].write_text(json.dumps({"importances": importances, "note": note}, indent=2))
    imp = "\n".join(f"- {k}: {v:.3f}" for k, v in importances.items()) or f"- {note}"
    files["markdown"].write_text(
        summary_text(sweep) + "\n## trials\n\n" + _markdown(rows)
        + f"\n## parameter importances ({note})\n\n{imp}\n\n"
        + "".join(f"![{k}]({k}.png)\n" for k in ("curves", "importance", "slice", "parallel") if k in files)
    )
    return files
