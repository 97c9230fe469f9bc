"""Data with model error (``data.simulation.refine``): finer grid and step, restricted to P's grid.

The refined data are checked against references written outside the solver
(tests/reference_solutions.py): Cole–Hopf for Burgers, an exactly time-integrated fine-grid
heat solution. Both are compared as cell averages over P's cells, which is what the restriction
delivers. Run with ``-s`` for the numbers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from reference_solutions import bump_diffusivity, cell_centres, cole_hopf, heat_reference, observed_orders, relative_l2

from hyco.config import load_config
from hyco.config.schema import DataConfig, ParameterSpec, SimulationConfig
from hyco.data import cache_path, dataset_key, simulate
from hyco.data.generate import generation_record, refined_problem
from hyco.errors import ConfigError
from hyco.physics import PROBLEMS, make_problem

FACTORS = [1, 2, 4]


def restricted_last_frame(problem, initial, refine: int, num_frames: int) -> np.ndarray:
    """P's truth simulated on the grid ``refine`` times finer from ``initial(fine centres)``, last frame on P's grid."""
    fine = refined_problem(problem, refine)
    frames = fine.rollout(torch.tensor(initial(refine), dtype=torch.float64)[None, None], problem.truth, num_frames)
    return problem.restrict(frames[:, -1], refine)[0, 0].numpy()


def test_burgers_refined_data_converge_to_cole_hopf(float64: None) -> None:
    """u0 = sin x, nu = 0.1 on 16 cells of [0, 2 pi), t = 0.3. Refine 1 is P's own data (an
    inverse crime); 2 and 4 must be closer to the exact cell averages, at second order
    (dt ~ dx^2, so Euler's O(dt) is O(dx^2) too). Measured: 1.17e-2, 2.98e-3, 7.29e-4, orders 1.98, 2.03."""
    length, n, num_frames = 2 * np.pi, 16, 6
    cfg = replace(PROBLEMS.get("burgers").example_config(), resolution=[n], dt=0.05, substeps=1,
                  params={"viscosity": ParameterSpec(truth=[0.1], guess=[0.2])})
    problem = make_problem(cfg)
    sub = (np.arange(n * 16) + 0.5) * length / (n * 16)
    exact = cole_hopf(sub, num_frames * problem.frame_dt, 0.1).reshape(n, 16).mean(1)  # cell averages
    errors = [
        relative_l2(restricted_last_frame(problem, lambda k: np.sin(cell_centres(n * k, length)), k, num_frames), exact)
        for k in FACTORS
    ]
    orders = observed_orders(FACTORS, errors)
    print("\nburgers refine", FACTORS, "errors", errors, "orders", orders)
    assert errors[0] > errors[1] > errors[2]
    assert all(p > 1.8 for p in orders), (errors, orders)


def test_heat_refined_data_converge_to_fine_reference(float64: None) -> None:
    """Three bumps in kappa, 8 x 8 cells, t = 0.05; reference: 64 x 64 method of lines integrated
    exactly (its own error is a quarter of the k = 4 data's and of the same sign, so the last order
    reads high). Measured: 0.147, 0.033, 0.0064, orders 2.16, 2.35 (against 128 x 128: 2.11, 2.09)."""
    n, m, num_frames = 8, 64, 5
    cfg = replace(PROBLEMS.get("heat").example_config(), resolution=[n, n], dt=0.01, substeps=1)
    problem = make_problem(cfg)
    opts = problem.options
    amplitudes = cfg.params["amplitudes"].truth

    def kappa(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return bump_diffusivity(x, y, opts["kappa0"], amplitudes, opts["centres"], opts["width"])

    def field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.cos(2 * np.pi * (x + 2 * y)) + 0.5 * np.cos(4 * np.pi * x)

    def initial(k: int) -> np.ndarray:
        ys, xs = np.meshgrid(cell_centres(n * k, 1.0), cell_centres(n * k, 1.0), indexing="ij")
        return field(xs, ys)

    r = m // n
    exact = heat_reference(m, kappa, field, num_frames * problem.frame_dt).reshape(n, r, n, r).mean((1, 3))
    errors = [relative_l2(restricted_last_frame(problem, initial, k, num_frames), exact) for k in FACTORS]
    orders = observed_orders(FACTORS, errors)
    print("\nheat refine", FACTORS, "errors", errors, "orders", orders)
    assert errors[0] > 3 * errors[1] > 9 * errors[2]
    assert all(p > 1.6 for p in orders), (errors, orders)


@pytest.mark.parametrize("name", ["burgers", "heat", "gray_scott", "smoke"])
def test_restriction_is_a_cell_average(name: str) -> None:
    """A fine state that is constant on each coarse cell (and face) restricts to those constants,
    and restricting keeps the total of a cell-centred channel (mean over all cells)."""
    problem = make_problem(PROBLEMS.get(name).example_config())
    fine = refined_problem(problem, 2)
    coarse = torch.rand((2, len(problem.channels), *problem.array_shape), generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64)
    if name == "smoke":
        coarse = problem.to_array(problem.to_state(coarse))  # zero the padding
        # fine faces on coarse faces carry the coarse value, the faces in between anything
        up = torch.zeros((2, 3, *fine.array_shape), dtype=torch.float64)
        nx, ny = problem.resolution
        up[:, 0, : 2 * ny, : 2 * nx] = coarse[:, 0, :ny, :nx].repeat_interleave(2, -1).repeat_interleave(2, -2)
        up[:, 1, : 2 * ny, ::2] = coarse[:, 1, :ny, :].repeat_interleave(2, -2)
        up[:, 2, ::2, : 2 * nx] = coarse[:, 2, :, :nx].repeat_interleave(2, -1)
        up[:, 1, : 2 * ny, 1::2] = 7.0
        up[:, 2, 1::2, : 2 * nx] = 7.0
        assert torch.equal(problem.restrict(up, 2), coarse)
        return
    up = coarse
    for axis in range(-problem.ndim, 0):
        up = up.repeat_interleave(2, axis)
    assert up.shape[-problem.ndim:] == fine.array_shape
    assert torch.allclose(problem.restrict(up, 2), coarse, rtol=0, atol=1e-15)
    noisy = torch.rand(up.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(problem.restrict(noisy, 2).mean(), noisy.mean(), rtol=1e-13)


@pytest.mark.parametrize("name", ["burgers", "heat", "gray_scott"])
def test_refined_data_are_close_to_but_not_p_own(name: str) -> None:
    """Every problem simulates with refine 2: P's shape, finite, near P's own data but not equal
    (the model error). Smoke is covered by its restriction test (its pressure solve is slow here)."""
    problem = make_problem(PROBLEMS.get(name).example_config())
    own = simulate(problem, DataConfig(num_simulations=1, num_steps=2), "float64")
    fine = simulate(problem, DataConfig(num_simulations=1, num_steps=2, simulation=SimulationConfig(refine=2)), "float64")
    assert fine.shape == own.shape and torch.isfinite(fine).all()
    relative = float((fine - own).norm() / own.norm())
    print(f"\n{name}: refine 2 vs own data, relative difference {relative:.3g}")
    assert 0 < relative < 0.3


def test_cache_key_includes_refine() -> None:
    """refine enters the key (and the cache file name); the default keeps the key it had before."""
    problem = make_problem(PROBLEMS.get("burgers").example_config())
    base = DataConfig()
    keys = {k: dataset_key(replace(base, simulation=SimulationConfig(refine=k)), problem.cfg, "float32") for k in (1, 2, 3)}
    assert len(set(keys.values())) == 3
    paths = {cache_path(replace(base, simulation=SimulationConfig(refine=k)), problem.cfg, "float32") for k in (1, 2)}
    assert len(paths) == 2
    assert "simulation" not in generation_record(base, problem.cfg, "float32")
    assert generation_record(replace(base, simulation=SimulationConfig(refine=2)), problem.cfg, "float32")["simulation"] == {"refine": 2}


@pytest.mark.parametrize("value", [0, 17])
def test_refine_out_of_range_is_one_line_error(value: int) -> None:
    with pytest.raises(ConfigError, match=rf"data.simulation.refine is {value}, but must be an integer from 1"):
        load_config("burgers_hybrid_quick_test", [f"data.simulation.refine={value}"])
