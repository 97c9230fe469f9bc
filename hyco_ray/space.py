"""Search-space files: load, check whole before Ray starts, turn into Optuna distributions.

A file names a base config, fixed overrides, the searched keys (the same ``key=value`` paths as
``hyco train``), the metric, scheduler, searcher, per-trial resources and where results go; the
fields and defaults are the dataclasses below, an annotated example is
``search_spaces/burgers_quick.yaml``. Every mistake becomes one :class:`SpaceError` naming the key.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyco.errors import ConfigError

#: metrics a trial reports every epoch that a sweep may optimise
METRICS = ("val_loss", "val_loss_synthetic", "val_loss_physical", "param_error", "train_loss")
PARAM_TYPES = ("uniform", "loguniform", "int", "choice")
#: keys a sweep decides itself; a space or fixed override must not set them
RESERVED = ("run_params.num_threads",)


class SpaceError(ConfigError):
    """A search-space file is wrong; the message names the file and the key."""


@dataclass
class Param:
    """One searched key: ``uniform``/``loguniform`` floats, ``int`` (inclusive, optional log), ``choice``."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    values: list[Any] = field(default_factory=list)
    log: bool = False

    def candidates(self) -> list[Any]:
        """The values checked against the config: both bounds, or every choice."""
        return list(self.values) if self.type == "choice" else [self.low, self.high]

    def distribution(self):
        """The Optuna distribution of this key."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type == "choice":
            return CategoricalDistribution(tuple(self.values))
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.type == "loguniform")


@dataclass
class SchedulerSpec:
    type: str = "asha"  # asha | fifo
    grace_period: int = 1
    max_t: int | None = None  # defaults to trainer_params.epochs of the base config
    reduction_factor: float = 2.0


@dataclass
class SearcherSpec:
    type: str = "optuna"
    sampler: str = "tpe"  # tpe | random
    seed: int = 0
    n_startup_trials: int = 4
    storage: str | None = "auto"  # auto (sqlite in the sweep dir) | sqlite:///... | null (in memory)
    study_name: str | None = None  # defaults to the sweep name


@dataclass
class ResourceSpec:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass
class SweepSpec:
    name: str
    base: str
    space: dict[str, Param]
    overrides: list[str] = field(default_factory=list)
    metric: str = "val_loss"
    mode: str = "min"
    num_samples: int = 8
    max_concurrent: int = 2
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    searcher: SearcherSpec = field(default_factory=SearcherSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    max_failures: int = 2
    storage_path: str = "sweeps"
    checkpoint_period_s: float = 10.0  # experiment-state snapshots: what a hard kill can lose
    source: str = ""  # the file it came from

    @property
    def num_threads(self) -> int:
        """torch threads of one trial: its CPU share, at least 1."""
        return max(1, int(self.resources.cpu))

    @property
    def max_t(self) -> int:
        assert self.scheduler.max_t is not None, "call validate_space first"
        return self.scheduler.max_t

    def trial_overrides(self, params: dict[str, Any], threads: int | None = None) -> list[str]:
        """Fixed overrides, then the trial's sampled values, then its thread count: what
        ``hyco train`` needs to rebuild a trial's config exactly."""
        values = [f"{k}={format_value(params[k])}" for k in self.space if k in params]
        return [*self.overrides, *values, f"run_params.num_threads={threads or self.num_threads}"]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["space"] = {k: {f: v for f, v in asdict(p).items() if f != "key" and v is not None and v != [] and v is not False}
                         for k, p in self.space.items()}
        data.pop("source")
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def format_value(value: Any) -> str:
    """A Python value as a Hydra override value (floats round-trip exactly)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if hasattr(value, "item"):  # numpy scalar
        return format_value(value.item())
    text = str(value)
    if text.replace("_", "").replace("-", "").replace(".", "").replace("/", "").isalnum():
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_TOP = {"name", "base", "overrides", "space", "metric", "mode", "num_samples", "max_concurrent", "scheduler",
        "searcher", "resources", "max_failures", "storage_path", "checkpoint_period_s"}


def _fail(where: str, key: str, msg: str) -> None:
    raise SpaceError(f"{where}: {key}: {msg}")


def _check_keys(where: str, prefix: str, data: Any, allowed: set[str]) -> dict:
    if not isinstance(data, dict):
        _fail(where, prefix, f"must be a mapping, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            _fail(where, f"{prefix}.{key}" if prefix else str(key), f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return data


def _number(where: str, key: str, value: Any, integer: bool = False) -> float | int:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        _fail(where, key, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    return value


def _parse_param(where: str, key: str, raw: Any) -> Param:
    loc = f"space.{key}"
    raw = _check_keys(where, loc, raw, {"type", "low", "high", "values", "log"})
    kind = raw.get("type")
    if kind not in PARAM_TYPES:
        _fail(where, f"{loc}.type", f"is {kind!r}, must be one of {list(PARAM_TYPES)}")
    if kind == "choice":
        extra = {"low", "high", "log"} & set(raw)
        if extra:
            _fail(where, f"{loc}.{sorted(extra)[0]}", "not allowed for type choice (use values)")
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            _fail(where, f"{loc}.values", f"must be a non-empty list, got {values!r}")
        if len({repr(v) for v in values}) != len(values):
            _fail(where, f"{loc}.values", f"repeats a value: {values!r}")
        for v in values:
            if not (v is None or isinstance(v, (bool, int, float, str))):
                _fail(where, f"{loc}.values", f"choices must be numbers, strings, booleans or null, got {v!r}")
        return Param(key, kind, values=values)
    if "values" in raw:
        _fail(where, f"{loc}.values", f"not allowed for type {kind} (use low/high)")
    for bound in ("low", "high"):
        if bound not in raw:
            _fail(where, f"{loc}.{bound}", f"missing (type {kind} needs low and high)")
        _number(where, f"{loc}.{bound}", raw[bound], integer=kind == "int")
    low, high = raw["low"], raw["high"]
    log = raw.get("log", False)
    if not isinstance(log, bool) or (log and kind != "int"):
        _fail(where, f"{loc}.log", "only `log: true|false` on type int (use type loguniform for floats)")
    if low >= high:
        _fail(where, f"{loc}", f"low ({low!r}) must be < high ({high!r})")
    if (kind == "loguniform" or log) and low <= 0:
        _fail(where, f"{loc}.low", f"is {low!r}, but a log scale needs low > 0")
    return Param(key, kind, low=low, high=high, log=log)


def _typed(where: str, section: str, raw: Any, cls: type) -> Any:
    """A section as its dataclass: unknown keys refused, numbers checked against the defaults' types."""
    raw = _check_keys(where, section, raw or {}, set(cls.__dataclass_fields__))
    for key, value in raw.items():
        default = cls.__dataclass_fields__[key].default
        if value is not None and isinstance(default, (int, float)) and not isinstance(default, bool):
            _number(where, f"{section}.{key}", value, integer=isinstance(default, int))
    return cls(**raw)


def parse_space(data: Any, where: str = "search space") -> SweepSpec:
    """Structure and types of a search-space mapping (no config composition yet)."""
    data = _check_keys(where, "", data, _TOP)
    for key in ("name", "base", "space"):
        if key not in data:
            _fail(where, key, "missing")
    for key in ("name", "base", "metric", "mode", "storage_path"):
        if key in data and not isinstance(data[key], str):
            _fail(where, key, f"must be a string, got {data[key]!r}")
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        _fail(where, "overrides", f"must be a list of key=value strings, got {overrides!r}")
    space_raw = data["space"]
    if not isinstance(space_raw, dict) or not space_raw:
        _fail(where, "space", "must map at least one config key to a distribution")
    space = {str(k): _parse_param(where, str(k), v) for k, v in space_raw.items()}
    for name in ("num_samples", "max_concurrent", "max_failures"):
        if name in data:
            _number(where, name, data[name], integer=True)
    spec = SweepSpec(
        name=data["name"], base=data["base"], space=space, overrides=list(overrides),
        metric=data.get("metric", "val_loss"), mode=data.get("mode", "min"),
        num_samples=data.get("num_samples", 8), max_concurrent=data.get("max_concurrent", 2),
        scheduler=_typed(where, "scheduler", data.get("scheduler"), SchedulerSpec),
        searcher=_typed(where, "searcher", data.get("searcher"), SearcherSpec),
        resources=_typed(where, "resources", data.get("resources"), ResourceSpec),
        max_failures=data.get("max_failures", 2), storage_path=data.get("storage_path", "sweeps"),
        checkpoint_period_s=_number(where, "checkpoint_period_s", data.get("checkpoint_period_s", 10.0)),
        source=where,
    )
    _check_settings(spec, where)
    return spec


def _check_settings(spec: SweepSpec, where: str) -> None:
    if not spec.name or not spec.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        _fail(where, "name", f"{spec.name!r}: use letters, digits, '-', '_' and '.' only (it names a directory)")
    sch, sea, res = spec.scheduler, spec.searcher, spec.resources
    rules = [  # key, value, ok, rule
        ("metric", spec.metric, spec.metric in METRICS, f"one of {list(METRICS)}"),
        ("mode", spec.mode, spec.mode in ("min", "max"), "min or max"),
        ("num_samples", spec.num_samples, spec.num_samples >= 1, ">= 1"),
        ("max_concurrent", spec.max_concurrent, spec.max_concurrent >= 1, ">= 1"),
        ("max_failures", spec.max_failures, spec.max_failures >= -1, ">= 0 (or -1: retry forever)"),
        ("checkpoint_period_s", spec.checkpoint_period_s, spec.checkpoint_period_s > 0, "> 0"),
        ("scheduler.type", sch.type, sch.type in ("asha", "fifo"), "asha or fifo"),
        ("scheduler.grace_period", sch.grace_period, sch.grace_period >= 1, ">= 1"),
        ("scheduler.reduction_factor", sch.reduction_factor, sch.reduction_factor > 1, "> 1"),
        ("searcher.type", sea.type, sea.type == "optuna", "optuna"),
        ("searcher.sampler", sea.sampler, sea.sampler in ("tpe", "random"), "tpe or random"),
        ("searcher.n_startup_trials", sea.n_startup_trials, sea.n_startup_trials >= 0, ">= 0"),
        ("searcher.storage", sea.storage, sea.storage in (None, "auto") or (isinstance(sea.storage, str) and "://" in sea.storage),
         "auto, null or a database URL such as sqlite:////abs/path/study.db"),
        ("resources.cpu", res.cpu, res.cpu > 0, "> 0 (fractions allowed)"),
        ("resources.gpu", res.gpu, res.gpu >= 0 and (res.gpu <= 1 or res.gpu == int(res.gpu)), ">= 0: a fraction of one GPU or a whole number"),
    ]
    for key, value, ok, rule in rules:
        if not ok:
            _fail(where, key, f"is {value!r}, must be {rule}")
    for key in spec.space:
        if key in RESERVED:
            _fail(where, f"space.{key}", "is set by the sweep from resources.cpu; do not search it")
        if key == "trainer_params.epochs":
            _fail(where, f"space.{key}", "the number of epochs is the scheduler's max_t; set it in overrides")
    for item in spec.overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if item.startswith("~") or item.split("=", 1)[1] == "":
            _fail(where, f"overrides ({item})", "deleting keys is not supported; set a value")
        if key in RESERVED:
            _fail(where, f"overrides ({item})", "run_params.num_threads is set from resources.cpu")
        if key in spec.space:
            _fail(where, f"overrides ({item})", f"{key} is also in space; keep it in one place")


def validate_space(spec: SweepSpec) -> SweepSpec:
    """Compose the base config with the fixed overrides and with every bound/choice applied.

    Fills ``scheduler.max_t`` (the base config's epochs) and makes ``data.cache_dir`` absolute,
    since Ray runs trials in their own working directory.
    """
    from omegaconf import OmegaConf

    from hyco.config import config_from_dict, config_to_dict, load_config

    def with_value(key: str, value: Any):  # Hydra composes a config group; a plain key is set on the base
        if "/" in key:
            return load_config(spec.base, spec.trial_overrides({key: value}))
        data = OmegaConf.create(config_to_dict(base))
        OmegaConf.update(data, key, value, merge=False)
        return config_from_dict(OmegaConf.to_container(data))

    where = spec.source or "search space"
    try:
        base = load_config(spec.base, spec.trial_overrides({}))
    except ConfigError as exc:
        key = "base" if "no config named" in str(exc) else "overrides"
        _fail(where, key, str(exc))
    for key, param in spec.space.items():
        for value in param.candidates():
            try:
                cfg = with_value(key, value)
            except ConfigError as exc:
                _fail(where, f"space.{key}", f"value {value!r} rejected by config {spec.base!r}: {exc}")
            if cfg.trainer_params.epochs != base.trainer_params.epochs:
                _fail(where, f"space.{key}", f"value {value!r} changes trainer_params.epochs, the scheduler's max_t; "
                      "every trial must run the same epochs")
    epochs = base.trainer_params.epochs
    if spec.scheduler.max_t is None:
        spec.scheduler.max_t = epochs
    elif spec.scheduler.max_t != epochs:
        _fail(where, "scheduler.max_t", f"is {spec.scheduler.max_t}, but trainer_params.epochs is {epochs}: they must agree "
              "(set max_t by overriding trainer_params.epochs, or leave max_t out)")
    if spec.scheduler.grace_period > epochs:
        _fail(where, "scheduler.grace_period", f"is {spec.scheduler.grace_period}, more than max_t = {epochs}")
    cache = Path(base.data.cache_dir).expanduser().resolve()
    spec.overrides = [o for o in spec.overrides if o.split("=", 1)[0].lstrip("+") != "data.cache_dir"]
    spec.overrides.append(f"data.cache_dir={format_value(str(cache))}")
    return spec


def apply_overrides(data: dict, items: list[str], where: str) -> dict:
    """``key=value`` on the command line: a space field (``num_samples=16``, ``scheduler.grace_period=2``,
    ``space.trainer_params.alpha.high=0.5``) or else a config override for every trial."""
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            _fail(where, item, "an override must be key=value")
        value = yaml.safe_load(text) if text else None
        if key.startswith("space."):
            param, _, attr = key[len("space."):].rpartition(".")
            if param not in data.get("space", {}):
                _fail(where, key, f"no searched key {param!r}; searched: {', '.join(data.get('space', {}))}")
            data["space"][param][attr] = value
        elif key.split(".")[0] in _TOP:
            *path, last = key.split(".")
            node = data
            for part in path:
                node = node.setdefault(part, {})
            node[last] = value
        else:
            data["overrides"] = [*data.get("overrides", []), item]
    return data


def load_space(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    """Read, parse and validate a search-space file with command-line ``key=value`` overrides applied."""
    path = Path(path)
    if not path.is_file():
        raise SpaceError(f"search space file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = apply_overrides(data, list(overrides), str(path))
    spec = parse_space(data, where=str(path))
    return validate_space(spec)


def spec_from_dict(data: dict) -> SweepSpec:
    """A spec saved in a sweep directory (already validated when the sweep started)."""
    return parse_space(data, where="hyco_sweep.yaml")


def sample_params(spec: SweepSpec, seed: int | None = None) -> dict[str, Any]:
    """The sweep's first trial: its own sampler (``searcher.seed`` unless ``seed``) asked once, no Ray."""
    import optuna

    from hyco_ray.search import build_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=build_sampler(spec, seed))
    return study.ask({key: p.distribution() for key, p in spec.space.items()}).params
