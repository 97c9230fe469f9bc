"""Shared fixtures: small configs with a private data cache per test session."""

from __future__ import annotations

import warnings

import pytest

warnings.filterwarnings("ignore", message="Sparse")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("hyco-cache"))


@pytest.fixture
def small_burgers(cache_dir):
    """A tiny 1D Burgers HYCO config factory: seconds per run on 2 cores."""
    from hyco.config import load_config

    def make(*overrides: str):
        base = [
            f"data.cache_dir={cache_dir}",
            "data.num_simulations=6",
            "data.num_steps=12",
            "trainer_params.train_sim=[0,1]",
            "trainer_params.val_sim=[2,3]",
            "trainer_params.test_sim=[4,5]",
            "trainer_params.num_predict_steps=3",
            "trainer_params.epochs=4",
            "trainer_params.warmup_epochs=1",
            "trainer_params.num_random_ics=1",
            "model.synthetic.base_channels=8",
        ]
        return load_config("burgers_hybrid_quick_test", base + list(overrides))

    return make
