"""Typed, validated run configuration composed from the YAML files under ``hyco/conf``."""

from __future__ import annotations

from hyco.config.load import (
    available_configs,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    load_config,
    load_config_file,
    override_value,
    with_values,
)
from hyco.config.schema import RunConfig

__all__ = [
    "RunConfig",
    "available_configs",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "load_config",
    "load_config_file",
    "override_value",
    "with_values",
]
