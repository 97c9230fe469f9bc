"""Gray–Scott against numpy formulas written here: the reaction and the diffusion terms apart, one
Euler step, and the identification of (Du, Dv) from the HYCO authors' first guess."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from phiml import math

from hyco.config import load_config
from hyco.physics import make_problem
from hyco.physics.gray_scott import diffusion, reaction
from hyco.training import build_trainer

FEED, KILL = 0.04, 0.06



@pytest.fixture
def problem(float64):
    """A non-square grid (12 x 8 cells on a 6 x 6 square: dx = 0.5, dy = 0.75), so a swapped axis
    or spacing changes the answer."""
    cfg = load_config("gray_scott_hybrid_quick_test").model.physical
    return make_problem(replace(cfg, resolution=[12, 8], options={**cfg.options, "domain_size": 6.0}))


def random_state(problem) -> np.ndarray:
    """``[2, 2, Y, X]`` float64: u around 1/2, v around 1/4, different in each sample."""
    rng = np.random.default_rng(0)
    return np.stack([0.5 + 0.3 * rng.standard_normal((2, 8, 12)), 0.25 + 0.2 * rng.standard_normal((2, 8, 12))], axis=1)


def laplacian(a: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Periodic 5-point Laplacian of ``[..., Y, X]``."""
    lx = (np.roll(a, 1, -1) - 2 * a + np.roll(a, -1, -1)) / dx**2
    ly = (np.roll(a, 1, -2) - 2 * a + np.roll(a, -1, -2)) / dy**2
    return lx + ly


def arrays(fields) -> np.ndarray:
    return np.stack([f.values.native("b,y,x").numpy() for f in fields], axis=1)


def test_reaction_term(problem):
    state = random_state(problem)
    u, v = state[:, 0], state[:, 1]
    got = arrays(reaction(*problem.to_state(torch.tensor(state)), FEED, KILL))
    expected = np.stack([-u * v**2 + FEED * (1 - u), u * v**2 - (FEED + KILL) * v], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_diffusion_term(problem):
    state = random_state(problem)
    du, dv = 0.2, 0.08
    got = arrays(diffusion(*problem.to_state(torch.tensor(state)), math.wrap(du), math.wrap(dv)))
    expected = np.stack([du * laplacian(state[:, 0], 0.5, 0.75), dv * laplacian(state[:, 1], 0.5, 0.75)], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_one_step_is_explicit_euler_of_both(problem):
    state = random_state(problem)
    u, v = state[:, 0], state[:, 1]
    theta, dt = torch.tensor([0.2, 0.08], dtype=torch.float64), 0.1
    got = problem.to_array(problem.step(problem.to_state(torch.tensor(state)), theta, dt)).numpy()
    expected_u = u + dt * (0.2 * laplacian(u, 0.5, 0.75) - u * v**2 + FEED * (1 - u))
    expected_v = v + dt * (0.08 * laplacian(v, 0.5, 0.75) + u * v**2 - (FEED + KILL) * v)
    np.testing.assert_allclose(got, np.stack([expected_u, expected_v], axis=1), rtol=1e-10, atol=1e-12)


def test_patterns_form_within_the_simulated_frames():
    problem = make_problem(load_config("gray_scott_hybrid_quick_test").model.physical)
    x0 = problem.sample_initial(2, torch.Generator().manual_seed(0))
    frames = problem.rollout(x0, problem.truth.float(), 20)
    seeded = float((x0[:, 1] > 0.1).float().mean())
    spread = float((frames[:, -1, 1] > 0.1).float().mean())
    assert spread > 2.5 * seeded  # the seeds have grown into patterns
    assert float(frames[:, -1, 1].std()) > 0.1


def test_physics_only_recovers_du_dv_from_the_authors_guess(cache_dir):
    """(0.10, 0.05) -> (0.20, 0.08) within 1 % (the authors report about 0.5 %), full noise-free data."""
    cfg = load_config("gray_scott_hybrid_quick_test", [
        f"data.cache_dir={cache_dir}", "run_params.model_type=physical", "trainer_params.epochs=3",
        "trainer_params.physical.max_iterations=10", "data.num_steps=10"])
    trainer = build_trainer(cfg)
    assert trainer.problem.guess.tolist() == [0.1, 0.05]
    history = list(trainer.fit())
    theta = torch.tensor(history[-1]["theta"])
    relative = (theta - torch.tensor([0.2, 0.08])).abs() / torch.tensor([0.2, 0.08])
    print(f"\nGray–Scott physics-only: theta {theta.tolist()}, relative errors {relative.tolist()}")
    assert bool((relative < 0.01).all()), history[-1]
