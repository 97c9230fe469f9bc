"""Trainers: the physical (theta) optimiser, the network, and HYCO coupling both."""

from __future__ import annotations

from hyco.training.factory import TrainerFactory, create_trainer
from hyco.training.hybrid import HybridTrainer, PhysicsOnlyTrainer, SyntheticTrainer
from hyco.training.physical import PhysicalStep, PhysicalTrainer

__all__ = [
    "HybridTrainer",
    "PhysicalStep",
    "PhysicalTrainer",
    "PhysicsOnlyTrainer",
    "SyntheticTrainer",
    "TrainerFactory",
    "create_trainer",
]
