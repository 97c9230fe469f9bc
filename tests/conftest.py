"""Shared fixtures: small configs with a private data cache per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator

import pytest
from phiml import math
from sweep_util import SMALL, stop_shared_ray

if os.environ.get("PYTEST_XDIST_WORKER"):  # scripts/test.sh: one worker per core, one torch thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore", message="Sparse")
# run_params.device defaults to auto (a GPU where torch sees one): tests run on the CPU everywhere
os.environ["CUDA_VISIBLE_DEVICES"] = ""
# the records of local Ray sessions (hyco_ray.runner.leftovers) go to a directory of this test session
os.environ["HYCO_RAY_SESSIONS"] = tempfile.mkdtemp(prefix="hyco-ray-sessions-")
atexit.register(shutil.rmtree, os.environ["HYCO_RAY_SESSIONS"], True)


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
            *SMALL,
            "trainer_params.epochs=4",
            "trainer_params.warmup_epochs=1",  # later overrides of a key win
        ]
        return load_config("burgers_hybrid_quick_test", base + list(overrides))

    return make



@pytest.fixture
def no_shared_ray():
    """For a test that starts Ray in this process itself, or asserts that none is left running."""
    stop_shared_ray()


@pytest.fixture(scope="module", autouse=True)
def _shared_ray_ends_with_its_module():
    """The shared Ray never outlives the module that started it (other modules see no Ray)."""
    yield
    stop_shared_ray()


@pytest.fixture
def float64() -> Iterator[None]:
    """PhiML in double precision for one test (references to 1e-10), restored after it."""
    previous = math.get_precision()
    math.set_global_precision(64)
    yield
    math.set_global_precision(previous)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with the most slow tests first (a stable sort: tests keep their order in a file).
    scripts/test.sh hands whole files to two workers; a long file started last would run alone."""
    slow: dict[str, int] = {}
    for item in items:
        slow[item.location[0]] = slow.get(item.location[0], 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.location[0]])
