"""Trainers: the physical (theta) optimiser, the network, and HYCO coupling both.

Trainers, optimisers of the network and validation metrics are found by name in
:mod:`hyco.registry`; :func:`build_trainer` wires a config's components together.
"""

from __future__ import annotations

from hyco.training.factory import build_model, build_trainer, create_trainer
from hyco.training.hybrid import HybridTrainer, PhysicsOnlyTrainer, SyntheticTrainer
from hyco.training.physical import PhysicalStep, PhysicalTrainer
from hyco.training.seeds import SeedGroup, aggregate, seed_configs

__all__ = [
    "HybridTrainer",
    "PhysicalStep",
    "PhysicalTrainer",
    "PhysicsOnlyTrainer",
    "SeedGroup",
    "SyntheticTrainer",
    "aggregate",
    "build_model",
    "build_trainer",
    "create_trainer",
    "seed_configs",
]
