"""Physics-only identification of the Burgers viscosity from noisy data (issue 7's table).

4 training sims, 5 % noise on every observed value (frame 0 included), guesses at 0.1x and 10x
the truth. The initial states are fitted with theta (errors in variables); without that, a
rollout from the noisy frame 0 biases nu by +19 % (nu* = 0.05) and +119 % (nu* = 0.015).
Measured on data.seed 0 (the default): 1.4 / 1.3 % (nu* = 0.05), 0.3 / 0.2 % (0.15),
9.6 / 8.4 % (0.015); seeds 1 and 2 give 0.7 % and 2.4 % at 0.015, so that case is limited by
the statistics of 4 sims, not by a bias.
"""

from __future__ import annotations

import math
import warnings

import pytest

from hyco.config import load_config
from hyco.errors import ConfigError
from hyco.training import create_trainer

LIMITS = {0.05: 0.05, 0.15: 0.05, 0.015: 0.10}


def fit_viscosity(cache: str, truth: float, guess: float, *overrides: str) -> list[dict]:
    cfg = load_config("burgers_physical_quick_test", [
        f"data.cache_dir={cache}", "data.seed=0", "data.num_simulations=8", "data.num_steps=30",
        "trainer_params.train_sim=[0,1,2,3]", "trainer_params.val_sim=[4,5]", "trainer_params.test_sim=[6,7]",
        "data.observation.noise=0.05", "trainer_params.epochs=3", "trainer_params.physical.max_iterations=20",
        f"model.physical.params.viscosity.truth=[{truth}]", f"model.physical.params.viscosity.guess=[{guess}]",
        *overrides,
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # PhiML counts traces (one per substep count)
        return list(create_trainer(cfg).fit())


@pytest.mark.slow
@pytest.mark.parametrize("factor", [0.1, 10.0])
@pytest.mark.parametrize("truth", sorted(LIMITS))
def test_viscosity_recovered_from_noisy_data(tmp_path_factory, truth, factor):
    cache = str(tmp_path_factory.getbasetemp() / "identification-cache")
    history = fit_viscosity(cache, truth, truth * factor)
    error = history[-1]["param_error"]
    print(f"nu*={truth} guess={truth * factor:.4g}: nu={history[-1]['theta'][0]:.5f}, error {error:.4f}")
    assert all(math.isfinite(m["val_loss_physical"]) for m in history)
    assert error < LIMITS[truth], f"nu={history[-1]['theta']} truth={truth}"


def test_guess_above_the_stability_limit_converges(tmp_path):
    """nu = 1.5 is 6x the explicit limit at the configured 2 substeps (nu dt/dx^2 = 3.1 > 0.5):
    the rollout takes 14 substeps there instead of blowing up, and the fit walks down."""
    history = fit_viscosity(str(tmp_path), 0.05, 1.5, "trainer_params.epochs=2", "data.observation.noise=0.0")
    assert all(math.isfinite(m["val_loss_physical"]) for m in history)
    assert history[-1]["param_error"] < 0.01


def test_guess_outside_the_bounds_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"viscosity guess is 50, but must be in \[.*\] for burgers"):
        load_config("burgers_physical_quick_test", [f"data.cache_dir={tmp_path}",
                                                    "model.physical.params.viscosity.guess=[50]"])
