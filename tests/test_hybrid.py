"""HybridTrainer: rollouts, the HYCO epoch, warm-up, interleaving, resume, NaN handling."""

from __future__ import annotations

import json

import pytest
import torch

from hyco.data import load_or_simulate
from hyco.errors import TrainingError
from hyco.registry import TRAINERS
from hyco.run import train_run
from hyco.training import HybridTrainer, create_trainer


def test_trainer_registry_lists_and_creates(small_burgers):
    assert {"synthetic", "physical", "hybrid"} <= set(TRAINERS.names())
    for name in TRAINERS.names():
        trainer = create_trainer(small_burgers(f"run_params.model_type={name}"))
        assert trainer.name == name


def test_generate_synthetic_predictions(small_burgers):
    trainer = create_trainer(small_burgers())
    x0 = trainer.interaction_initial_states(0)[:3]  # 2 observed starts and a fresh one
    with torch.no_grad():
        for p in trainer.model.parameters():  # make the net non-trivial
            p.add_(0.01 * torch.randn_like(p))
    rollout = trainer.synthetic_rollout(x0, 4)
    assert rollout.shape == (3, 4, *x0.shape[1:])
    # autoregressive: frame k+1 is the model applied to frame k
    torch.testing.assert_close(rollout[:, 1], trainer.model(rollout[:, 0]))
    rollout.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters())


def test_generate_physical_predictions(small_burgers):
    trainer = create_trainer(small_burgers())
    cfg = trainer.cfg
    train = load_or_simulate(trainer.problem, cfg.data, cfg.run_params.dtype)[0][cfg.trainer_params.train_sim]
    truth = trainer.problem.truth
    rollout = trainer.physical_rollout(train[:, 0], 5, theta=truth)
    assert rollout.shape == (len(train), 5, *train.shape[2:])
    # at theta* P reproduces the simulated data
    torch.testing.assert_close(rollout, train[:, 1:6], rtol=1e-5, atol=1e-6)
    # at the initial guess it does not
    guess = trainer.physical_rollout(train[:, 0], 5)
    assert (guess - train[:, 1:6]).abs().max() > 1e-3


def test_hybrid_training_one_epoch(small_burgers):
    trainer = create_trainer(small_burgers("trainer_params.warmup_epochs=0"))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    start_error = trainer.physical.param_error()
    metrics = trainer.run_epoch(0)
    assert metrics["physical_step"] and metrics["phase"] == "hybrid"
    assert metrics["param_error"] < start_error  # theta moved toward theta*
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    for key in ("val_loss", "val_loss_physical", "param_error", "theta", "time_synthetic", "time_physical",
                "time_conversion"):
        assert key in metrics


def test_hybrid_training_warmup(small_burgers):
    trainer = create_trainer(small_burgers("trainer_params.warmup_epochs=2", "trainer_params.epochs=3"))
    guess = trainer.problem.guess.tolist()
    history = list(trainer.fit())
    assert [m["physical_step"] for m in history] == [False, False, True]
    assert [m["phase"] for m in history] == ["warmup", "warmup", "hybrid"]
    assert history[0]["theta"] == guess and history[1]["theta"] == guess
    assert history[2]["theta"] != guess
    assert history[0]["time_physical"] == 0.0


def test_interleaved_training_loop(small_burgers):
    trainer = create_trainer(small_burgers(
        "trainer_params.warmup_epochs=1", "trainer_params.interleave_frequency=2", "trainer_params.epochs=6"))
    history = list(trainer.fit())
    steps = [m["epoch"] for m in history if m["physical_step"]]
    assert steps == [2, 4, 6]
    for previous, current in zip(history, history[1:]):
        if not current["physical_step"]:
            assert current["theta"] == previous["theta"]
        else:
            assert current["lbfgs_iterations"] >= 1


@pytest.mark.parametrize("jit", [False, True])
def test_resume_gives_same_numbers(small_burgers, jit):
    """Bitwise, with eager and with traced gradients: hyco.runtime.configure turns TorchScript's
    graph specialisation off, which otherwise made a resumed process (whose traces are younger)
    differ in the last bits, amplified to 5e-6 by training."""
    overrides = ("trainer_params.epochs=4", f"model.physical.jit={str(jit).lower()}")
    full = list(create_trainer(small_burgers(*overrides)).fit())

    first = create_trainer(small_burgers(*overrides))
    fit = first.fit()
    next(fit)
    next(fit)
    state = first.state_dict()
    second = create_trainer(small_burgers(*overrides))
    second.load_state_dict(state)
    resumed = list(second.fit())
    assert [m["epoch"] for m in resumed] == [3, 4]
    for a, b in zip(full[2:], resumed):
        for key in ("val_loss", "val_loss_physical", "param_error", "theta", "train_loss"):
            assert a[key] == b[key], key


def test_nan_stops_with_clear_message_and_keeps_history(small_burgers):
    trainer: HybridTrainer = create_trainer(small_burgers())
    fit = trainer.fit()
    next(fit)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingError, match="synthetic loss became nan"):
        next(fit)
    assert len(trainer.history) == 1


def test_nan_in_run_keeps_metrics_file(small_burgers, tmp_path):
    cfg = small_burgers("trainer_params.synthetic.learning_rate=1e30", "trainer_params.warmup_epochs=0")
    with pytest.raises(TrainingError, match="learning_rate"):
        train_run(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert (tmp_path / "run" / "config.yaml").exists()


def test_synthetic_and_physical_alone(small_burgers):
    syn = create_trainer(small_burgers("run_params.model_type=synthetic", "trainer_params.alpha=0.3"))
    history = list(syn.fit())
    assert not any(m["physical_step"] for m in history)
    assert history[-1]["theta"] == syn.problem.guess.tolist()
    assert syn.alpha == 1.0
    phys = create_trainer(small_burgers("run_params.model_type=physical", "trainer_params.physical.max_iterations=10"))
    history = list(phys.fit())
    assert all(m["physical_step"] for m in history)
    assert history[-1]["param_error"] < 0.05
    assert history[-1]["val_loss"] == history[-1]["val_loss_physical"]


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_burgers_hybrid_training_end_to_end(cache_dir, tmp_path):
    from hyco.config import load_config

    cfg = load_config("burgers_hybrid_quick_test", [f"data.cache_dir={cache_dir}", "run_params.mode=[train,evaluate]"])
    final = train_run(cfg, tmp_path / "run", progress=False)
    history = _metrics(tmp_path / "run")
    assert len(history) == cfg.trainer_params.epochs
    assert final["param_error"] < 2.0  # the guess is 3x the truth: error 2.0 at the start
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert final["test_loss_physical"] < 0.05
    for name in ("config.yaml", "environment.json", "checkpoint.pt", "test_metrics.json",
                 "figures/losses.png", "figures/theta.png", "figures/predictions.png"):
        assert (tmp_path / "run" / name).exists(), name
    conversion = sum(m["time_conversion"] for m in history) / sum(m["time_epoch"] for m in history)
    assert conversion < 0.10


@pytest.mark.slow
def test_heat_hybrid_training(cache_dir, tmp_path):
    from hyco.config import load_config

    cfg = load_config("heat_hybrid_quick_test", [f"data.cache_dir={cache_dir}"])
    train_run(cfg, tmp_path / "run", progress=False)
    history = _metrics(tmp_path / "run")
    guess_error = 2.0
    assert history[-1]["param_error"] < 0.5 * guess_error
    assert history[-1]["val_loss_synthetic"] < history[0]["val_loss_synthetic"]
    assert history[-1]["val_loss_physical"] < history[0]["val_loss_physical"]
    assert (tmp_path / "run" / "figures" / "predictions.png").exists()


@pytest.mark.slow
def test_smoke_hybrid_training(cache_dir, tmp_path):
    from hyco.config import load_config

    # 12x12, 8 frames, 2 L-BFGS iterations a physical epoch (shipped: 32x32, 16, 5): the same coupled
    # run at a seventh of the cost (θ error 0.014 after 4 epochs, from 2.0)
    cfg = load_config("smoke_hybrid_quick_test", [f"data.cache_dir={cache_dir}", "model.physical.resolution=[12,12]",
                                                  "data.num_steps=8", "trainer_params.physical.max_iterations=2"])
    train_run(cfg, tmp_path / "run", progress=False)
    history = _metrics(tmp_path / "run")
    assert history[-1]["param_error"] < 0.5 * 2.0
    assert history[-1]["val_loss_synthetic"] < history[0]["val_loss_synthetic"]
    assert (tmp_path / "run" / "checkpoint.pt").exists()
