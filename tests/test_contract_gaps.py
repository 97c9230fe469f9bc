"""The observation contract through the paths tests/test_observation_contract.py does not take.

* the cache: data simulated, written to the cache, read back by the trainer's own
  ``build_dataset``; every hidden value changed *in the cache file* gives a bitwise-identical run;
* a stride that leaves hidden frames after the last observed one (8 steps, stride 3: frames 7, 8);
* val/test isolation: other val and test sims change no training number (θ, S weights, losses),
  only the val metrics.
"""

from __future__ import annotations

import torch
from test_observation_contract import CASES, hide, numbers

from hyco.config import load_config
from hyco.data import load_or_simulate
from hyco.data.dataset import split
from hyco.data.generate import _checksum
from hyco.physics import make_problem
from hyco.runtime import configure
from hyco.training import create_trainer


def small_config(tmp_path, stride: int, steps: int):
    name, sizes, region = CASES["burgers"]
    sizes = [s for s in sizes if not s.startswith("data.num_steps")]
    return load_config(name, [
        f"data.cache_dir={tmp_path}", *sizes, f"data.num_steps={steps}",
        "data.observation.mask=region", f"data.observation.region={region}",
        "data.observation.noise=0.02", f"data.observation.stride={stride}", "data.observation.num_sims=2",
        "trainer_params.num_predict_steps=2", "trainer_params.epochs=3", "trainer_params.warmup_epochs=1",
        "trainer_params.alpha=0.5", "trainer_params.num_random_ics=1", "trainer_params.physical.max_iterations=2",
    ])


def train(cfg, dataset=None) -> tuple[list[dict], dict]:
    trainer = create_trainer(cfg, dataset=dataset)
    return numbers(trainer.fit()), trainer.state_dict()


def assert_same_weights(state_a: dict, state_b: dict) -> None:
    for key in ("model", "physical"):
        for (name_a, a), (name_b, b) in zip(state_a[key].items(), state_b[key].items()):
            assert name_a == name_b and torch.equal(a, b), f"{key}.{name_a} differs"


def rewrite_cache(path, trajectories: torch.Tensor) -> None:
    """Put other trajectories into a valid cache file (same key, a matching checksum)."""
    payload = torch.load(path, weights_only=True)
    payload["trajectories"] = trajectories
    payload["checksum"] = _checksum(trajectories)
    torch.save(payload, path)


def test_hidden_values_changed_in_the_cache_give_the_same_run(tmp_path) -> None:
    cfg = small_config(tmp_path, stride=3, steps=8)
    configure(cfg.run_params)
    problem = make_problem(cfg.model.physical)
    trajectories, path, hit = load_or_simulate(problem, cfg.data, cfg.run_params.dtype)
    assert not hit and path.exists()
    observed_frames = list(range(cfg.data.observation.stride, cfg.data.num_steps + 1, cfg.data.observation.stride))
    assert observed_frames[-1] < cfg.data.num_steps, "hidden frames must follow the last observed one"

    history_a, state_a = train(cfg)  # reads the cache through build_dataset
    mask = split(trajectories, cfg).observations.mask
    changed = hide(trajectories, cfg, mask)
    trailing = changed[cfg.trainer_params.train_sim[0], observed_frames[-1] + 1 :]
    assert not torch.equal(trailing, trajectories[cfg.trainer_params.train_sim[0], observed_frames[-1] + 1 :])
    rewrite_cache(path, changed)
    read_back, _, hit = load_or_simulate(problem, cfg.data, cfg.run_params.dtype)
    assert hit and torch.equal(read_back, changed), "the run must read the changed cache"

    history_b, state_b = train(cfg)
    assert any(m["physical_step"] for m in history_a)
    assert history_a == history_b
    assert_same_weights(state_a, state_b)

    # teeth: one observed value changed in the cache changes the run
    observed = trajectories.clone()
    observed[cfg.trainer_params.train_sim[0], observed_frames[-1]] += 0.5 * mask
    rewrite_cache(path, observed)
    assert train(cfg)[0] != history_a


def test_val_and_test_sims_do_not_reach_training(tmp_path) -> None:
    cfg = small_config(tmp_path, stride=2, steps=8)
    configure(cfg.run_params)
    problem = make_problem(cfg.model.physical)
    trajectories, _, _ = load_or_simulate(problem, cfg.data, cfg.run_params.dtype)
    others = trajectories.clone()
    held_out = cfg.trainer_params.val_sim + cfg.trainer_params.test_sim
    others[held_out] = 0.7 * trajectories[held_out].flip(-1)  # other (finite, smooth) sims
    history_a, state_a = train(cfg, split(trajectories, cfg))
    history_b, state_b = train(cfg, split(others, cfg))
    assert_same_weights(state_a, state_b)

    def training_part(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in m.items() if not k.startswith("val_")} for m in history]

    assert training_part(history_a) == training_part(history_b)
    assert [m["val_loss"] for m in history_a] != [m["val_loss"] for m in history_b], "the val sims must count"
