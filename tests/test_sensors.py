"""Sensors (fixed and moving) and a box interaction region: positions, validation, and the
observation contract (every hidden value changed gives a bitwise-identical run)."""

from __future__ import annotations

import pytest
import torch
from test_observation_contract import CASES, numbers

from hyco.config import load_config
from hyco.data import load_or_simulate
from hyco.data.dataset import split
from hyco.data.observe import sensor_masks, sensor_position
from hyco.errors import ConfigError
from hyco.physics import make_problem
from hyco.runtime import configure
from hyco.training import create_trainer
from hyco.training.hybrid import interaction_mask


def test_sensor_positions_are_linear_between_waypoints_and_snapped_to_cells() -> None:
    path = [[0.0, 0.1, 0.2], [0.5, 0.5, 0.2], [1.0, 0.5, 0.9]]
    assert sensor_position(path, 0.25) == pytest.approx([0.3, 0.2])
    assert sensor_position(path, 0.75) == pytest.approx([0.5, 0.55])
    assert sensor_position([[0.3, 0.7, 0.4]], 0.9) == [0.7, 0.4]  # one waypoint: fixed
    masks = sensor_masks([path, [[0.0, 1.0, 1.0]]], [0.0, 0.25, 1.0], (8, 10))  # [Y, X]
    assert masks.shape == (3, 8, 10) and masks.sum((1, 2)).tolist() == [2, 2, 2]
    assert masks[0, 1, 1] == 1 and masks[1, 1, 3] == 1 and masks[2, 7, 5] == 1  # y = int(0.9*8) = 7, x = 5
    assert masks[:, 7, 9].tolist() == [1, 1, 1]  # 1.0 falls into the last cell


def test_box_interaction_region_is_the_box() -> None:
    observed = torch.zeros(8, 10)
    box = interaction_mask([[0.5, 1.0], [0.0, 0.25]], observed)
    assert box.sum() == 5 * 2 and box[:2, 5:].all()
    assert torch.equal(interaction_mask("unobserved", observed), 1 - observed)


@pytest.mark.parametrize(("override", "message"), [
    ("data.observation.sensors=[]", r"data.observation.sensors is \[\], but must list at least one"),
    ("data.observation.sensors=[[[0.5,0.1,0.2],[0.2,0.3,0.3]]]", r"data.observation.sensors\[0\] is .* with t increasing"),
    ("data.observation.sensors=[[[0.0,1.2,0.2]]]", r"data.observation.sensors\[0\] is .*fractions in \[0, 1\]"),
    ("data.observation.sensors=[[[0.0,0.2]]]", r"data.observation.sensors\[0\] is .*\[t, x, y\]"),
])
def test_bad_sensors_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("heat_hybrid_quick_test", ["data.observation.mask=sensors", override])


@pytest.mark.parametrize("box", ["[[0.5,0.2],[0.0,1.0]]", "[[0.0,0.5]]", "somewhere"])
def test_bad_interaction_box_is_one_line_error(box: str) -> None:
    with pytest.raises(ConfigError, match=r"trainer_params.interaction_region is .* or a box of one \[lo, hi\] per axis \(2"):
        load_config("heat_hybrid_quick_test", [f"trainer_params.interaction_region={box}"])


SENSORS = {
    # three fixed sensors on the 1D line
    "burgers": ("[[[0.0,0.1]],[[0.0,0.45]],[[0.0,0.8]]]", "[[0.5,1.0]]"),
    # two sensors crossing the square and one fixed: the mask changes from frame to frame
    "heat": ("[[[0.0,0.1,0.1],[1.0,0.9,0.4]],[[0.0,0.8,0.9],[0.5,0.2,0.9],[1.0,0.2,0.1]],[[0.0,0.5,0.5]]]",
             "[[0.5,1.0],[0.5,1.0]]"),
}


@pytest.mark.parametrize("problem_name", ["burgers", "heat"])
def test_sensors_hide_everything_else(tmp_path, problem_name: str) -> None:
    name, sizes, _ = CASES[problem_name]
    sensors, box = SENSORS[problem_name]
    cfg = load_config(name, [
        f"data.cache_dir={tmp_path}", *sizes, "data.observation.mask=sensors", f"data.observation.sensors={sensors}",
        "data.observation.noise=0.02", "data.observation.stride=3", f"trainer_params.interaction_region={box}",
        "trainer_params.num_predict_steps=1", "trainer_params.epochs=3", "trainer_params.warmup_epochs=1",
        "trainer_params.alpha=0.5", "trainer_params.num_random_ics=1", "trainer_params.physical.max_iterations=2",
    ])
    configure(cfg.run_params)
    problem = make_problem(cfg.model.physical)
    trajectories, _, _ = load_or_simulate(problem, cfg.data, cfg.run_params.dtype)
    original = split(trajectories, cfg)
    obs = original.observations
    assert (obs.moving is not None) == (problem_name == "heat")
    assert obs.frame_masks.sum((1, 2)).max() <= 3  # at most one cell per sensor and frame

    changed_data = trajectories.clone()
    hidden = torch.ones(trajectories.shape[1:], dtype=torch.bool)  # [T+1, C, *S]
    hidden[0] = False
    hidden[obs.stride :: obs.stride] = (obs.frame_masks == 0).expand_as(hidden[obs.stride :: obs.stride])
    garbage = 100 * torch.randn(trajectories.shape, generator=torch.Generator().manual_seed(5), dtype=trajectories.dtype)
    for sim in cfg.trainer_params.train_sim:
        changed_data[sim][hidden] = garbage[sim][hidden]
    assert (changed_data != trajectories).float().mean() > 0.2

    runs = []
    for dataset in (original, split(changed_data, cfg)):
        trainer = create_trainer(cfg, dataset=dataset)
        runs.append((numbers(trainer.fit()), trainer.state_dict()))
    (history_a, state_a), (history_b, state_b) = runs
    assert any(m["coupled"] for m in history_a)
    assert history_a == history_b
    for key in ("model", "physical"):
        for (name_a, a), (name_b, b) in zip(state_a[key].items(), state_b[key].items()):
            assert name_a == name_b and torch.equal(a, b), f"{key}.{name_a} differs"

    # teeth: a value a sensor reads changes the run
    observed = trajectories.clone()
    observed[cfg.trainer_params.train_sim[0], obs.stride] += 0.5 * obs.frame_masks[0]
    trainer = create_trainer(cfg, dataset=split(observed, cfg))
    assert numbers(trainer.fit()) != history_a
