"""Trainers: the physical (theta) optimiser, the network, and HYCO coupling both.

Trainers, optimisers of the network and validation metrics are found by name in
:mod:`hyco.registry`; :func:`build_trainer` wires a config's components together.
"""

from __future__ import annotations

from hyco.training.factory import build_model, build_trainer, create_trainer
from hyco.training.hybrid import HybridTrainer, PhysicsOnlyTrainer, SyntheticTrainer
from hyco.training.physical import PhysicalStep, PhysicalTrainer

__all__ = [
    "HybridTrainer",
    "PhysicalStep",
    "PhysicalTrainer",
    "PhysicsOnlyTrainer",
    "SyntheticTrainer",
    "build_model",
    "build_trainer",
    "create_trainer",
]
