"""trainer_params.schedule: settings that change between epochs (what a PBT trial followed).

The reference is the operation PBT performs, written out here without Ray: train with the first
settings, save the trainer state, build a trainer with the new settings, load the state, go on. A
run with the equivalent schedule must give the same numbers bit for bit.
"""

from __future__ import annotations

import pytest
import torch

from hyco.errors import ConfigError
from hyco.training import create_trainer

HALF = ["data.observation.mask=region", "data.observation.region=[[0.0,0.5]]"]
FIRST = ["trainer_params.alpha=0.9", "trainer_params.physical.max_iterations=3", "trainer_params.alpha_physical=0.95"]
LATER = ["trainer_params.alpha=0.3", "trainer_params.physical.max_iterations=1", "trainer_params.alpha_physical=0.6"]
STEP = "trainer_params.schedule=[{from_epoch: 3, set: {alpha: 0.3, physical.max_iterations: 1, alpha_physical: 0.6}}]"


def test_a_schedule_equals_changing_settings_through_a_checkpoint(small_burgers):
    first = create_trainer(small_burgers(*HALF, *FIRST))
    for _ in range(2):
        next(first.fit())
    state = first.state_dict()
    second = create_trainer(small_burgers(*HALF, *LATER))
    second.load_state_dict(state)
    by_hand = list(second.fit())

    scheduled = create_trainer(small_burgers(*HALF, *FIRST, STEP))
    rows = list(scheduled.fit())
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["val_loss"] for r in rows[:2]] == [r["val_loss"] for r in first.history]
    for mine, ref in zip(rows[2:], by_hand):
        assert {k: mine[k] for k in ("val_loss", "val_loss_synthetic", "val_loss_physical", "theta")} == \
            {k: ref[k] for k in ("val_loss", "val_loss_synthetic", "val_loss_physical", "theta")}
    for a, b in zip(scheduled.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)
    assert (scheduled.alpha, scheduled.alpha_physical, scheduled.tp.physical.max_iterations) == (0.3, 0.6, 1)
    # the new settings did change the run: not the same as keeping the first ones throughout
    fixed = create_trainer(small_burgers(*HALF, *FIRST))
    assert list(fixed.fit())[-1]["val_loss"] != rows[-1]["val_loss"]


def test_a_resumed_run_continues_its_schedule(small_burgers):
    cfg = [*HALF, *FIRST, STEP]
    whole = create_trainer(small_burgers(*cfg)).train()
    part = create_trainer(small_burgers(*cfg))
    for _ in range(3):  # past the change: the resumed trainer must take the step's values itself
        next(part.fit())
    resumed = create_trainer(small_burgers(*cfg))
    resumed.load_state_dict(part.state_dict())
    assert resumed.train()["val_loss"] == whole["val_loss"]


def test_interleave_and_iterations_follow_the_schedule(small_burgers):
    step = "trainer_params.schedule=[{from_epoch: 2, set: {interleave_frequency: 2}}, {from_epoch: 3, set: {physical.max_iterations: 1}}]"
    trainer = create_trainer(small_burgers(*HALF, "trainer_params.warmup_epochs=0", step))
    rows = list(trainer.fit())
    assert [r["physical_step"] for r in rows] == [True, False, True, False]  # epoch (0-based) % f == 0: f=1, then 2
    assert rows[2]["lbfgs_iterations"] <= 1 < rows[0]["lbfgs_iterations"]


@pytest.mark.parametrize("step, message", [
    ("[{from_epoch: 9, set: {alpha: 0.3}}]", "within 1..trainer_params.epochs = 4"),
    ("[{from_epoch: 3, set: {alpha: 0.3}}, {from_epoch: 2, set: {alpha: 0.4}}]", "increasing epoch order"),
    ("[{from_epoch: 2, set: {epochs: 9}}]", "epochs cannot change during training; schedulable: alpha"),
    ("[{from_epoch: 2, set: {alpha: 1.5}}]", "schedule[0] (from epoch 2): trainer_params.alpha is 1.5"),
    ("[{from_epoch: 2, set: {physical.max_iterations: many}}]", "schedule[0].set: Value 'many'"),
])
def test_bad_schedules_are_refused_with_the_step_named(small_burgers, step, message):
    with pytest.raises(ConfigError) as err:
        small_burgers(f"trainer_params.schedule={step}")
    assert message in str(err.value)
