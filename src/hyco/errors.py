"""The project's own exceptions: one base so callers can catch everything we raise."""

from __future__ import annotations


class HycoError(Exception):
    """Base class of every error hyco raises on purpose."""


class ConfigError(HycoError, ValueError):
    """A configuration value is wrong; the message names the key, the value and what is allowed."""


class DataError(HycoError):
    """A dataset or cache is unusable."""


class TrainingError(HycoError):
    """Training cannot go on (e.g. a NaN appeared); metrics so far are kept by the caller."""
