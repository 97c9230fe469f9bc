"""Search-space files (annotated example: ``search_spaces/burgers_quick.yaml``), checked whole before Ray starts.

The fields, types and defaults are the dataclasses below: OmegaConf refuses unknown keys and wrong
types, :func:`check_spec` adds what a type cannot say, :func:`validate_space` composes the config
with every bound and choice. Every mistake is one :class:`SpaceError` naming the file and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import optuna
import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from hyco.config import RunConfig, config_to_dict, load_config, override_value, with_values
from hyco.config.schema import ScheduleStep
from hyco.config.validate import BEST_METRICS, NOT_OBJECTIVES, OBJECTIVE_METRICS, validate
from hyco.config.yamlfile import read_yaml_file
from hyco.errors import ConfigError
from hyco_ray.core.names import (
    CALLBACK_REQUIRES,
    DIRECTIONS,
    MULTI_OBJECTIVE_SAMPLERS,
    SAMPLER_REQUIRES,
    SAMPLERS,
    SINGLE_OBJECTIVE_SAMPLERS,
    build_sampler,
)
from hyco_ray.core.params import PARAM_TYPES, ParamType, param_type
from hyco_ray.core.schedulers import SCHEDULERS, mutable_keys, scheduler_of

__all__ = ["METRICS", "NOT_OBJECTIVES", "PARAM_TYPES", "Param", "SpaceError", "SweepSpec", "load_space", "mutable_keys",
           "parse_space", "sample_params", "validate_space"]

#: metrics a trial reports every epoch that a sweep may optimise (one list, in the config layer)
METRICS = OBJECTIVE_METRICS
#: keys a sweep decides itself; a space or fixed override must not set them
RESERVED = ("run_params.num_threads",)
#: which trials draw their figures: the sweep's pick (at the end), or every complete trial
TRIAL_FIGURES = ("best", "all")
#: seeds per trial at most (``repeats``; they stay far below hyco confirm's fresh seeds, 1000 + i)
MAX_REPEATS = 100


class SpaceError(ConfigError):
    """A search-space file is wrong; the message names the file and the key."""


@dataclass
class Param:
    """One searched key: ``uniform``/``loguniform`` floats, ``int`` (inclusive, optional log), ``choice``."""

    type: str = MISSING
    low: int | float | None = None
    high: int | float | None = None
    values: list[Any] = field(default_factory=list)
    log: bool = False

    @property
    def kind(self) -> ParamType:
        """The type's object (:mod:`hyco_ray.core.params`): its checks, distributions and description."""
        return param_type(self.type)

    def distribution(self):
        """The Optuna distribution of this key."""
        return self.kind.distribution(self)


@dataclass
class SchedulerSpec:
    type: str = "asha"  # a name in hyco_ray.core.schedulers.SCHEDULERS: asha | fifo | pbt
    grace_period: int = 1
    max_t: int | None = None  # defaults to trainer_params.epochs of the base config
    reduction_factor: float = 2.0
    # pbt: every perturbation_interval epochs the worst quantile_fraction of the population takes over
    # a best trial's checkpoint and its settings, each schedulable one perturbed (x0.8 / x1.2, or the
    # next choice) or resampled with resample_probability. Asynchronous PBT: give the population room
    # to run at once (resources.cpu x num_samples <= CPUs), or it runs in waves that never meet
    perturbation_interval: int = 2
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25


@dataclass
class SearcherSpec:
    type: str = "optuna"
    # a name in hyco_ray.core.names.SAMPLERS: tpe | tpe-multivariate | gp | cmaes (one objective) | random | nsga2 (multi-objective only)
    sampler: str = "tpe"
    seed: int = 0
    n_startup_trials: int = 4
    storage: str | None = "auto"  # auto (sqlite in the sweep dir) | sqlite:///... | journal:///... | null (in memory)
    study_name: str | None = None  # defaults to the sweep name


@dataclass
class ResourceSpec:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass
class MlflowSpec:
    """Ray's MLflow logger (``callbacks: [mlflow]``): one MLflow run per trial."""

    tracking_uri: str | None = None  # default: a file store <sweep dir>/mlruns
    experiment_name: str | None = None  # default: the sweep name


@dataclass
class SweepSpec:
    name: str = MISSING
    base: str = MISSING
    space: dict[str, Param] = MISSING
    overrides: list[str] = field(default_factory=list)
    metric: str = "val_loss"
    mode: str = "min"
    # which epoch's value a trial reports: "last" (the epoch just trained) or "best" (the best val
    # epoch so far by metric, whose state the trainer keeps: trainer_params.keep_best; export and
    # evaluate then use that state; the epoch's own values are reported beside it as raw_<key>)
    objective_epoch: str = "last"
    # the defaults trained on this many extra seeds (run_params.seed = data.seed = 2000 + i) after the
    # search, on the same Ray: the objective's seed spread, against which every trial's margin over the
    # defaults is read (hyco_ray.core.noise); 0: none
    noise_seeds: int = 3
    # which trials draw figures/ (losses, theta, predictions; about 1 s of a trial's CPU each): "best",
    # the sweep's pick (hyco export's: the best complete trial, or the knee), drawn from its checkpoint
    # when the sweep ends; "all": every complete trial at its last epoch (a remote storage_path: always)
    trial_figures: str = "best"
    # seeds inside a trial: each trial trains its setting on r seeds in lock-step (seed i: run_params.seed + i
    # and data.seed + i) and reports their mean each epoch, so ASHA and the searcher see a mean; cost x r
    repeats: int = 1
    # several metrics (>= 2) and their modes: a multi-objective study, a Pareto front; metric/mode
    # stay the scalar that ASHA and the "best trial" use (by default val_loss, the geometric mean)
    objectives: dict[str, str] = field(default_factory=dict)
    num_samples: int = 8
    max_concurrent: int = 2
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    searcher: SearcherSpec = field(default_factory=SearcherSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    callbacks: list[str] = field(default_factory=list)  # names in hyco_ray.core.names.CALLBACK_REQUIRES: mlflow
    mlflow: MlflowSpec = field(default_factory=MlflowSpec)
    max_failures: int = 2
    storage_path: str = "sweeps"
    checkpoint_period_s: float = 10.0  # experiment-state snapshots: what a hard kill can lose
    # the base config's own values of the searched keys (filled by validate_space, not by hand):
    # the searcher's first point, so a sweep always holds the defaults to compare its best with
    defaults: dict[str, Any] = field(default_factory=dict)
    source: ClassVar[str] = "search space"  # the file it came from (set per instance; not a field)

    @property
    def num_threads(self) -> int:
        """torch threads of one trial: its CPU share, at least 1."""
        return max(1, int(self.resources.cpu))

    @property
    def multi_objective(self) -> bool:
        return bool(self.objectives)

    @property
    def directions(self) -> list[str]:
        """Optuna's study directions: one per objective, else the metric's."""
        modes = list(self.objectives.values()) or [self.mode]
        return [DIRECTIONS[m] for m in modes]

    @property
    def max_t(self) -> int:
        assert self.scheduler.max_t is not None, "call validate_space first"
        return self.scheduler.max_t

    def trial_overrides(self, params: dict[str, Any], threads: int | None = None) -> list[str]:
        """Fixed overrides, then the trial's sampled values, then its thread count: what
        ``hyco train`` needs to rebuild a trial's config exactly."""
        values = [f"{k}={override_value(params[k])}" for k in self.space if k in params]
        best = [f"trainer_params.keep_best={self.metric}"] if self.objective_epoch == "best" else []
        return [*self.overrides, *best, *values, f"run_params.num_threads={threads or self.num_threads}"]

    def trial_config(self, params: dict[str, Any], schedule: Sequence[ScheduleStep] = (),
                     threads: int | None = None) -> RunConfig:
        """A trial's run config, the typed way: the base with the fixed overrides (text, as the user
        wrote them), then each sampled value set as the value it is (:func:`hyco.config.with_values`),
        then the whole checked once. It equals ``load_config(base, trial_overrides(params))``, which
        stays the command that reruns the trial. A config-group key (``model/synthetic``) names a
        file, so Hydra composes it from text."""
        groups = {k: v for k, v in params.items() if k in self.space and "/" in k}
        values = {k: self.space[k].kind.coerce(v) for k, v in params.items() if k in self.space and "/" not in k}
        cfg = with_values(composed(self.base, self.trial_overrides(groups, threads)), values)
        cfg.trainer_params.schedule = list(schedule)
        validate(cfg)
        return cfg

    def to_dict(self) -> dict:
        data = OmegaConf.to_container(OmegaConf.structured(self))
        data["space"] = {k: {f: v for f, v in p.items() if v is not None and v is not False and v != []} for k, p in data["space"].items()}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


#: base configs composed in this process (a reused sweep worker composes its trials' base once, not once
#: per trial: Hydra's compose is about 0.2 s, bench/sweep_overhead.py); the last few, by base and overrides
COMPOSED_KEPT = 4
_composed: dict[tuple, RunConfig] = {}


def composed(base: str, overrides: Sequence[str]) -> RunConfig:
    """``load_config(base, overrides, check=False)``, composed once per process: a copy each call (a
    base given as a file is composed again when the file changed)."""
    path = Path(base)
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.suffix in (".yaml", ".yml") and path.is_file() else ()
    key = (base, tuple(overrides), *stamp)
    if key not in _composed:
        while len(_composed) >= COMPOSED_KEPT:
            _composed.pop(next(iter(_composed)))
        _composed[key] = load_config(base, list(overrides), check=False)
    return copy.deepcopy(_composed[key])


def _fail(where: str, key: str, msg: str) -> None:
    raise SpaceError(f"{where}: {key}: {msg}")


def _omegaconf_error(where: str, exc: OmegaConfBaseException) -> SpaceError:
    """OmegaConf's verdict as one line: the file, the key, and what is allowed."""
    key = exc.full_key or "(top level)"
    if isinstance(exc, (ConfigKeyError, ConfigAttributeError)) and dataclasses.is_dataclass(exc.object_type):
        allowed = ", ".join(f.name for f in dataclasses.fields(exc.object_type))
        return SpaceError(f"{where}: {key}: unknown key; allowed: {allowed}")
    if isinstance(exc, MissingMandatoryValue):
        return SpaceError(f"{where}: {key}: missing (required)")
    return SpaceError(f"{where}: {key}: {str(exc).splitlines()[0]}")


def parse_space(data: Any, where: str = "search space", overrides: list[str] = ()) -> SweepSpec:
    """Types and rules of a search-space mapping (no config composition yet) with ``key=value`` overrides:
    of a space field (``num_samples=16``, ``space.trainer_params.alpha.high=0.5``), else of every trial's config."""
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: must be a mapping of sweep fields, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(SweepSpec)}
    try:
        node = OmegaConf.merge(OmegaConf.structured(SweepSpec), data)
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep or not key:
                _fail(where, item, "an override must be key=value")
            value = yaml.safe_load(text) if text else None
            if key.split(".")[0] not in fields:
                node.overrides.append(item)
            elif key.startswith("space."):
                param, _, attr = key[len("space."):].rpartition(".")
                if param not in node.space:
                    _fail(where, key, f"no searched key {param!r}; searched: {', '.join(node.space)}")
                node.space[param][attr] = value
            else:
                OmegaConf.update(node, key, value, merge=True)
        spec = OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        raise _omegaconf_error(where, exc) from None
    spec.source = where
    check_spec(spec, where)
    return spec


def _check_param(where: str, key: str, p: Param) -> None:
    loc = f"space.{key}"
    if p.type not in PARAM_TYPES:
        _fail(where, f"{loc}.type", f"is {p.type!r}, must be one of {PARAM_TYPES.names()}")
    if mistake := p.kind.check(p):
        field_, message = mistake
        _fail(where, f"{loc}.{field_}" if field_ else loc, message)


#: a sweep larger than this is a typo (each trial leaves a directory, a study row and a line in every view)
MAX_NUM_SAMPLES = 10_000
#: more noise runs than this cost more than most searches; a spread is well estimated long before
MAX_NOISE_SEEDS = 100


def check_spec(spec: SweepSpec, where: str) -> None:
    """What the types cannot say: ranges, registered names, reserved and duplicated keys."""
    if not spec.name or not spec.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        _fail(where, "name", f"{spec.name!r}: use letters, digits, '-', '_' and '.' only (it names a directory)")
    sch, sea, res = spec.scheduler, spec.searcher, spec.resources
    rules = [  # key, value, ok, rule
        ("metric", spec.metric, spec.metric in METRICS, f"one of {list(METRICS)}"
         + (" (it needs the true θ*: reported for benchmarks, never an objective)" if spec.metric in NOT_OBJECTIVES else "")),
        ("mode", spec.mode, spec.mode in DIRECTIONS, "min or max"),
        ("objective_epoch", spec.objective_epoch, spec.objective_epoch in ("last", "best"), "last or best"),
        ("trial_figures", spec.trial_figures, spec.trial_figures in TRIAL_FIGURES, " or ".join(TRIAL_FIGURES)),
        ("noise_seeds", spec.noise_seeds, spec.noise_seeds == 0 or 2 <= spec.noise_seeds <= MAX_NOISE_SEEDS,
         f"0 (no noise runs) or 2 to {MAX_NOISE_SEEDS} (a spread needs 2 seeds)"),
        ("repeats", spec.repeats, 1 <= spec.repeats <= MAX_REPEATS, f"1 to {MAX_REPEATS} (seeds trained per trial)"),
        ("num_samples", spec.num_samples, 1 <= spec.num_samples <= MAX_NUM_SAMPLES,
         f"1 to {MAX_NUM_SAMPLES:,} (split a larger search into sweeps)"),
        ("max_concurrent", spec.max_concurrent, spec.max_concurrent >= 1, ">= 1"),
        ("max_failures", spec.max_failures, spec.max_failures >= -1, ">= 0 (or -1: retry forever)"),
        ("checkpoint_period_s", spec.checkpoint_period_s, 0 < spec.checkpoint_period_s < math.inf, "> 0"),
        ("scheduler.type", sch.type, sch.type in SCHEDULERS, f"one of {SCHEDULERS.names()}"),
        ("scheduler.grace_period", sch.grace_period, sch.grace_period >= 1, ">= 1"),
        ("scheduler.reduction_factor", sch.reduction_factor, sch.reduction_factor > 1, "> 1"),
        ("searcher.type", sea.type, sea.type == "optuna", "optuna"),
        ("searcher.sampler", sea.sampler, sea.sampler in SAMPLERS, f"one of {SAMPLERS.names()}"),
        ("searcher.n_startup_trials", sea.n_startup_trials, sea.n_startup_trials >= 0, ">= 0"),
        ("searcher.storage", sea.storage, sea.storage in (None, "auto") or "://" in sea.storage,
         "auto, null, a database URL such as sqlite:////abs/path/study.db, or an Optuna journal file "
         "journal:///abs/path/study.log"),
        ("resources.cpu", res.cpu, res.cpu > 0, "> 0 (fractions allowed)"),
        ("resources.gpu", res.gpu, res.gpu >= 0 and (res.gpu <= 1 or res.gpu == int(res.gpu)),
         ">= 0: a fraction of one GPU or a whole number"),
    ]
    for key, value, ok, rule in rules:
        if not ok:
            _fail(where, key, f"is {value!r}, must be {rule}")
    if spec.objective_epoch == "best" and (spec.metric not in BEST_METRICS or spec.mode != "min"):
        _fail(where, "objective_epoch", f"best keeps the state of the epoch with the lowest val metric: metric must be "
              f"one of {list(BEST_METRICS)} with mode min (it is {spec.mode} {spec.metric})")
    if mistake := scheduler_of(spec).check(spec):
        _fail(where, *mistake)
    for name, mode in spec.objectives.items():
        if name not in METRICS:
            why = "needs the true θ*: reported for benchmarks, never an objective" if name in NOT_OBJECTIVES else \
                "is not a metric the trainer reports"
            _fail(where, f"objectives.{name}", f"{why}; objectives are among {list(METRICS)}")
        if mode not in DIRECTIONS:
            _fail(where, f"objectives.{name}", f"mode is {mode!r}, must be min or max")
    if len(spec.objectives) == 1:
        _fail(where, "objectives", f"names one metric ({next(iter(spec.objectives))}); a multi-objective sweep needs at "
              "least 2 (for one, set metric and mode instead)")
    if spec.searcher.sampler in MULTI_OBJECTIVE_SAMPLERS and not spec.objectives:
        _fail(where, "searcher.sampler", f"{spec.searcher.sampler} is multi-objective: name objectives (>= 2), or use "
              f"one of {[n for n in SAMPLERS.names() if n not in MULTI_OBJECTIVE_SAMPLERS]}")
    if spec.searcher.sampler in SINGLE_OBJECTIVE_SAMPLERS and spec.objectives:
        _fail(where, "searcher.sampler", f"{spec.searcher.sampler} takes one objective: drop objectives, or use "
              f"one of {[n for n in SAMPLERS.names() if n not in SINGLE_OBJECTIVE_SAMPLERS]}")
    module = SAMPLER_REQUIRES.get(spec.searcher.sampler)
    if module and importlib.util.find_spec(module) is None:
        _fail(where, "searcher.sampler", f"{spec.searcher.sampler} needs the {module} package: pip install 'hyco-ray[bench]'")
    for name in spec.callbacks:
        if name not in CALLBACK_REQUIRES:
            _fail(where, "callbacks", f"{name!r} is not a callback; known: {sorted(CALLBACK_REQUIRES)}")
        module = CALLBACK_REQUIRES[name]
        if module and importlib.util.find_spec(module) is None:
            _fail(where, "callbacks", f"{name} needs the {module} package: pip install 'hyco-ray[{name}]'")
    if not spec.space:
        _fail(where, "space", "must map at least one config key to a distribution")
    for key, param in spec.space.items():
        _check_param(where, key, param)
        if key in RESERVED:
            _fail(where, f"space.{key}", "is set by the sweep from resources.cpu; do not search it")
        if key == "trainer_params.epochs":
            _fail(where, f"space.{key}", "the number of epochs is the scheduler's max_t; set it in overrides")
    for item in spec.overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if not sep:
            _fail(where, f"overrides ({item})", "must be key=value")
        if item.startswith("~") or value == "":
            _fail(where, f"overrides ({item})", "deleting keys is not supported; set a value")
        if key in RESERVED:
            _fail(where, f"overrides ({item})", "run_params.num_threads is set from resources.cpu")
        if key == "trainer_params.keep_best":
            _fail(where, f"overrides ({item})", "set objective_epoch: best (it keeps the best epoch by metric)")
        if key in spec.space:
            _fail(where, f"overrides ({item})", f"{key} is also in space; keep it in one place")


def validate_space(spec: SweepSpec) -> SweepSpec:
    """Compose the base config with the fixed overrides and with every bound/choice applied; fill
    ``scheduler.max_t`` (the epochs) and make ``data.cache_dir`` absolute (trials run in their own cwd)."""
    def with_value(key: str, value: Any):  # Hydra composes a config group; a plain key is set on the base
        if "/" in key:
            return load_config(spec.base, spec.trial_overrides({key: value}))
        cfg = with_values(base, {key: value})
        validate(cfg)
        return cfg

    where = spec.source
    try:
        base = load_config(spec.base, spec.trial_overrides({}))
    except ConfigError as exc:
        _fail(where, "base" if "no config named" in str(exc) else "overrides", str(exc))
    for key, param in spec.space.items():
        for value in param.kind.extremes(param):
            try:
                cfg = with_value(key, value)
            except ConfigError as exc:
                _fail(where, f"space.{key}", f"value {value!r} rejected by config {spec.base!r}: {exc}")
            if cfg.trainer_params.epochs != base.trainer_params.epochs:
                _fail(where, f"space.{key}", f"value {value!r} changes trainer_params.epochs, the scheduler's max_t; "
                      "every trial must run the same epochs")
    spec.defaults = default_params(spec, base)
    epochs = base.trainer_params.epochs
    if spec.scheduler.max_t is None:
        spec.scheduler.max_t = epochs
    elif spec.scheduler.max_t != epochs:
        _fail(where, "scheduler.max_t", f"is {spec.scheduler.max_t}, but trainer_params.epochs is {epochs}: they must "
              "agree (set max_t by overriding trainer_params.epochs, or leave max_t out)")
    if mistake := scheduler_of(spec).check_epochs(spec, epochs):
        _fail(where, *mistake)
    if spec.scheduler.grace_period > epochs:
        _fail(where, "scheduler.grace_period", f"is {spec.scheduler.grace_period}, more than max_t = {epochs}")
    cache = Path(base.data.cache_dir).expanduser().resolve()
    spec.overrides = [o for o in spec.overrides if o.split("=", 1)[0].lstrip("+") != "data.cache_dir"]
    spec.overrides.append(f"data.cache_dir={override_value(str(cache))}")
    return spec


def default_params(spec: SweepSpec, base) -> dict[str, Any]:
    """The base config's values of the searched keys, each checked to lie in its space: the defaults
    are the sweep's first trial, so a space that excludes them is a mistake. A config-group key
    (``model/synthetic``) has no plain value: a space with one has no defaults trial."""
    if any("/" in key for key in spec.space):
        return {}
    data, found = OmegaConf.create(config_to_dict(base)), {}
    for key, p in spec.space.items():
        value = OmegaConf.select(data, key)
        if not p.kind.contains(p, value):
            _fail(spec.source, f"space.{key}", f"the default {value!r} of {spec.base!r} (with the overrides) is outside "
                  f"the space {p.kind.describe(p)}: the defaults are the first trial; widen the space or set the "
                  "default in overrides")
        found[key] = p.kind.coerce(value)
    return found


def load_space(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    """Read, parse and validate a search-space file with command-line ``key=value`` overrides applied."""
    path = Path(path)
    try:
        data = read_yaml_file(path, "search space file")
    except ConfigError as exc:  # a directory, binary, oversized, a YAML bomb or broken YAML: one line
        raise SpaceError(str(exc)) from None
    return validate_space(parse_space(data, str(path), list(overrides)))


def proposals(spec: SweepSpec, n: int, seed: int | None = None) -> list[dict[str, Any]]:
    """The searcher's first ``n`` points, no Ray: the defaults (enqueued first, as ``build_searcher`` does)
    then the sampler's draws (``searcher.seed`` unless ``seed``)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=build_sampler(spec, seed), directions=spec.directions)
    if spec.defaults:
        study.enqueue_trial(spec.defaults)
    dists = {key: p.distribution() for key, p in spec.space.items()}
    return [study.ask(dists).params for _ in range(n)]


def sample_params(spec: SweepSpec, seed: int | None = None) -> dict[str, Any]:
    """The sweep's first trial (the defaults where it has them); with ``seed``, a fresh draw of its sampler."""
    if seed is None:
        return proposals(spec, 1)[0]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=build_sampler(spec, seed), directions=spec.directions)
    return study.ask({key: p.distribution() for key, p in spec.space.items()}).params
