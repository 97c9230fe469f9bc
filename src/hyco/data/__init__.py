"""Simulated datasets, their on-disk cache, splits and the observation model."""

from __future__ import annotations

from hyco.data.dataset import Dataset, build_dataset
from hyco.data.generate import cache_path, dataset_key, load_or_simulate, simulate
from hyco.data.observe import Observations, observe

__all__ = [
    "Dataset",
    "Observations",
    "build_dataset",
    "cache_path",
    "dataset_key",
    "load_or_simulate",
    "observe",
    "simulate",
]
