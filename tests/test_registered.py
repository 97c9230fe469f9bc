"""Every registered problem and network through the same checks (docs/architecture.md, "Tests").

A component registered in :mod:`hyco.registry` is picked up here without editing this file:
problems bring a small ``example_config()``, networks may bring small ``example_options``.
"""

from __future__ import annotations

import copy

import pytest
import torch

from hyco.config.schema import (
    DataConfig,
    ModelConfig,
    PhysicalTrainerConfig,
    RunConfig,
    SyntheticModelConfig,
    TrainerParams,
)
from hyco.config.validate import validate
from hyco.physics import make_problem
from hyco.registry import MODELS, PROBLEMS
from hyco.training import build_trainer

PROBLEM_NAMES = PROBLEMS.names()
MODEL_NAMES = MODELS.names()


def example_problem(name: str):
    return make_problem(PROBLEMS.get(name).example_config())


def example_model(name: str, ndim: int, channels: int, periodic: bool = True) -> torch.nn.Module:
    options = getattr(MODELS.get(name), "example_options", {})
    return MODELS.build(name, ndim=ndim, channels=channels, periodic=periodic, **options)


# ----- problems ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_problem_shapes_bounds_and_round_trip(name):
    problem = example_problem(name)
    x = problem.sample_initial(3, torch.Generator().manual_seed(1))
    assert x.shape == (3, len(problem.channels), *problem.array_shape) and x.dtype == torch.float32
    assert torch.equal(problem.to_array(problem.to_state(x)), x)
    assert not torch.equal(x[0], x[1])
    lo, hi = problem.parameter_bounds()
    assert lo.shape == hi.shape == problem.truth.shape == (len(problem.labels),)
    assert bool(((lo <= problem.truth) & (problem.truth <= hi) & (lo <= problem.guess) & (problem.guess <= hi)).all())


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_problem_is_deterministic_and_differentiable(name):
    problem = example_problem(name)
    x = problem.sample_initial(2, torch.Generator().manual_seed(3))
    assert torch.equal(x, problem.sample_initial(2, torch.Generator().manual_seed(3)))
    theta = problem.guess.float().clone().requires_grad_(True)
    frames = problem.rollout(x, theta, 2)
    assert frames.shape == (2, 2, *x.shape[1:]) and torch.isfinite(frames).all()
    frames.pow(2).sum().backward()
    assert torch.isfinite(theta.grad).all() and theta.grad.abs().sum() > 0
    assert torch.equal(frames.detach(), problem.rollout(x, theta.detach(), 2))
    assert not torch.equal(frames.detach(), problem.rollout(x, problem.truth.float(), 2))  # theta matters


# ----- networks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape, periodic", [((2, 1, 12), True), ((2, 2, 9, 12), True), ((1, 3, 9, 12), False)])
def test_model_shape_determinism_and_state_round_trip(name, shape, periodic):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = example_model(name, len(shape) - 2, shape[1], periodic)
    torch.manual_seed(0)
    twin = example_model(name, len(shape) - 2, shape[1], periodic)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    out = model(x)
    assert out.shape == x.shape
    out.pow(2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    twin.load_state_dict(copy.deepcopy(model.state_dict()))
    assert torch.equal(twin(x), model(x))
    with pytest.raises(ValueError):
        model(torch.randn(1, shape[1] + 1, *shape[2:]))


# ----- one hybrid epoch --------------------------------------------------------------------------


def small_config(problem: str, model: str, cache_dir: str) -> RunConfig:
    cfg = RunConfig(
        data=DataConfig(num_simulations=4, num_steps=4, cache_dir=cache_dir),
        model=ModelConfig(
            physical=PROBLEMS.get(problem).example_config(),
            synthetic=SyntheticModelConfig(name=model, options=dict(getattr(MODELS.get(model), "example_options", {}))),
        ),
        trainer_params=TrainerParams(
            train_sim=[0, 1], val_sim=[2], test_sim=[3], epochs=1, num_predict_steps=2, num_random_ics=1,
            interaction_region="all", physical=PhysicalTrainerConfig(max_iterations=2),
        ),
    )
    validate(cfg)
    return cfg


CASES = [(p, "unet") for p in PROBLEM_NAMES] + [("burgers", m) for m in MODEL_NAMES if m != "unet"]


@pytest.mark.parametrize("problem, model", CASES, ids=[f"{p}-{m}" for p, m in CASES])
def test_one_hybrid_epoch(cache_dir, problem, model):
    trainer = build_trainer(small_config(problem, model, cache_dir))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.run_epoch(0)
    assert metrics["physical_step"] and metrics["phase"] == "hybrid"
    for key in ("train_loss", "val_loss", "val_loss_synthetic", "val_loss_physical", "param_error"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert metrics["theta"] != trainer.problem.guess.tolist()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_a_user_hands_in_their_own_components(cache_dir):
    """build_trainer takes ready-made components: here a network that is not registered."""
    cfg = small_config("burgers", "unet", cache_dir)
    own = torch.nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular")
    trainer = build_trainer(cfg, model=own)
    assert trainer.model is own
    assert torch.isfinite(torch.tensor(trainer.run_epoch(0)["val_loss"]))
