"""What ``hyco tune`` prints while a sweep runs: one line per event (a trial starts with its settings,
ends and why, is retried; a new best; a PBT exploit), each end followed by a status line (running,
done by outcome, still to start, best so far, ETA), and none of Ray's noise.

Ray's noise, and what silences it:

* Tune's new output engine prints a "Configuration for experiment" box ("SearchGenerator"), the
  results path and a TensorBoard hint into Ray's temp dir at ``verbose=0`` too
  (``ray/tune/tune.py``, ``experiment_started``): ``RAY_AIR_NEW_OUTPUT=0``, Ray's documented switch
  back to the legacy engine, which at ``verbose=0`` prints nothing. The TensorBoard hint is ours:
  the event files are in the trial directories of the sweep directory.
* the local Ray's "Token authentication is enabled" warning (a Ray of our own, on 127.0.0.1);
  a warning that token auth is *disabled* is kept.
* PBT's multi-line exploit and explore blocks: one line each (:class:`PbtOneLine`).
* ``absl``'s ``mutex.cc ... RAW: Lock blocking`` lines, written by Ray's C++ core straight to the
  driver's stderr: the console process drops them (``hyco_ray.cli.NOISE``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from typing import Any

from ray.tune import Callback

from hyco.evaluation.figures import short_label, short_names
from hyco_ray.core.figures import asha_rungs
from hyco_ray.core.space import SweepSpec
from hyco_ray.core.sweep_dir import trial_dirname


def _token_enabled_note(record: logging.LogRecord) -> bool:
    return "Token authentication is enabled" not in record.getMessage()


def quiet_ray(spec: SweepSpec) -> None:
    """Before Ray starts: Tune's legacy output engine (silent at ``verbose=0``), no token-auth
    warning for our own local Ray, Tune's driver warnings only from ERROR up, PBT's blocks as one
    line each. Safe to call again (filters are replaced, not added twice)."""
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    token = logging.getLogger("ray._private.authentication.authentication_token_setup")
    token.removeFilter(_token_enabled_note)
    token.addFilter(_token_enabled_note)
    # "Resume experiment with: Tuner.restore(...)" (hyco prints its own resume command), "Wrote the latest
    # version of all result files", "Failed to fetch metrics" of trials interrupted before their first epoch
    for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("ray.tune.execution.tune_controller").setLevel(logging.WARNING)  # "Restoring the run from ..."
    pbt = logging.getLogger("ray.tune.schedulers.pbt")
    for old in [f for f in pbt.filters if isinstance(f, PbtOneLine)]:
        pbt.removeFilter(old)
    if spec.scheduler.type == "pbt":
        pbt.addFilter(PbtOneLine(spec))


def _say(line: str, flush: bool = True) -> None:
    """One line of the live view (not a stored ``print``: Tune pickles its callbacks)."""
    print(line, flush=flush)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _g(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class LiveView(Callback):
    """The sweep's console: one line per event, a status line after each trial's end."""

    def __init__(self, spec: SweepSpec, exp_dir: str) -> None:
        self.spec, self.exp_dir = spec, exp_dir
        self.sign = 1.0 if spec.mode == "min" else -1.0
        self.best: tuple[float, str, int] | None = None  # value, trial id, epoch
        self.epochs_run, self.started_at, self.ended = 0, time.time(), {}
        self.last_epoch: dict[str, int] = {}

    # ---- what is shown
    def header(self) -> str:
        spec, sch = self.spec, self.spec.scheduler
        stop = (f"ASHA rung after epoch {', '.join(map(str, asha_rungs(spec)))}" if sch.type == "asha" and asha_rungs(spec)
                else f"PBT every {sch.perturbation_interval} epochs" if sch.type == "pbt" else "no early stopping")
        names = ", ".join(short_names(list(spec.space)).values())
        return (f"sweep {spec.name}: {spec.num_samples} trials of {spec.max_t} epochs, {spec.max_concurrent} at a time, "
                f"{stop}; {spec.mode} {spec.metric}; searching {names}\n"
                f"TensorBoard: tensorboard --logdir {self.exp_dir}")

    def settings(self, trial) -> str:
        return short_label({k: trial.config[k] for k in self.spec.space if k in trial.config})

    def why_ended(self, trial) -> str:
        """finished (all epochs), ASHA-stopped, stopped early (another scheduler), diverged."""
        result = trial.last_result or {}
        if "training_error" in result:
            return "diverged"
        if int(result.get("epoch", 0)) >= self.spec.max_t:
            return "finished"
        return "ASHA-stopped" if self.spec.scheduler.type == "asha" else "stopped early"

    def seed_best(self, trials, reporting=None) -> None:
        """Best so far of trials restored by ``--resume`` (no result of theirs comes again)."""
        for t in trials:
            value = (t.last_result or {}).get(self.spec.metric)
            if t is not reporting and t.trial_id not in self.last_epoch and isinstance(value, (int, float)) and math.isfinite(value):
                self.last_epoch[t.trial_id] = int(t.last_result.get("epoch", 0))
                if self.best is None or self.sign * value < self.sign * self.best[0]:
                    self.best = (float(value), t.trial_id, self.last_epoch[t.trial_id])

    def status(self, trials) -> str:
        """Running, done by outcome, still to start, best so far, ETA."""
        self.seed_best(trials)
        running = sum(t.status == "RUNNING" and t.trial_id not in self.ended for t in trials)  # Tune marks an end after its callbacks
        counts: dict[str, int] = {}
        for t in trials:
            why = self.ended.get(t.trial_id) or (self.why_ended(t) if t.status == "TERMINATED" else
                                                 "errored" if t.status == "ERROR" else None)
            if why:
                counts[why] = counts.get(why, 0) + 1
        done = sum(counts.values())
        to_start = max(self.spec.num_samples - len(trials), 0) + sum(t.status == "PENDING" for t in trials)
        parts = [f"{running} running", f"{done} done" + (f" ({', '.join(f'{n} {w}' for w, n in counts.items())})" if done else ""),
                 f"{to_start} to start"]
        best = f"best {self.spec.metric} {_g(self.best[0])} ({self.best[1]}, epoch {self.best[2]})" if self.best else "no result yet"
        return f"[{_duration(time.time() - self.started_at)}] {', '.join(parts)} | {best} | {self.eta(trials)}"

    def eta(self, trials) -> str:
        """Trial-epochs left at the rate so far; an upper bound under ASHA (stopped trials end early)."""
        if not self.epochs_run:
            return "ETA: after the first epoch"
        left = sum(max(self.spec.max_t - self.last_epoch.get(t.trial_id, 0), 0) for t in trials
                   if t.status in ("RUNNING", "PENDING", "PAUSED"))
        left += max(self.spec.num_samples - len(trials), 0) * self.spec.max_t
        seconds = left * (time.time() - self.started_at) / self.epochs_run
        return f"ETA {'at most ' if self.spec.scheduler.type == 'asha' else ''}{_duration(seconds)}" if left else "ETA: ending"

    # ---- Tune's callback hooks
    def setup(self, **info) -> None:
        """Each (re)start: a resumed Tuner brings this object back from its tuner.pkl, clock and all."""
        self.best, self.epochs_run, self.started_at, self.ended, self.last_epoch = None, 0, time.time(), {}, {}
        _say(self.header(), flush=True)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        _say(f"+ {trial.trial_id} started: {self.settings(trial)}", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.seed_best(trials, trial)
        epoch, value = int(result.get("epoch", 0)), result.get(self.spec.metric)
        if epoch > self.last_epoch.get(trial.trial_id, 0):
            self.epochs_run += 1
        self.last_epoch[trial.trial_id] = epoch
        if isinstance(value, (int, float)) and math.isfinite(value):
            if self.best is None or self.sign * value < self.sign * self.best[0]:
                self.best = (float(value), trial.trial_id, epoch)
                _say(f"* {trial.trial_id} epoch {epoch}: new best {self.spec.metric} {_g(float(value))}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        why = self.ended[trial.trial_id] = self.why_ended(trial)
        result = trial.last_result or {}
        _say(f"- {trial.trial_id} {why} after epoch {result.get('epoch', '?')}: {self.spec.metric} "
                 f"{_g(result.get(self.spec.metric))}", flush=True)
        _say(self.status(trials), flush=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        _say(f"~ {trial.trial_id} failed; retried from its last checkpoint (failure "
                 f"{getattr(trial.run_metadata, 'num_failures', '?')} of {self.spec.max_failures} allowed)", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.ended[trial.trial_id] = "errored"
        _say(f"! {trial.trial_id} errored after its retries: see {self.exp_dir}/{trial_dirname(trial.trial_id)}/error.txt",
             flush=True)
        _say(self.status(trials), flush=True)


class PbtOneLine(logging.Filter):
    """PBT's exploit and explore blocks (a dozen lines each) as one line: who took whose checkpoint,
    both scores, each setting's change. The skipped-exploit note is dropped."""

    EXPLOIT = re.compile(r"Cloning trial (\S+) \(score = (\S+)\) into trial (\S+) \(score = (\S+)\)")
    CHANGE = re.compile(r"^\s*(\S+) : (.+?) -+(?: \((.+?)\) -+)?> (.+)$", re.M)  # "k : 1 --- (* 1.2) --> 1.2"

    def __init__(self, spec: SweepSpec) -> None:
        super().__init__()
        self.spec, self.exploit = spec, None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if found := self.EXPLOIT.search(message):
            self.exploit = found.groups()
            return False
        if "[Explore]" in message and self.exploit:
            donor, donor_score, trial, score = self.exploit
            names = short_names([m[0] for m in self.CHANGE.findall(message)])
            changes = ", ".join(f"{names[k]} {_g(_num(old))} -> {_g(_num(new))}" for k, old, _, new in self.CHANGE.findall(message))
            sign = -1.0 if self.spec.mode == "min" else 1.0  # PBT's score is the metric, negated when minimised
            _say(f"x PBT exploit: {trial} ({self.spec.metric} {_g(sign * float(score))}) takes {donor}'s checkpoint "
                     f"({_g(sign * float(donor_score))}); {changes or 'no setting changed'}", flush=True)
            self.exploit = None
            return False
        return "no checkpoint for trial" not in message


def _num(text: str) -> Any:
    try:
        return float(text) if "." in text or "e" in text else int(text)
    except ValueError:
        return text
