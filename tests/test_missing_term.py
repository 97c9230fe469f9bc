"""Data from a PDE with a term P lacks (issue 20): ``data.simulation.decay: r`` adds -r u to heat's data.

Checked against the closed-form solution of u_t = kappa Laplace(u) - r u for a Dirichlet sine mode
(written here), through the real data pipeline (simulate, cache key), and the config checks.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from phiml import math

from hyco.config import load_config
from hyco.config.schema import ParameterSpec
from hyco.data.generate import generation_record, simulate, with_decay
from hyco.errors import ConfigError
from hyco.physics import make_problem

L, KAPPA, RATE = 6.0, 0.1, 0.5


def test_decayed_data_solve_the_pde_with_the_loss_term() -> None:
    """u0 = sin(pi x / L) sin(2 pi y / L), kappa = 0.1: the data equal exp(-(kappa 5 pi^2 / L^2 + r) t) u0.

    32 x 32 cells, t = 0..2. Measured: relative error 7.1e-4 with the term (the scheme's own
    error), while the same data without the term are off by exp(r t) - 1 = 1.72: the term is
    what separates the data from P.
    """
    previous = math.get_precision()
    math.set_global_precision(64)
    try:
        cfg = load_config("heat_authors").model.physical
        tiny = ParameterSpec(truth=[1e-12, 1e-12], guess=[1e-12, 1e-12])
        cfg = replace(cfg, resolution=[32, 32], dt=0.002, substeps=50, params={**cfg.params, "amplitudes": tiny})
        problem = make_problem(cfg)
        c = (np.arange(32) + 0.5) * L / 32
        ys, xs = np.meshgrid(c, c, indexing="ij")
        u0 = np.sin(np.pi * xs / L) * np.sin(2 * np.pi * ys / L)
        initial = torch.tensor(u0)[None, None]
        frames = torch.cat([initial[:, None], problem.rollout(initial, problem.truth, 20)], dim=1)
        data = with_decay(frames, RATE, problem.frame_dt)[0, :, 0].numpy()
        times = np.arange(21) * problem.frame_dt
        exact = np.exp(-(KAPPA * 5 * np.pi**2 / L**2 + RATE) * times)[:, None, None] * u0
        error = np.linalg.norm(data[-1] - exact[-1]) / np.linalg.norm(exact[-1])
        without = np.linalg.norm(frames[0, -1, 0].numpy() - exact[-1]) / np.linalg.norm(exact[-1])
    finally:
        math.set_global_precision(previous)
    print(f"\ndecay {RATE}: error {error:.2e}; the same data without the term: {without:.2f}")
    assert error < 2e-3
    assert without > 1.5


def test_simulate_applies_the_term_per_frame_and_keys_it(tmp_path) -> None:
    """Through ``simulate``: frame k is exp(-r k frame_dt) times the data without the term (frame 0
    unchanged); the key changes with r and stays as before for refine alone."""
    base = load_config("heat_hybrid_quick_test", [f"data.cache_dir={tmp_path}", "data.num_steps=4"])
    decayed = load_config("heat_hybrid_quick_test", [f"data.cache_dir={tmp_path}",
                                                     "data.num_steps=4", f"data.simulation.decay={RATE}"])
    problem = make_problem(base.model.physical)
    plain = simulate(problem, base.data, "float64")
    lossy = simulate(problem, decayed.data, "float64")
    factor = torch.exp(-RATE * torch.arange(5, dtype=torch.float64) * problem.frame_dt)
    assert torch.equal(lossy[:, 0], plain[:, 0])
    assert torch.allclose(lossy, plain * factor.reshape(1, 5, 1, 1, 1), rtol=1e-12, atol=0)
    assert generation_record(decayed.data, decayed.model.physical, "float64")["simulation"] == {"refine": 1, "decay": RATE}
    assert "simulation" not in generation_record(base.data, base.model.physical, "float64")
    refined = load_config("heat_hybrid_quick_test", [f"data.cache_dir={tmp_path}", "data.simulation.refine=2"])
    assert generation_record(refined.data, refined.model.physical, "float64")["simulation"] == {"refine": 2}


@pytest.mark.parametrize(("name", "value", "needle"), [("burgers_hybrid_quick_test", 0.1, "must be 0 for burgers"),
                                                       ("heat_hybrid_quick_test", -0.1, "must be >= 0")])
def test_decay_is_checked(tmp_path, name: str, value: float, needle: str) -> None:
    with pytest.raises(ConfigError, match=f"data.simulation.decay.*{needle}"):
        load_config(name, [f"data.cache_dir={tmp_path}", f"data.simulation.decay={value}"])
