"""Compose a run configuration with Hydra's compose API and check it against the typed schema.

The same ``key=value`` overrides work on the command line, in a search space and on an exported
config file. Every error becomes one :class:`~hyco.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hyco.config.schema import RunConfig
from hyco.config.validate import validate
from hyco.config.yamlfile import read_yaml_file
from hyco.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# Experiment configs start their defaults list with `hyco_schema`: every key of RunConfig is
# then present and typed, so any of them can be overridden and unknown keys are rejected.
ConfigStore.instance().store(name="hyco_schema", node=RunConfig)


#: old key -> where it lives now (issue 22: P's data weight moved to where the coupling reads it)
MOVED_KEYS = {"trainer_params.physical.alpha": "trainer_params.alpha_physical"}


def _moved_key_hint(text: str) -> str:
    """Network options moved under ``model.synthetic.options`` (issue 9), and :data:`MOVED_KEYS`:
    say so when an old key is used (on the command line, in a config file or a search space)."""
    for key in ("base_channels", "depth", "residual", "position_input"):
        if f"model.synthetic.{key}" in text:
            return f"; network options are now under model.synthetic.options (model.synthetic.options.{key})"
    for old, new in MOVED_KEYS.items():
        if old in text:
            return f"; {old} is now {new}"
    return ""


def _schema_keys(node: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key of the run config schema (for "did you mean" hints)."""
    node = OmegaConf.structured(RunConfig) if node is None else node
    keys = []
    for key in node:
        child = node._get_node(key)
        keys.append(f"{prefix}{key}")
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            keys += _schema_keys(child, f"{prefix}{key}.")
    return keys


def _unknown_key_message(text: str) -> str | None:
    """Hydra's "use +key=..." advice for a typo fails again (the schema rejects the new key): name the
    nearest schema key instead (difflib), or the keys of the parent."""
    match = re.search(r"Could not override '([^']+)'", text)
    if not match:
        return None
    key = match.group(1)
    keys = _schema_keys()
    if key in keys:
        return None
    if moved := _moved_key_hint(key):
        return f"override {key!r}: no such key{moved}"
    parent, _, leaf = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    if siblings:  # the parent exists: a typo of the last part
        near = [f"{parent}.{n}" if parent else n for n in difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)]
    else:  # a typo further up
        near = difflib.get_close_matches(key, [k for k in keys if k.count(".") == key.count(".")], n=1, cutoff=0.6)
    if near:
        return f"override {key!r}: no such key; did you mean {near[0]}?"
    if siblings:
        return f"override {key!r}: no such key; keys under {parent or 'the top level'}: {', '.join(siblings)}"
    return f"override {key!r}: no such key"


def available_configs() -> list[str]:
    """Names of the experiment configs shipped with hyco (``hyco train NAME``)."""
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


def _compose(config_dir: Path, name: str, overrides: Sequence[str], searchpath: Sequence[str] = ()) -> DictConfig:
    for item in overrides:
        if item.lstrip("+~").startswith("hydra."):
            raise ConfigError(f"override {item!r}: hyco does not use Hydra's own settings (hydra.*); "
                              "hyco train --run-dir sets the run directory")
    overrides = [*searchpath, *overrides]
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            return compose(config_name=name, overrides=list(overrides))
    except MissingConfigException as exc:
        if (config_dir / f"{name}.yaml").exists():
            raise ConfigError(f"config {name!r}: {exc}") from None
        raise ConfigError(
            f"no config named {name!r}; available: {', '.join(available_configs())} "
            "(or pass a file: --config-file path.yaml)"
        ) from None
    except (HydraException, OmegaConfBaseException) as exc:
        if message := _unknown_key_message(str(exc)):
            raise ConfigError(message) from None
        cause = f" ({str(exc.__cause__).splitlines()[0]})" if exc.__cause__ else ""
        raise ConfigError(f"bad override in {list(overrides)}: {exc}{cause}{_moved_key_hint(str(exc))}") from None


def _to_schema(raw: DictConfig, origin: str) -> RunConfig:
    try:
        # re-check a plain copy: keys added with `+key=` would otherwise be dropped silently
        plain = OmegaConf.create(OmegaConf.to_container(raw, resolve=True))
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), plain)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"{origin}: key {key!r}: {reason}{_moved_key_hint(key)}") from None


def load_config(name: str, overrides: Sequence[str] = (), check: bool = True) -> RunConfig:
    """Compose the shipped experiment config ``name`` (or a YAML path) with ``overrides``;
    ``check=False``: typed but not validated yet (the caller sets more values, then validates once)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return load_config_file(path, overrides, check)
    raw = _compose(CONF_DIR, name, overrides)
    cfg = _to_schema(raw, f"config {name!r}")
    if check:
        validate(cfg)
    return cfg


def load_config_file(path: str | Path, overrides: Sequence[str] = (), check: bool = True) -> RunConfig:
    """Load a config file (e.g. an exported best config); its defaults list, if any, is honoured."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    raw = _compose_file(path, overrides)
    cfg = _to_schema(raw, f"config file {str(path)!r}")
    if check:
        validate(cfg)
    return cfg


def with_values(cfg: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """``cfg`` with dotted keys set to typed values (a trial's sampled settings), with no trip through
    ``key=value`` text: the schema checks each key and type (an int where a float is due is
    converted); the caller validates the whole config once. A config group (``model/synthetic``)
    selects a file and so is composed by :func:`load_config` instead."""
    node = OmegaConf.structured(cfg)
    for key, value in values.items():
        try:
            if OmegaConf.select(node, key, throw_on_missing=False, default=_ABSENT) is _ABSENT:
                raise ConfigError(f"{key}: no such key{_moved_key_hint(key)}")
            OmegaConf.update(node, key, getattr(value, "item", lambda v=value: v)(), merge=False)  # numpy: plain
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from None
    return OmegaConf.to_object(node)  # type: ignore[return-value]


_ABSENT = object()


def _compose_file(path: Path, overrides: Sequence[str]) -> DictConfig:
    """A resolved config file (as ``hyco export`` writes) composes from its own directory."""
    text = read_yaml_file(path, "config file") or {}
    if not isinstance(text, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, got {type(text).__name__}")
    if "defaults" in text:
        raise ConfigError(
            f"config file {str(path)!r} has a defaults list; put it in {CONF_DIR} and use its "
            "name, or pass a resolved config (as written by hyco export)"
        )
    # config groups (model/physical=burgers_2d) come from hyco's conf dir and replace the file's section
    groups = [f"+{o}" if "/" in o.split("=", 1)[0] and o[0] not in "+~" else o for o in overrides]
    return _compose(path.parent, path.stem, groups, [f"hydra.searchpath=[file://{CONF_DIR}]"])


def config_to_dict(cfg: RunConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def config_to_yaml(cfg: RunConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_from_dict(data: dict) -> RunConfig:
    cfg = _to_schema(OmegaConf.create(data), "config")
    validate(cfg)
    return cfg


def override_value(value: Any) -> str:
    """A Python value as a Hydra override value (floats round-trip exactly)."""
    value = value.item() if hasattr(value, "item") else value  # numpy scalar
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(override_value, value)) + "]"
    text = str(value)
    return text if re.fullmatch(r"[\w./-]+", text) else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
