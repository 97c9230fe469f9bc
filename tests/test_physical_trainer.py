"""PhysicalTrainer: L-BFGS-B over the physical parameters with phiml's ``math.minimize``.

Real PhiFlow rollouts at the shipped test sizes (burgers 1D 128, heat 32x32, smoke 32x32);
every setting a test depends on is pinned by an override, so edits to the shipped configs do
not silently change what is tested. Data go to a private cache directory.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
import torch
from phiml.math import NotConverged

from hyco.config import load_config
from hyco.config.schema import PhysicalTrainerConfig
from hyco.data import build_dataset
from hyco.physics import make_problem
from hyco.runtime import configure
from hyco.training.physical import PhysicalTrainer

BURGERS = "burgers_physical_quick_test"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("physical-cache"))


def prepare(cache: str, name: str, *overrides: str, num_steps: int):
    """Config, problem and training observations (``num_steps`` frames after frame 0)."""
    cfg = load_config(name, [f"data.cache_dir={cache}", f"data.num_steps={num_steps}", *overrides])
    configure(cfg.run_params)
    problem = make_problem(cfg.model.physical)
    obs = build_dataset(cfg, problem).observations
    return cfg, problem, obs


@pytest.fixture(scope="module")
def burgers(cache):
    """Noise-free, fully observed 1D Burgers (128 cells, 10 frames); guess nu = 3 x truth."""
    cfg, problem, obs = prepare(cache, BURGERS, "data.observation.noise=0.0", num_steps=10)
    assert torch.allclose(problem.guess, 3 * problem.truth)  # far from converged at the start
    return cfg, problem, obs


def data_loss(trainer: PhysicalTrainer, obs):
    """P's rollout from the observed frame 0 against every observed frame (theta only)."""
    return trainer.data_loss(obs.initial, obs.frames, obs.mask, obs.stride)


# ----- suppression of NotConverged -----------------------------------------------------------


def test_suppress_convergence_disabled(burgers):
    """Off (the default is on, as in every shipped YAML), the iteration cap is NotConverged."""
    cfg, problem, obs = burgers
    params = replace(PhysicalTrainerConfig(), max_iterations=1, suppress_convergence_errors=False)
    trainer = PhysicalTrainer(problem, params)
    with pytest.raises(NotConverged) as info:
        trainer.optimize(data_loss(trainer, obs))
    assert str(info.value).strip(), "NotConverged must say why"
    assert torch.equal(trainer.theta, problem.guess.to(torch.float64)), "theta must be unchanged"


def test_suppress_convergence_enabled(burgers):
    cfg, problem, obs = burgers
    params = replace(PhysicalTrainerConfig(), max_iterations=1, suppress_convergence_errors=True)
    trainer = PhysicalTrainer(problem, params)
    loss = data_loss(trainer, obs)
    step = trainer.optimize(loss)  # no exception at the iteration cap
    guess, truth = problem.guess.to(torch.float64), problem.truth.to(torch.float64)
    assert step.iterations == 1
    assert not step.converged and not step.diverged
    assert not torch.equal(trainer.theta, guess), "fell back to the initial guess"
    assert torch.equal(step.theta, trainer.theta)
    assert (trainer.theta - truth).abs().item() < (guess - truth).abs().item(), "theta did not move toward the truth"
    assert trainer.param_error() < trainer.param_error(guess)
    assert step.loss_best < step.loss_start
    # the next call is warm-started from the iterate at the cap, not from the guess
    again = trainer.optimize(loss)
    assert again.loss_start < step.loss_start
    assert math.isclose(again.loss_start, step.loss_best, rel_tol=1e-3)


def test_physical_with_low_iterations(burgers):
    cfg, problem, obs = burgers
    params = replace(cfg.trainer_params.physical, max_iterations=3, suppress_convergence_errors=True)
    trainer = PhysicalTrainer(problem, params)
    step = trainer.optimize(data_loss(trainer, obs))
    assert 1 <= step.iterations <= 3
    assert step.evaluations >= step.iterations
    assert step.loss_best < step.loss_start
    assert math.isfinite(step.loss_best) and step.seconds > 0
    assert trainer.param_error() < trainer.param_error(problem.guess)


# ----- recovery of the true parameters ----------------------------------------------------------


def fit(problem, cfg, obs, max_iterations: int, joint: bool = False) -> tuple[PhysicalTrainer, object]:
    """``joint``: the initial states are fitted with theta (what the trainers do)."""
    params = replace(cfg.trainer_params.physical, max_iterations=max_iterations, suppress_convergence_errors=True)
    trainer = PhysicalTrainer(problem, params)
    step = trainer.optimize(data_loss(trainer, obs), initial=obs.initial if joint else None)
    return trainer, step


def test_burgers_viscosity_recovered_within_1_percent(burgers):
    cfg, problem, obs = burgers
    trainer, step = fit(problem, cfg, obs, max_iterations=30)
    assert not step.diverged
    assert trainer.param_error() < 0.01, f"nu={trainer.theta.tolist()} truth={problem.truth.tolist()}"


def test_heat_amplitudes_recovered_within_5_percent(cache):
    cfg, problem, obs = prepare(cache, "heat_hybrid_quick_test", num_steps=10)
    assert len(problem.labels) == 3
    trainer, step = fit(problem, cfg, obs, max_iterations=30)
    assert not step.diverged
    rel = ((trainer.theta - problem.truth).abs() / problem.truth).max().item()
    assert rel < 0.05, f"amplitudes={trainer.theta.tolist()} truth={problem.truth.tolist()}"


def test_heat_amplitudes_and_centres_recovered_within_5_percent(cache):
    cfg, problem, obs = prepare(cache, "heat_hybrid_quick_test", "model/physical=heat_centres", num_steps=10)
    assert len(problem.labels) == 9  # 3 amplitudes, 3 (x, y) centres
    trainer, step = fit(problem, cfg, obs, max_iterations=40)
    assert not step.diverged
    rel = ((trainer.theta - problem.truth).abs() / problem.truth).max().item()
    assert rel < 0.05, f"theta={trainer.theta.tolist()} truth={problem.truth.tolist()}"


@pytest.fixture
def one_thread():
    """Smoke's CG pressure solve is many small ops: 2 torch threads on a busy 2-core machine
    spin against each other (10x slower); one thread is faster and as exact."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_smoke_buoyancy_recovered_within_5_percent(cache, one_thread):
    """One training sim, 6 frames: a few seconds on 1 thread (the pressure solve dominates)."""
    cfg, problem, obs = prepare(
        cache,
        "smoke_hybrid_quick_test",
        "data.num_simulations=3",
        "trainer_params.train_sim=[0]",
        "trainer_params.val_sim=[1]",
        "trainer_params.test_sim=[2]",
        "trainer_params.num_predict_steps=3",
        num_steps=6,
    )
    assert torch.allclose(problem.guess, 3 * problem.truth)
    trainer, step = fit(problem, cfg, obs, max_iterations=6)
    assert not step.diverged
    assert trainer.param_error() < 0.05, f"buoyancy={trainer.theta.tolist()} truth={problem.truth.tolist()}"


def test_burgers_viscosity_with_noise_needs_the_initial_states_fitted(cache):
    """5 % noise, 4 sims: a rollout from the noisy frame 0 biases nu (errors in variables); with the
    initial states fitted jointly the bias is gone. Measured (data.seed 0): 19 % vs 1.2 %."""
    cfg, problem, obs = prepare(cache, BURGERS, "data.seed=0", "data.observation.noise=0.05", num_steps=30)
    naive, _ = fit(problem, cfg, obs, max_iterations=30)
    joint, step = fit(problem, cfg, obs, max_iterations=60, joint=True)
    assert not step.diverged
    assert naive.param_error() > 0.10, f"no bias to remove: nu={naive.theta.tolist()}"
    assert joint.param_error() < 0.03, f"nu={joint.theta.tolist()} truth={problem.truth.tolist()}"
    assert joint.initial_correction is not None and joint.initial_correction.shape == obs.initial.shape


# ----- diverged solves and failing losses -------------------------------------------------------


def test_diverged_solve_keeps_best_theta(burgers):
    """A loss that is finite near the guess and NaN below nu = 0.045 makes L-BFGS-B abort
    (phiml raises Diverged). The trainer must not raise and must keep the best theta seen."""
    cfg, problem, obs = burgers
    seen: list[tuple[float, float]] = []

    def loss(theta: torch.Tensor) -> torch.Tensor:
        value = torch.log(theta[0] / 0.03) ** 2  # minimum at 0.03, inside the NaN region
        if float(theta[0].detach()) < 0.045:
            value = value * float("nan")
        seen.append((float(theta[0].detach()), float(value.detach())))
        return value

    trainer = PhysicalTrainer(problem, PhysicalTrainerConfig(max_iterations=20, suppress_convergence_errors=True))
    step = trainer.optimize(loss)
    assert step.diverged and not step.converged
    finite = [(t, v) for t, v in seen if math.isfinite(v)]
    assert any(not math.isfinite(v) for _, v in seen), "the NaN region was never reached"
    best_theta, best_loss = min(finite, key=lambda tv: tv[1])
    assert best_loss < finite[0][1], "no improvement before the NaN: test does not exercise 'best seen'"
    assert step.loss_best == pytest.approx(best_loss)
    assert trainer.theta.item() == pytest.approx(best_theta, rel=1e-6)
    assert torch.isfinite(trainer.theta).all()


def test_diverged_solve_without_progress_keeps_theta(burgers):
    """NaN from the second evaluation on: Diverged before any improvement -> theta unchanged."""
    cfg, problem, obs = burgers
    calls = []

    def loss(theta: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        value = torch.log(theta[0] / 0.05) ** 2
        return value if len(calls) == 1 else value * float("nan")

    trainer = PhysicalTrainer(problem, PhysicalTrainerConfig(max_iterations=20, suppress_convergence_errors=True))
    step = trainer.optimize(loss)
    assert step.diverged
    assert torch.equal(trainer.theta, problem.guess.to(torch.float64))


FAILING_LOSS_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    import threading

    import torch
    from hyco.config import load_config
    from hyco.config.schema import PhysicalTrainerConfig
    from hyco.errors import TrainingError
    from hyco.physics import make_problem
    from hyco.training.physical import PhysicalTrainer

    cfg = load_config("burgers_physical_quick_test", ["data.cache_dir=" + sys.argv[1]])
    problem = make_problem(cfg.model.physical)
    kind = sys.argv[2]
    calls = []

    def loss(theta):
        calls.append(1)
        if kind == "raise_first" or (kind == "raise_third" and len(calls) >= 3):
            raise ValueError("boom in the loss")
        if kind == "vector":
            return theta * 2
        if kind == "constant":
            return torch.tensor(1.0)  # does not depend on theta
        return torch.log(theta[0] / 0.05) ** 2

    trainer = PhysicalTrainer(problem, PhysicalTrainerConfig(max_iterations=10, suppress_convergence_errors=True))
    try:
        trainer.optimize(loss)
        error = None
    except Exception as exc:
        error = [type(exc).__name__, str(exc), type(exc.__cause__).__name__]
    leaked = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    print(json.dumps({"error": error, "theta": trainer.theta.tolist(), "calls": len(calls), "leaked": leaked}), flush=True)
    if leaked:  # reported above; end now instead of hanging on the leaked thread until the timeout
        import os
        os._exit(0)
    """
)


def run_failing_loss(tmp_path, kind: str, timeout: float = 60) -> dict:
    """Run in a child process that must exit by itself within ``timeout`` seconds.

    A leaked non-daemon thread is reported in ``leaked`` (the child then ends with os._exit
    rather than hanging); otherwise the child exits normally, which proves nothing keeps it alive.
    """
    script = tmp_path / "failing_loss.py"
    script.write_text(FAILING_LOSS_SCRIPT)
    try:
        proc = subprocess.run(
            [sys.executable, str(script), str(tmp_path), kind], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the process hung after a failing loss ({kind}): a thread kept it alive")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "kind, cause",
    [("raise_first", "ValueError"), ("raise_third", "ValueError"), ("vector", "TrainingError")],
)
def test_loss_exception_becomes_training_error_and_process_exits(tmp_path, kind, cause):
    result = run_failing_loss(tmp_path, kind)
    assert result["error"] is not None, "the failing loss was swallowed"
    name, message, cause_name = result["error"]
    assert name == "TrainingError"
    assert cause_name == cause
    if kind.startswith("raise"):
        assert "boom in the loss" in message
    else:
        assert "scalar" in message
    assert result["leaked"] == []
    assert result["theta"] == pytest.approx([0.15])  # unchanged
    if kind == "raise_third":
        assert result["calls"] >= 3


def test_loss_independent_of_theta_becomes_training_error(tmp_path):
    result = run_failing_loss(tmp_path, "constant")
    assert result["error"] is not None and result["error"][0] == "TrainingError"
    assert result["leaked"] == []


# ----- determinism ------------------------------------------------------------------------------


def test_same_config_and_seed_give_identical_theta(tmp_path_factory):
    """Two independent fits (data simulated separately into two caches) give bitwise equal theta."""
    thetas = []
    for _ in range(2):
        cache = str(tmp_path_factory.mktemp("determinism"))
        cfg, problem, obs = prepare(cache, BURGERS, "data.seed=3", "data.observation.noise=0.01", num_steps=10)
        trainer, step = fit(problem, cfg, obs, max_iterations=5, joint=True)
        assert step.iterations >= 1
        thetas.append(trainer.theta)
    assert torch.equal(thetas[0], thetas[1]), [t.tolist() for t in thetas]
    assert not torch.equal(thetas[0], make_problem(cfg.model.physical).guess.to(torch.float64))
