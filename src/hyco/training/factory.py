"""Wiring: build the problem, the dataset and the network a config names, and hand them to its trainer.

Everything is found by name in :mod:`hyco.registry`; :func:`build_trainer` accepts ready-made
components instead (a test's dataset, a user's own network).
"""

from __future__ import annotations

import torch
from torch import nn

from hyco.config.schema import RunConfig, SyntheticModelConfig
from hyco.data import Dataset, build_dataset
from hyco.physics import Problem, make_problem
from hyco.registry import MODELS, OPTIMIZERS, TRAINERS
from hyco.runtime import configure
from hyco.training.hybrid import HybridTrainer

OPTIMIZERS.register("adam")(torch.optim.Adam)
OPTIMIZERS.register("adamw")(torch.optim.AdamW)


def build_model(cfg: SyntheticModelConfig, problem: Problem) -> nn.Module:
    """The network ``cfg.name`` with its options, sized for ``problem`` (rank, channels, boundary)."""
    return MODELS.build(cfg.name, ndim=problem.ndim, channels=len(problem.channels), periodic=problem.periodic,
                        **cfg.options)


def build_trainer(
    cfg: RunConfig,
    device: str | torch.device | None = None,
    *,
    problem: Problem | None = None,
    model: nn.Module | None = None,
    dataset: Dataset | None = None,
) -> HybridTrainer:
    """Set the process-wide numeric state for ``cfg`` (:func:`hyco.runtime.configure`), build what is
    not handed in (problem, dataset, network, in that order) and the trainer ``run_params.model_type``."""
    default_device = configure(cfg.run_params)
    problem = problem if problem is not None else make_problem(cfg.model.physical)
    dataset = dataset if dataset is not None else build_dataset(cfg, problem)
    if model is None:
        torch.manual_seed(cfg.run_params.seed)  # the network's initial weights
        model = build_model(cfg.model.synthetic, problem)
    return TRAINERS.build(cfg.run_params.model_type, cfg, problem=problem, model=model, dataset=dataset,
                          device=device if device is not None else default_device)


#: the name the Ray layer and older scripts use
create_trainer = build_trainer
