"""The best-epoch objective (issue 19): a trainer with ``keep_best`` keeps S's and P's state of its
best val epoch (in its checkpoint) and ends with it; a sweep with ``objective_epoch: best`` reports the
best epoch so far, and its export reruns to that epoch's metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hyco.training import create_trainer

#: a constant, large learning rate: S's val error goes up and down, so the best epoch is not the last
NOISY = ["trainer_params.synthetic.learning_rate=0.1", "trainer_params.synthetic.lr_schedule=constant",
         "trainer_params.epochs=5", "trainer_params.keep_best=val_loss"]


def test_the_trainer_ends_with_its_best_val_epochs_state(small_burgers):
    trainer = create_trainer(small_burgers(*NOISY))
    rows = list(trainer.fit())
    raw = [r["val_loss"] for r in rows]
    best = raw.index(min(raw))
    assert best + 1 < len(rows), "the problem should have a best epoch before the last"
    assert [r["best_epoch"] for r in rows] == [raw.index(min(raw[: i + 1])) + 1 for i in range(len(raw))]
    assert rows[-1]["best_val_loss"] == min(raw) and rows[-1]["restored_best_epoch"] == best + 1
    again = trainer.evaluate(trainer.val)  # the state it ended with is the best epoch's
    assert math.isclose(again["loss_synthetic"], rows[best]["val_loss_synthetic"], rel_tol=1e-9)
    assert math.isclose(again["loss_physical"], rows[best]["val_loss_physical"], rel_tol=1e-9)
    assert math.isclose(trainer.physical.param_error(), rows[best]["param_error"], rel_tol=1e-9)


def test_the_best_state_rides_in_the_checkpoint(small_burgers, tmp_path):
    from hyco.run import load_checkpoint, save_checkpoint

    cfg = small_burgers(*NOISY)
    first = create_trainer(cfg)
    for row in first.fit():
        if row["epoch"] == 3:
            break
    save_checkpoint(first, tmp_path / "c.pt")
    second = create_trainer(cfg)
    second.load_state_dict(load_checkpoint(tmp_path / "c.pt"))  # weights_only: the best state is tensors and numbers
    assert second.best["epoch"] == first.best["epoch"]
    assert all(torch.equal(second.best["model"][k], v) for k, v in first.best["model"].items())


def test_keep_best_names_a_val_metric(small_burgers):
    from hyco.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer_params.keep_best.*val_loss"):
        small_burgers("trainer_params.keep_best=param_error")


@pytest.mark.slow
def test_best_epoch_export_reruns_to_the_best_epochs_metrics(tmp_path):
    """A tiny sweep with objective_epoch: best; every row reports the best epoch so far (raw beside
    it); the export of its best trial, rerun by hyco train, ends with that epoch's state: the same
    val values at that epoch and the same test metrics."""
    from sweep_util import write_space

    from hyco_ray.cli import main
    from hyco_ray.core.space import load_space
    from hyco_ray.core.sweep_dir import load_sweep
    from hyco_ray.runner.sweep import run_sweep

    space = write_space(tmp_path, cache_dir=tmp_path / "cache", num_samples=2, objective_epoch="best")
    spec = load_space(space, [o for o in NOISY if "keep_best" not in o])
    assert spec.max_t == 5 and f"trainer_params.keep_best={spec.metric}" in spec.trial_overrides({})
    sweep = load_sweep(run_sweep(spec, num_cpus=2).experiment_dir)
    for trial in sweep.trials:
        raw = [r["raw_val_loss"] for r in trial.history]
        assert [r["val_loss"] for r in trial.history] == [min(raw[: i + 1]) for i in range(len(raw))]
    best = sweep.best()
    epoch = best.final["best_epoch"]
    out, run_dir = tmp_path / "best.yaml", tmp_path / "rerun"
    assert main(["export", str(sweep.path), "-o", str(out)]) == 0
    assert main(["train", "--config-file", str(out), "--run-dir", str(run_dir)]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == spec.max_t and rows[-1]["restored_best_epoch"] == epoch
    for key in ("val_loss", "val_loss_synthetic", "val_loss_physical", "param_error"):
        assert math.isclose(rows[epoch - 1][key], best.final[key], rel_tol=1e-6), key
    assert main(["evaluate", str(run_dir)]) == 0  # the saved checkpoint is the best epoch's state
    test = json.loads((run_dir / "test_metrics.json").read_text())
    for key in ("test_loss_synthetic", "test_loss_physical", "param_error"):
        assert math.isclose(test[key], best.final[key], rel_tol=1e-6), key
