"""Repeats that cost less than r runs (issue 23): the seeds of a group trained as one batch.

A batched :class:`hyco.training.SeedGroup` solves its seeds' physical steps as one L-BFGS-B solve
with a batch dimension, every loss evaluation one batched rollout of all seeds' theta. Each seed
keeps its own data, interaction states and batches, so seed i must still be ``hyco train`` at
seed + i: its metrics, theta and network outputs within 1e-6 relative (bitwise on the CPU, and
asserted so).
Where the models do not allow it, the group trains its seeds one after another, and says why.
"""

from __future__ import annotations

import math

import pytest
import torch
from sweep_util import HALF_OBSERVED

from hyco.run import read_metrics, run_epochs
from hyco.training import SeedGroup, build_trainer

KEYS = ("val_loss", "val_loss_synthetic", "val_loss_physical", "param_error", "train_loss", "physical_loss",
        "lbfgs_iterations")


def _seed(cfg, i: int):
    cfg.run_params.seed += i
    cfg.data.seed += i
    return cfg


def _close(a: float | None, b: float | None, rel: float) -> bool:
    """Within ``rel`` relative; NaN (written as null in metrics.jsonl) only equals NaN."""
    a, b = (math.nan if v is None else v for v in (a, b))
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= rel * max(abs(a), abs(b))


def _compare_with_single_runs(make, repeats: int, tmp_path, rel: float = 0.0) -> SeedGroup:
    """Train the batched group of ``make()`` and each seed alone as ``hyco train`` does; every
    seed's per-epoch metrics and theta, and its network's outputs at the end, must agree within
    ``rel`` (the contract is 1e-6; on the CPU they are bitwise equal, which is what is asserted)."""
    singles, trainers = [], []
    for i in range(repeats):
        run_dir, cfg = tmp_path / f"seed{i}", _seed(make(), i)
        trainers.append(build_trainer(cfg))
        run_epochs(cfg, trainers[-1], run_dir)  # the loop of ``hyco train``
        singles.append(read_metrics(run_dir))
    group = SeedGroup.create(make(), repeats)
    assert group.batched and group.sequential_reason is None
    rows = list(group.fit())
    assert len(rows) == len(singles[0]) and any(r["physical_step"] for r in rows)
    for row, *seeds in zip(rows, *singles):
        for key in KEYS:
            values = row["per_seed"].get(key, [row[key]] * repeats)
            for i in range(repeats):
                assert _close(values[i], seeds[i][key], rel), (key, row["epoch"], i, values[i], seeds[i][key])
        for i in range(repeats):
            assert all(_close(a, b, rel) for a, b in zip(row["per_seed"]["theta"][i], seeds[i]["theta"])), (row["epoch"], i)
    for member, single in zip(group.members, trainers):
        probe = member.val[:, 0]
        with torch.no_grad():
            ours, theirs = member.model(probe), single.model(probe.to(single.device, single.dtype))
        assert torch.allclose(ours, theirs, rtol=rel, atol=0)
        assert torch.allclose(member.physical.theta, single.physical.theta, rtol=rel, atol=0)
    return group


def test_a_batched_seed_group_is_its_seeds_single_runs(small_burgers, tmp_path):
    """HYCO on half-observed Burgers (the interaction term on), 3 seeds, the initial states fitted
    with theta: the batched group's seeds are their single runs."""
    def make():
        return small_burgers("trainer_params.epochs=3", "trainer_params.alpha=0.5", *HALF_OBSERVED)

    group = _compare_with_single_runs(make, 3, tmp_path)
    assert all(r["coupled"] for r in group.history[1:])
    assert len({m.cfg.data.seed for m in group.members}) == 3  # each seed its own data
    thetas = [tuple(t) for t in group.history[-1]["per_seed"]["theta"]]
    assert len(set(thetas)) == 3  # ... and so its own theta


def test_a_batched_physics_only_group_is_its_single_runs(small_burgers, tmp_path):
    """The physical model alone (L_data only, no initial-state fit): a physical step every epoch."""
    def make():
        return small_burgers("trainer_params.epochs=2", "run_params.model_type=physical",
                             "trainer_params.physical.fit_initial_state=false")

    _compare_with_single_runs(make, 2, tmp_path)


def test_seeds_that_cannot_be_batched_train_one_after_another(small_burgers):
    """Adam on theta (no batched solve) falls back to the sequential group, which says why; asking
    for a batched group then is an error; a synthetic-only group has no physical step to batch."""
    cfg = small_burgers("trainer_params.epochs=1", "trainer_params.physical.method=adam")
    group = SeedGroup.create(cfg, 2)
    assert not group.batched and "adam" in group.sequential_reason
    rows = list(group.fit())
    assert len(rows) == 1 and all(math.isfinite(v) for v in rows[0]["per_seed"]["val_loss"])
    with pytest.raises(ValueError, match="cannot be batched: trainer_params.physical.method is adam"):
        SeedGroup.create(cfg, 2, batched=True)
    synthetic = SeedGroup.create(small_burgers("trainer_params.epochs=1", "run_params.model_type=synthetic"), 2)
    assert not synthetic.batched and synthetic.sequential_reason == "the trainer has no physical step"
    assert SeedGroup.create(small_burgers(), 2, batched=False).sequential_reason == "batched=False"


def test_heat_takes_one_theta_per_rollout_so_its_group_is_sequential(cache_dir):
    from hyco.config import load_config

    cfg = load_config("heat_hybrid_quick_test", [f"data.cache_dir={cache_dir}", "data.num_simulations=6",
                                                 "data.num_steps=4", "trainer_params.train_sim=[0,1]",
                                                 "trainer_params.val_sim=[2,3]", "trainer_params.test_sim=[4,5]"])
    group = SeedGroup.create(cfg, 2, lambda member: build_trainer(member))
    assert not group.batched and "Problem.batched_theta" in group.sequential_reason


def test_rollout_seeds_is_each_seeds_rollout_and_gradient(small_burgers):
    """Frames and the gradient to each theta bitwise as each seed's own rollout, also where the
    seeds need different substeps (then one after another) and for a single seed."""
    from hyco.physics import make_problem

    problem = make_problem(small_burgers().model.physical)
    gen = torch.Generator().manual_seed(0)
    initials = [problem.sample_initial(n, gen) for n in (2, 3, 1)]
    viscous = 0.9 * float(problem.parameter_bounds()[1][0])  # stable only with more substeps than the others
    for values in ([0.05, 0.07, 0.06], [0.05, 0.07, viscous]):
        thetas = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in values]
        alone = [problem.rollout(x, t.float(), 4) for x, t in zip(initials, thetas)]
        grads = [torch.autograd.grad(a.pow(2).sum(), t)[0] for a, t in zip(alone, thetas)]
        batched = problem.rollout_seeds(initials, [t.float() for t in thetas], 4)
        batched_grads = torch.autograd.grad(sum(b.pow(2).sum() for b in batched), thetas)
        for a, b, g, h in zip(alone, batched, grads, batched_grads):
            assert a.shape == b.shape and bool(torch.isfinite(a).all()) and torch.equal(a, b) and torch.equal(g, h)
    substeps = {problem.stable_substeps(x, torch.tensor([v])) for x, v in zip(initials, [0.05, 0.07, viscous])}
    assert len(substeps) > 1  # the second case did take the per-seed path


def test_a_failing_batched_loss_is_raised_after_the_solve_and_theta_stays(small_burgers):
    """An error inside a seed's loss (here S's targets of the wrong shape) ends the batched solve
    and is raised as a TrainingError; every seed's theta is left as it was."""
    from hyco.errors import TrainingError
    from hyco.training.physical import optimize_seeds

    group = SeedGroup.create(small_burgers(*HALF_OBSERVED), 2)
    members = group.members
    interaction = members[0].interaction_initial_states(0)
    losses = [m.physical_loss(0.5, interaction) for m in members]
    losses[1].synthetic_targets = losses[1].synthetic_targets[..., :5]  # no longer broadcasts against P's rollout
    before = [m.physical.theta.clone() for m in members]
    with pytest.raises(TrainingError, match="physical loss failed"):
        optimize_seeds([m.physical for m in members], losses, [m.initial for m in members])
    assert all(torch.equal(m.physical.theta, t) for m, t in zip(members, before))
    steps = optimize_seeds([m.physical for m in members], [m.physical_loss(0.5, interaction) for m in members],
                           [m.initial for m in members])  # the next solve works
    assert all(s.iterations > 0 and s.loss_best <= s.loss_start for s in steps)
