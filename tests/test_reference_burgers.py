"""Burgers' solver against the Cole-Hopf exact solution (issue 7), not against its own data.

Every test here fails on the sign-flipped step that solved u_t = nu lap u + (u . grad) u before
commit a44cbc1 (errors near 28% instead of 1e-3; see the numbers in each test).
Run with ``-s`` to see the measured errors and orders.
"""

from __future__ import annotations

import math as pymath
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch
from phiml import math
from reference_solutions import cell_centres, cole_hopf, cole_hopf_series, observed_orders, relative_l2

from hyco.config import load_config
from hyco.config.schema import PhysicalModelConfig
from hyco.physics import make_problem

NU = 0.05
LENGTH = 2 * pymath.pi


@pytest.fixture(scope="module")
def burgers_1d() -> PhysicalModelConfig:
    """The shipped 1D Burgers model: 128 cells on [0, 2 pi), dt 0.005, 2 steps per frame."""
    return load_config("burgers_physical_quick_test").model.physical


@pytest.fixture(scope="module")
def burgers_2d() -> PhysicalModelConfig:
    """The shipped 2D Burgers model: 64 x 64 on [0, 2 pi)^2, dt 0.01."""
    return load_config("burgers_physical_quick_test", ["model/physical=burgers_2d"]).model.physical


@pytest.fixture
def precision(request) -> Iterator[int]:
    """PhiML's global precision for one test (32 or 64), restored afterwards."""
    previous = math.get_precision()
    math.set_global_precision(request.param)
    yield request.param
    math.set_global_precision(previous)


def run(cfg: PhysicalModelConfig, initial: np.ndarray, num_frames: int, bits: int) -> np.ndarray:
    """The project's rollout from one initial state ``[C, *spatial]``; returns frames ``[T, C, *spatial]``."""
    dtype = torch.float64 if bits == 64 else torch.float32
    problem = make_problem(cfg)
    theta = torch.tensor([NU], dtype=dtype)
    frames = problem.rollout(torch.tensor(initial, dtype=dtype)[None], theta, num_frames)
    return frames[0].double().numpy()


def test_cole_hopf_reference_is_exact() -> None:
    """The reference itself: two independent formulas agree, and t -> 0 gives the initial state."""
    x = np.linspace(0, LENGTH, 513)
    for t in (0.05, 0.3, 1.0):
        quadrature, series = cole_hopf(x, t, NU), cole_hopf_series(x, t, NU)
        # the series loses ~8 digits near x = pi (phi ~ e^-20 there; measured 1.5e-8 at t = 0.3);
        # away from pi both agree to round-off (measured < 1e-13)
        assert np.abs(quadrature - series).max() < 1e-7
        far = np.abs(x - pymath.pi) > 1.5
        assert np.abs(quadrature - series)[far].max() < 1e-11
    # the quadrature at t = 1e-8 is the initial state (its error is O(nu t) = 5e-10)
    assert np.abs(cole_hopf(x, 1e-8, NU) - np.sin(x)).max() < 1e-8


@pytest.mark.parametrize("precision", [32, 64], indirect=True)
def test_burgers_1d_matches_cole_hopf(burgers_1d: PhysicalModelConfig, precision: int) -> None:
    """u0 = sin x, nu = 0.05, 128 cells, shipped dt: relative L2 error at t = 0.3.

    Measured: 5.73e-4 (float32 and float64 alike: the error is discretisation, not rounding).
    The acceptance bound is 1%; 1e-3 keeps a 1.7x margin. Old sign: 0.284.
    """
    cfg = burgers_1d
    assert cfg.resolution == [128] and cfg.dt * cfg.substeps == pytest.approx(0.01)
    x = cell_centres(128, LENGTH)
    frames = run(cfg, np.sin(x)[None], 30, precision)
    error = relative_l2(frames[-1, 0], cole_hopf(x, 0.3, NU))
    print(f"\nburgers 1D, 128 cells, float{precision}: relative L2 error at t=0.3 = {error:.3e}")
    assert error < 1e-3


@pytest.mark.parametrize("precision", [64], indirect=True)
def test_burgers_1d_converges_second_order(burgers_1d: PhysicalModelConfig, precision: int) -> None:
    """Errors vs Cole-Hopf at t = 0.3 under refinement, dt proportional to dx^2.

    With dt ~ dx^2 the first-order Euler error is second order in dx too, so the whole error
    should fall 4x per halving of dx. Measured (float64): 4.62e-3, 1.15e-3, 2.87e-4, 7.18e-5 at
    32, 64, 128, 256 cells: orders 2.00, 2.00, 2.00. Bound 1.9 (issue asks 1.8). At 32 cells the
    cell Reynolds number is 3.9 > 2 but t = 0.3 is too early for wiggles. Old sign: errors stay at
    0.285, 0.284, 0.283, 0.283 (orders ~0).
    """
    resolutions = [32, 64, 128, 256]
    errors = []
    for n in resolutions:
        steps = n * n // 128  # 8, 32, 128, 512: nu dt / dx^2 = 0.048 on every grid
        cfg = replace(burgers_1d, resolution=[n], dt=0.3 / steps, substeps=1)
        x = cell_centres(n, LENGTH)
        frames = run(cfg, np.sin(x)[None], steps, precision)
        errors.append(relative_l2(frames[-1, 0], cole_hopf(x, 0.3, NU)))
    orders = observed_orders(resolutions, errors)
    print("\nburgers 1D convergence:", ", ".join(f"{n}: {e:.3e}" for n, e in zip(resolutions, errors)))
    print("observed orders:", ", ".join(f"{p:.3f}" for p in orders))
    assert all(p >= 1.9 for p in orders), (errors, orders)
    assert errors[-1] < 1e-4


def separable(n: int, t: float) -> np.ndarray:
    """u = (f(x, t), g(y, t)): f from u0 = sin x, g from u0 = 0.5 sin(y - 1); exact in 2D.

    u_x depends on x only and u_y on y only, so (u . grad) u_x = u_x d_x u_x and lap u_x = d_xx u_x:
    each component is a 1D Burgers solution of its own axis. Returns ``[2, Y, X]``.
    """
    c = cell_centres(n, LENGTH)
    u = np.zeros((2, n, n))
    u[0] = cole_hopf(c, t, NU)[None, :]
    u[1] = cole_hopf(c, t, NU, amplitude=0.5, shift=1.0)[:, None]
    return u


def diagonal(n: int, t: float) -> np.ndarray:
    """A plane wave along e = (1, 1) / sqrt 2: u = e U(xi, t), xi = e . x, U0 = sin(x + y) = sin(sqrt 2 xi).

    (u . grad) u = e U U_xi and lap u = e U_xi xi, so U is a 1D Burgers solution (wavenumber sqrt 2);
    unlike the separable case, the cross terms u_y d_y u_x do not vanish. Returns ``[2, Y, X]``.
    """
    c = cell_centres(n, LENGTH)
    ys, xs = np.meshgrid(c, c, indexing="ij")
    big_u = cole_hopf((xs + ys) / np.sqrt(2), t, NU, wavenumber=np.sqrt(2))
    return np.stack([big_u, big_u]) / np.sqrt(2)


# Measured at 64 x 64, dt 0.01, t = 0.5 (float32): separable 1.90e-3, diagonal 3.71e-3;
# bounds at about 2x. The diagonal front is steeper (wavenumber sqrt 2) and its error grows to
# 1.9e-2 by t = 1, as the inviscid shock time 1/sqrt 2 passes. Old sign: 0.41 and 0.57.
@pytest.mark.parametrize(("solution", "bound"), [(separable, 4e-3), (diagonal, 7.5e-3)], ids=["separable", "diagonal"])
def test_burgers_2d_matches_embedded_cole_hopf(burgers_2d: PhysicalModelConfig, solution, bound: float) -> None:
    """2D Burgers against exact 2D solutions built from 1D Cole-Hopf, relative L2 at t = 0.5."""
    cfg = burgers_2d
    n = cfg.resolution[0]
    assert cfg.resolution == [64, 64] and cfg.dt == pytest.approx(0.01) and cfg.substeps == 1
    frames = run(cfg, solution(n, 0.0), 50, 32)
    error = relative_l2(frames[-1], solution(n, 0.5))
    print(f"\nburgers 2D {solution.__name__}, 64x64: relative L2 error at t=0.5 = {error:.3e}")
    assert error < bound
