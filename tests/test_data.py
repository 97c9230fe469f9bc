"""Simulated datasets: determinism, the on-disk cache (hits, corruption, foreign files),
splits and the observation model (masks, noise, stride)."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch

import hyco.data.generate as generate
from hyco.config import load_config
from hyco.data import build_dataset, cache_path, dataset_key, load_or_simulate, simulate
from hyco.physics import make_problem

BURGERS = "burgers_physical_quick_test"
HEAT = "heat_hybrid_quick_test"
# pinned sizes, so that edits of the shipped configs do not change what is tested
BURGERS_DATA = [
    "data.num_simulations=8",
    "data.num_steps=30",
    "trainer_params.num_predict_steps=5",
    "trainer_params.train_sim=[0,1,2,3]",
    "trainer_params.val_sim=[4,5]",
    "trainer_params.test_sim=[6,7]",
]


def burgers(cache, *overrides):
    cfg = load_config(BURGERS, [f"data.cache_dir={cache}", *BURGERS_DATA, *overrides])
    return cfg, make_problem(cfg.model.physical)


def heat(cache, *overrides):
    cfg = load_config(HEAT, [f"data.cache_dir={cache}", "data.num_steps=10", "trainer_params.num_predict_steps=3", *overrides])
    return cfg, make_problem(cfg.model.physical)


@pytest.fixture
def count_simulations(monkeypatch):
    """Counts calls of the simulator behind load_or_simulate."""
    calls = []
    real = generate.simulate

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, "simulate", counted)
    return calls


# ----- simulation and cache ---------------------------------------------------------------------


def test_simulation_is_deterministic(tmp_path):
    cfg, problem = burgers(tmp_path)
    first = simulate(problem, cfg.data, "float32")
    second = simulate(make_problem(cfg.model.physical), cfg.data, "float32")  # a fresh problem instance
    assert first.shape == (8, 31, 1, 128)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)
    # sim i does not depend on the batch it was simulated in, nor on num_simulations
    assert torch.equal(simulate(problem, cfg.data, "float32", batch_size=3), first)
    few, _ = burgers(tmp_path, "data.num_simulations=3", "trainer_params.train_sim=[0]",
                     "trainer_params.val_sim=[1]", "trainer_params.test_sim=[2]")
    assert torch.equal(simulate(problem, few.data, "float32"), first[:3])
    # another seed gives other data
    other, _ = burgers(tmp_path, "data.seed=1")
    assert not torch.equal(simulate(problem, other.data, "float32")[:, 0], first[:, 0])


def test_second_load_is_a_cache_hit(tmp_path, count_simulations):
    cfg, problem = burgers(tmp_path)
    first, path, hit = load_or_simulate(problem, cfg.data, "float32")
    assert not hit and path.is_file() and len(count_simulations) == 1
    assert path == cache_path(cfg.data, problem.cfg, "float32")
    assert path.parent.parent == tmp_path  # the private cache, never the user's
    second, path2, hit2 = load_or_simulate(problem, cfg.data, "float32")
    assert hit2 and path2 == path
    assert len(count_simulations) == 1, "a cache hit must not simulate again"
    assert torch.equal(first, second)
    # observation settings do not change the cache key
    noisy, _ = burgers(tmp_path, "data.observation.noise=0.1", "data.observation.stride=2")
    assert dataset_key(noisy.data, problem.cfg, "float32") == dataset_key(cfg.data, problem.cfg, "float32")


def test_precision_is_part_of_the_key_and_of_the_numbers(tmp_path):
    """float32 and float64 simulations differ, so they must not share a cache file; each is made
    in its own precision whatever the process-wide one is."""
    from phiml import math

    cfg, problem = burgers(tmp_path, "data.num_simulations=2", "trainer_params.train_sim=[0]",
                           "trainer_params.val_sim=[1]", "trainer_params.test_sim=[]")
    assert dataset_key(cfg.data, problem.cfg, "float32") != dataset_key(cfg.data, problem.cfg, "float64")
    single = simulate(problem, cfg.data, "float32")
    double = simulate(problem, cfg.data, "float64")
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    assert 0 < (single.double() - double).abs().max() < 1e-4
    before = math.get_precision()
    try:
        math.set_global_precision(64)
        assert torch.equal(simulate(problem, cfg.data, "float32"), single)
        math.set_global_precision(32)
        assert torch.equal(simulate(problem, cfg.data, "float64"), double)
    finally:
        math.set_global_precision(before)


@pytest.mark.parametrize("damage", ["truncate", "overwrite", "garbage", "tampered"])
def test_corrupt_cache_is_rebuilt(tmp_path, count_simulations, caplog, damage):
    cfg, problem = burgers(tmp_path)
    fresh, path, _ = load_or_simulate(problem, cfg.data, "float32")
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "overwrite":  # flip bytes inside the stored array
        middle = len(raw) // 2
        raw[middle : middle + 64] = bytes(255 - b for b in raw[middle : middle + 64])
        path.write_bytes(bytes(raw))
    elif damage == "garbage":
        path.write_bytes(b"not a torch file")
    else:  # a readable file with the right key whose array no longer matches its checksum
        payload = torch.load(path, weights_only=True)
        payload["trajectories"][0, 5, 0, 7] += 1.0
        torch.save(payload, path)
    with caplog.at_level(logging.WARNING, logger="hyco.data.generate"):
        rebuilt, path2, hit = load_or_simulate(problem, cfg.data, "float32")
    assert not hit and path2 == path
    assert len(count_simulations) == 2
    assert torch.equal(rebuilt, fresh)
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    # the rebuilt file is valid again
    again, _, hit = load_or_simulate(problem, cfg.data, "float32")
    assert hit and torch.equal(again, fresh)


def test_cache_file_of_another_configuration_is_rebuilt(tmp_path, count_simulations):
    cfg, problem = burgers(tmp_path)
    other_cfg, _ = burgers(tmp_path / "other", "data.seed=1")
    other, other_path, _ = load_or_simulate(problem, other_cfg.data, "float32")
    path = cache_path(cfg.data, problem.cfg, "float32")
    assert other_path != path
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(other_path, path)  # a valid file, but made for seed 1
    data, _, hit = load_or_simulate(problem, cfg.data, "float32")
    assert not hit
    assert torch.equal(data, simulate(problem, cfg.data, "float32"))
    assert not torch.equal(data, other)


# ----- splits -----------------------------------------------------------------------------------


def test_splits_are_disjoint_by_simulation_and_sized_as_configured(tmp_path):
    cfg, problem = burgers(tmp_path)
    ds = build_dataset(cfg, problem)
    full, _, _ = load_or_simulate(problem, cfg.data, "float32")
    tp = cfg.trainer_params
    assert ds.observations.initial.shape[0] == len(tp.train_sim) == 4
    assert ds.val.shape[0] == len(tp.val_sim) == 2
    assert ds.test.shape[0] == len(tp.test_sim) == 2
    assert torch.equal(ds.val, full[tp.val_sim])
    assert torch.equal(ds.test, full[tp.test_sim])
    assert not set(tp.train_sim) & set(tp.val_sim) and not set(tp.train_sim) & set(tp.test_sim)
    assert not set(tp.val_sim) & set(tp.test_sim)
    # a full, noise-free observation is the train split itself: frame 0, then every frame
    train = full[tp.train_sim]
    assert torch.equal(ds.observations.initial, train[:, 0])
    assert torch.equal(ds.observations.frames, train[:, 1:])
    assert ds.observations.observed_fraction == 1.0
    assert not hasattr(ds, "train"), "the full training trajectories must not reach a run"


# ----- observation model ------------------------------------------------------------------------


def test_region_mask_1d_covers_the_requested_fraction(tmp_path):
    cfg, problem = burgers(tmp_path, "data.observation.mask=region", "data.observation.region=[[0.25,0.75]]")
    obs = build_dataset(cfg, problem).observations
    assert obs.mask.shape == (128,)
    assert obs.observed_fraction == 0.5
    assert obs.mask[32:96].eq(1).all() and obs.mask[:32].eq(0).all() and obs.mask[96:].eq(0).all()


def test_region_mask_2d_is_x_first(tmp_path):
    """region = [[x_lo, x_hi], [y_lo, y_hi]]; the mask is [Y, X] (row = y)."""
    cfg, problem = heat(tmp_path, "data.observation.mask=region", "data.observation.region=[[0.0,0.5],[0.25,0.5]]")
    obs = build_dataset(cfg, problem).observations
    assert obs.mask.shape == (32, 32)
    assert obs.observed_fraction == pytest.approx(0.125)
    expected = torch.zeros(32, 32)
    expected[8:16, 0:16] = 1
    assert torch.equal(obs.mask, expected)


def test_random_mask_keeps_about_the_fraction(tmp_path):
    cfg, problem = heat(tmp_path, "data.observation.mask=random", "data.observation.fraction=0.3")
    ds = build_dataset(cfg, problem)
    obs = ds.observations
    assert set(obs.mask.unique().tolist()) == {0.0, 1.0}
    assert abs(obs.observed_fraction - 0.3) < 0.05  # 1024 points: std of the fraction ~ 0.014
    # same config, same mask
    assert torch.equal(build_dataset(cfg, problem).observations.mask, obs.mask)


def train_split(cfg, problem) -> torch.Tensor:
    """The full clean training trajectories (what the observations are made from)."""
    return load_or_simulate(problem, cfg.data, cfg.run_params.dtype)[0][cfg.trainer_params.train_sim]


def test_noise_is_relative_to_max_abs_u(tmp_path):
    sigma = 0.05
    cfg, problem = burgers(tmp_path, f"data.observation.noise={sigma}")
    ds = build_dataset(cfg, problem)
    train = train_split(cfg, problem)
    obs = ds.observations
    residual = torch.cat([obs.initial[:, None], obs.frames], dim=1) - train
    for n in range(train.shape[0]):
        expected = sigma * train[n].abs().max()
        measured = residual[n].std()
        assert abs(measured / expected - 1) < 0.2, (n, float(measured), float(expected))
        assert abs(residual[n].mean()) < 0.1 * expected
    # validation and test data stay clean; the noise is reproducible
    clean_cfg, _ = burgers(tmp_path)
    clean = build_dataset(clean_cfg, problem)
    assert torch.equal(ds.val, clean.val) and torch.equal(ds.test, clean.test)
    assert torch.equal(build_dataset(cfg, problem).observations.frames, ds.observations.frames)


def test_stride_selects_every_kth_frame(tmp_path):
    cfg, problem = burgers(tmp_path, "data.observation.stride=3")
    obs = build_dataset(cfg, problem).observations
    train = train_split(cfg, problem)
    assert obs.stride == 3 and obs.num_frames == 30
    assert obs.frames.shape[1] == 10  # frames 3, 6, ..., 30 (frame 0 is obs.initial)
    assert torch.equal(obs.frames, train[:, 3::3])
    assert torch.equal(obs.frames[:, 1], train[:, 6])
    assert torch.equal(obs.initial, train[:, 0])


def test_num_sims_limits_the_observed_trajectories(tmp_path):
    cfg, problem = burgers(tmp_path, "data.observation.num_sims=2")
    obs = build_dataset(cfg, problem).observations
    train = train_split(cfg, problem)
    assert obs.frames.shape[0] == obs.initial.shape[0] == 2
    assert torch.equal(obs.frames, train[:2, 1:])


def test_hidden_points_are_zero_after_frame_0(tmp_path):
    cfg, problem = burgers(tmp_path, "data.observation.mask=region", "data.observation.region=[[0.25,0.75]]",
                           "data.observation.noise=0.02")
    obs = build_dataset(cfg, problem).observations
    hidden = obs.mask == 0
    assert hidden.any()
    assert obs.frames[..., hidden].eq(0).all()
    assert obs.frames[..., ~hidden].ne(0).any() and obs.initial[..., hidden].ne(0).any()  # frame 0 in full
