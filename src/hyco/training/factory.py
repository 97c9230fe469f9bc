"""TrainerFactory: trainers found by name (``run_params.model_type``)."""

from __future__ import annotations

import torch

from hyco.config.schema import RunConfig
from hyco.data import Dataset
from hyco.errors import ConfigError
from hyco.runtime import configure
from hyco.training.hybrid import HybridTrainer, PhysicsOnlyTrainer, SyntheticTrainer


class TrainerFactory:
    _trainers: dict[str, type[HybridTrainer]] = {
        "synthetic": SyntheticTrainer,
        "physical": PhysicsOnlyTrainer,
        "hybrid": HybridTrainer,
    }

    @classmethod
    def list_available_trainers(cls) -> list[str]:
        return list(cls._trainers)

    @classmethod
    def register(cls, name: str, trainer: type[HybridTrainer]) -> None:
        cls._trainers[name] = trainer

    @classmethod
    def create(
        cls, cfg: RunConfig, device: str | torch.device | None = None, dataset: Dataset | None = None
    ) -> HybridTrainer:
        name = cfg.run_params.model_type
        if name not in cls._trainers:
            raise ConfigError(
                f"run_params.model_type is {name!r}, but must be one of {cls.list_available_trainers()}"
            )
        return cls._trainers[name](cfg, device=device, dataset=dataset)


def create_trainer(
    cfg: RunConfig, device: str | torch.device | None = None, dataset: Dataset | None = None
) -> HybridTrainer:
    """Set the process-wide numeric state for ``cfg`` (:func:`hyco.runtime.configure`), then build
    the trainer named by ``run_params.model_type``."""
    default_device = configure(cfg.run_params)
    return TrainerFactory.create(cfg, device=device if device is not None else default_device, dataset=dataset)
