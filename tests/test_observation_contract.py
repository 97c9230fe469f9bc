"""The observation model is a contract (docs/architecture.md): a training run must be bitwise unchanged when
every value the learners may not see is changed.

Hidden: outside the mask in every frame after frame 0, every frame between two observed ones
(stride), and every training simulation beyond ``num_sims``. The test overwrites all of them
with garbage and trains HYCO (warm-up, synthetic and physical steps, interaction, noise) on both
versions of the data.
"""

from __future__ import annotations

import pytest
import torch

from hyco.config import load_config
from hyco.data import load_or_simulate
from hyco.data.dataset import split
from hyco.physics import make_problem
from hyco.runtime import configure
from hyco.training import create_trainer

CASES = {
    "burgers": ("burgers_hybrid_quick_test", ["data.num_simulations=6", "data.num_steps=12",
                                              "trainer_params.train_sim=[0,1,2]", "trainer_params.val_sim=[3,4]",
                                              "trainer_params.test_sim=[5]", "model.synthetic.options.base_channels=8"],
                "[[0.25,0.6]]"),
    "heat": ("heat_hybrid_quick_test", ["data.num_simulations=5", "data.num_steps=8",
                                        "trainer_params.train_sim=[0,1,2]", "trainer_params.val_sim=[3]",
                                        "trainer_params.test_sim=[4]", "model.synthetic.options.base_channels=8"],
             "[[0.0,0.5],[0.5,1.0]]"),
}


def numbers(history: list[dict]) -> list[dict]:
    """The metrics without wall-clock timings."""
    return [{k: v for k, v in m.items() if not k.startswith("time_")} for m in history]


def hide(trajectories: torch.Tensor, cfg, mask: torch.Tensor) -> torch.Tensor:
    """A copy of the simulated data with every hidden training value replaced by garbage."""
    changed = trajectories.clone()
    train = cfg.trainer_params.train_sim
    obs = cfg.data.observation
    seen = len(train) if obs.num_sims is None else obs.num_sims
    gen = torch.Generator().manual_seed(123)
    garbage = 100 * torch.randn(trajectories.shape, generator=gen, dtype=trajectories.dtype)
    hidden = torch.ones(trajectories.shape[1:], dtype=torch.bool)  # [T+1, C, *S]
    hidden[0] = False  # frame 0 is known in full
    hidden[obs.stride :: obs.stride] = mask == 0  # observed frames: only the masked-out points
    for position, sim in enumerate(train):
        where = torch.ones_like(hidden) if position >= seen else hidden
        changed[sim][where] = garbage[sim][where]
    return changed


@pytest.mark.parametrize("mask", ["region", "random"])
@pytest.mark.parametrize("problem_name", ["burgers", "heat"])
def test_changing_every_hidden_value_gives_the_same_run(tmp_path, problem_name, mask):
    name, sizes, region = CASES[problem_name]
    observation = (
        ["data.observation.mask=region", f"data.observation.region={region}"]
        if mask == "region"
        else ["data.observation.mask=random", "data.observation.fraction=0.4"]
    )
    cfg = load_config(name, [
        f"data.cache_dir={tmp_path}", *sizes, *observation,
        "data.observation.noise=0.02", "data.observation.stride=2", "data.observation.num_sims=2",
        "trainer_params.num_predict_steps=2", "trainer_params.epochs=3", "trainer_params.warmup_epochs=1",
        "trainer_params.alpha=0.5", "trainer_params.num_random_ics=1", "trainer_params.physical.max_iterations=2",
    ])
    configure(cfg.run_params)
    problem = make_problem(cfg.model.physical)
    trajectories, _, _ = load_or_simulate(problem, cfg.data, cfg.run_params.dtype)
    original = split(trajectories, cfg)
    assert 0 < original.observations.observed_fraction < 1
    changed_data = hide(trajectories, cfg, original.observations.mask)
    assert (changed_data != trajectories).float().mean() > 0.2, "the test must change a lot of values"
    changed = split(changed_data, cfg)

    runs = []
    for dataset in (original, changed):
        trainer = create_trainer(cfg, dataset=dataset)
        history = numbers(trainer.fit())
        runs.append((history, trainer.state_dict()))
    (history_a, state_a), (history_b, state_b) = runs
    assert any(m["physical_step"] for m in history_a) and history_a[-1]["phase"] == "hybrid"
    assert history_a == history_b  # every metric, bit for bit (floats compared exactly)
    for key in ("model", "physical"):
        for (name_a, a), (name_b, b) in zip(state_a[key].items(), state_b[key].items()):
            assert name_a == name_b and torch.equal(a, b), f"{key}.{name_a} differs"

    # and the check has teeth: changing one *observed* value changes the run
    observed = trajectories.clone()
    sim = cfg.trainer_params.train_sim[0]
    observed[sim, cfg.data.observation.stride] += 0.5 * original.observations.mask
    trainer = create_trainer(cfg, dataset=split(observed, cfg))
    assert numbers(trainer.fit()) != history_a
