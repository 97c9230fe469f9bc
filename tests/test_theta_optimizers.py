"""theta's optimiser from the registry: L-BFGS-B (default) and Adam (the HYCO authors' choice)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from hyco.config import load_config
from hyco.config.schema import PhysicalTrainerConfig
from hyco.data import simulate
from hyco.data.dataset import split
from hyco.errors import ConfigError
from hyco.physics import make_problem
from hyco.registry import THETA_OPTIMIZERS
from hyco.runtime import configure
from hyco.training import PhysicalTrainer


def test_registry_holds_both() -> None:
    assert {"L-BFGS-B", "BFGS", "adam"} <= set(THETA_OPTIMIZERS.names())


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"trainer_params.physical.method is 'newton', but must be one of \['BFGS', 'L-BFGS-B', 'adam'\]"):
        load_config("burgers_hybrid_quick_test", ["trainer_params.physical.method=newton"])
    with pytest.raises(ConfigError, match=r"trainer_params.physical.learning_rate is 0.0, but must be > 0"):
        load_config("burgers_hybrid_quick_test", ["trainer_params.physical.method=adam", "trainer_params.physical.learning_rate=0"])


@pytest.mark.parametrize("method", ["adam", "L-BFGS-B"])
def test_optimizer_reduces_the_physics_loss(tmp_path, method: str) -> None:
    """Burgers, 32 cells, 6 frames, nu* = 0.05 from the guess 0.15: 20 Adam steps (or 5 L-BFGS-B
    iterations) lower the data loss and move nu toward the truth."""
    cfg = load_config("burgers_hybrid_quick_test", [
        f"data.cache_dir={tmp_path}", "data.num_simulations=3", "data.num_steps=6", "model.physical.resolution=[32]",
        "trainer_params.train_sim=[0,1]", "trainer_params.val_sim=[2]", "trainer_params.test_sim=[]",
        "trainer_params.num_predict_steps=1",
    ])
    configure(cfg.run_params)
    problem = make_problem(cfg.model.physical)
    obs = split(simulate(problem, cfg.data, cfg.run_params.dtype), cfg).observations
    physical_cfg = replace(PhysicalTrainerConfig(), method=method, learning_rate=0.1, max_iterations=20,
                           fit_initial_state=False)
    trainer = PhysicalTrainer(problem, physical_cfg)
    loss = trainer.data_loss(obs.initial, obs.frames, obs.mask, obs.stride)
    error_before = trainer.param_error()
    step = trainer.optimize(loss)
    after = float(loss(trainer.theta).detach())
    print(f"\n{method}: loss {step.loss_start:.3e} -> {after:.3e}, nu error {error_before:.3f} -> {trainer.param_error():.3f}")
    assert step.iterations >= 1 and not step.diverged
    assert after < 0.5 * step.loss_start
    assert trainer.param_error() < error_before
    assert torch.equal(step.theta, trainer.theta)
