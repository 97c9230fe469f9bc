"""One training loop (issue 22) and seeds inside a trial (issue 19).

``hyco.run.run_epochs`` is the only epoch loop: a sweep trial is a run directory plus a Tune report
in its epoch hook, so a trial directory and a ``hyco train`` run directory hold the same files, and
``metrics.jsonl`` is the one record of each epoch. With ``repeats: r`` a trial trains r seeds in
lock-step (``run_params.seed + i``, ``data.seed + i``) and reports their mean, which is what ASHA and
the searcher see.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hyco.run import CHECKPOINT_FILE, CONFIG_FILE, FIGURES_DIR, METRICS_FILE, read_metrics, train_run
from hyco.training import SeedGroup, aggregate

#: the files and directories that make a run directory, by the names hyco.run gives them
RUN_FILES = {CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, FIGURES_DIR, "environment.json", "test_metrics.json"}
KEYS = ("val_loss", "val_loss_synthetic", "val_loss_physical", "param_error", "train_loss")


def _seed(cfg, i: int):
    cfg.run_params.seed += i
    cfg.data.seed += i
    return cfg


def test_a_seed_group_is_its_seeds_single_runs_averaged(small_burgers, tmp_path):
    """Lock-step training changes nothing: seed i of the group is bitwise ``hyco train`` at seed + i, and
    each epoch's row is their mean (per seed beside it); the group's checkpoint resumes to the same end."""
    from hyco.run import load_checkpoint, run_epochs

    singles = []
    for i in range(2):
        run_dir = tmp_path / f"seed{i}"
        train_run(_seed(small_burgers("trainer_params.epochs=3"), i), run_dir, progress=False)
        singles.append(read_metrics(run_dir))
    cfg = small_burgers("trainer_params.epochs=3")
    group = SeedGroup.create(cfg, 2)
    assert [m.cfg.data.seed for m in group.members] == [cfg.data.seed, cfg.data.seed + 1]
    rows = list(group.fit())
    assert len(rows) == 3
    for row, a, b in zip(rows, *singles):
        for key in KEYS:
            assert row["per_seed"][key] == [a[key], b[key]], key
            assert row[key] == (a[key] + b[key]) / 2, key
        assert row["epoch"] == a["epoch"] and row["theta"] == [(x + y) / 2 for x, y in zip(a["theta"], b["theta"])]

    # the same through the loop, interrupted after epoch 2 and resumed from the checkpoint
    run_dir = tmp_path / "group"
    cfg2 = small_burgers("trainer_params.epochs=2")
    run_epochs(cfg2, SeedGroup.create(cfg2, 2), run_dir)
    state = load_checkpoint(run_dir / CHECKPOINT_FILE)
    resumed = SeedGroup.create(cfg, 2)
    run_epochs(cfg, resumed, run_dir, state=state)
    recorded = read_metrics(run_dir)
    assert [r["epoch"] for r in recorded] == [1, 2, 3]
    assert [r["val_loss"] for r in recorded] == [r["val_loss"] for r in rows]


def test_aggregate_means_numbers_and_keeps_the_rest():
    rows = [{"epoch": 2, "val_loss": 1.0, "theta": [1.0, 2.0], "phase": "hybrid", "lbfgs_diverged": False},
            {"epoch": 2, "val_loss": 3.0, "theta": [3.0, 4.0], "phase": "hybrid", "lbfgs_diverged": True}]
    out = aggregate(rows)
    assert out["epoch"] == 2 and isinstance(out["epoch"], int) and out["val_loss"] == 2.0
    assert out["theta"] == [2.0, 3.0] and out["phase"] == "hybrid" and out["lbfgs_diverged"] is True
    assert out["per_seed"] == {"val_loss": [1.0, 3.0], "theta": [[1.0, 2.0], [3.0, 4.0]]}


def test_metrics_jsonl_reads_the_epochs_the_state_stands_on(tmp_path):
    """A line for epoch e supersedes later epochs recorded before it (a retry, a PBT exploit)."""
    lines = [{"epoch": 1, "by": "a"}, {"epoch": 2, "by": "a"}, {"epoch": 3, "by": "a"},
             {"epoch": 1, "by": "b"}, {"epoch": 2, "by": "b"}, {"epoch": 3, "by": "c"}, {"epoch": 3, "by": "d"}]
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert [r["by"] for r in read_metrics(tmp_path)] == ["b", "b", "d"]
    lines = [{"epoch": 1, "by": "a"}, {"epoch": 2, "by": "a"}, {"epoch": 3, "by": "a"}, {"epoch": 2, "by": "b"}]
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert [(r["epoch"], r["by"]) for r in read_metrics(tmp_path)] == [(1, "a"), (2, "b")]


def test_the_plan_prints_the_cost_of_repeats(tmp_path):
    from sweep_util import write_space

    from hyco_ray.core.space import SpaceError, load_space
    from hyco_ray.runner.sweep import plan_text

    spec = load_space(write_space(tmp_path, repeats=3))
    assert "repeats: 3 seeds per trial" in plan_text(spec) and f"at most {4 * 3 * 3} epochs" in plan_text(spec)
    assert "repeats" not in plan_text(load_space(write_space(tmp_path)))
    with pytest.raises(SpaceError, match="repeats: is 0, must be 1 to 100"):
        load_space(write_space(tmp_path, repeats=0))


@pytest.fixture(scope="module")
def repeats_sweep(tmp_path_factory):
    """4 trials of 2 seeds each under ASHA (rungs after epochs 1 and 2 of 3), one at a time, so the
    order in which ASHA saw the results is the order they finished."""
    from sweep_util import start_shared_ray, write_space

    from hyco_ray.core.space import load_space
    from hyco_ray.core.sweep_dir import load_sweep
    from hyco_ray.runner.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("repeats")
    spec = load_space(write_space(tmp, cache_dir=tmp / "cache", name="repeats", repeats=2, max_concurrent=1,
                                  scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2}))
    start_shared_ray()
    outcome = run_sweep(spec, num_cpus=2)
    return spec, outcome, load_sweep(outcome.experiment_dir)


def _tune_rows(trial) -> list[dict]:
    """What Tune saw: the trial's ``result.json``."""
    return [json.loads(line) for line in Path(trial.path, "result.json").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_repeats_aggregate_r_seeds_and_asha_stops_on_the_aggregate(repeats_sweep, tmp_path):
    """Every row Tune saw is the mean of the trial's 2 seeds; replaying ASHA's rule on those means in
    the order the trials ran gives exactly the trials it stopped, at the epochs it stopped them; and the
    exported config reruns seed 0 (``hyco train`` at seed + 1 reruns seed 1): their mean is the trial's."""
    from hyco_ray.cli import main

    spec, outcome, sweep = repeats_sweep
    assert spec.repeats == 2 and len(sweep.trials) == spec.num_samples
    recorded: dict[int, dict[str, float]] = {2: {}, 1: {}}  # ASHA's rungs, highest first: reward by trial
    for trial in sweep.trials:  # one at a time, in the order they finished
        rows = _tune_rows(trial)
        assert rows and all(r["seeds"] == [0, 1] for r in rows)
        for row in rows:
            seeds = row["per_seed"][spec.metric]
            assert len(seeds) == 2 and row[spec.metric] == (seeds[0] + seeds[1]) / 2
        stopped_at = None
        for row in rows:
            for milestone, rung in recorded.items():
                if row["epoch"] < milestone or trial.trial_id in rung:
                    continue
                reward = -row[spec.metric]  # mode min
                if rung and reward < np.nanpercentile(list(rung.values()), 50):
                    stopped_at = stopped_at or row["epoch"]
                rung[trial.trial_id] = reward
                break
        outcome_now = trial.outcome(spec.max_t)
        assert (outcome_now, trial.epochs) == (("stopped", stopped_at) if stopped_at else ("complete", spec.max_t)), trial.trial_id
    assert sweep.by_outcome("stopped"), "ASHA stopped no trial: the rule above was not exercised"

    best = sweep.best()
    out = tmp_path / "best.yaml"
    assert main(["export", outcome.experiment_dir, "-o", str(out)]) == 0
    from hyco.config import load_config_file

    data_seed, reruns = load_config_file(out).data.seed, []
    for i in range(2):
        run_dir = tmp_path / f"seed{i}"
        extra = [f"run_params.seed={best.final['seeds'][i]}", f"data.seed={data_seed + i}"] if i else []
        assert main(["train", "--config-file", str(out), "--run-dir", str(run_dir), *extra]) == 0
        reruns.append(read_metrics(run_dir)[-1])
    for key in ("val_loss_synthetic", "val_loss_physical", "param_error"):
        per_seed = best.final["per_seed"][key]
        for i in range(2):
            assert abs(reruns[i][key] - per_seed[i]) <= 1e-6 * abs(per_seed[i]), (key, i, reruns[i][key], per_seed[i])
        assert best.final[key] == (per_seed[0] + per_seed[1]) / 2


@pytest.mark.slow
def test_a_trial_dir_and_a_hyco_train_run_dir_have_the_same_layout(repeats_sweep, tmp_path):
    """A complete trial's directory holds the run files by the names ``hyco train`` gives them (Tune's
    result.json and checkpoint_* beside them), its metrics.jsonl is the record the sweep reads, and
    ``hyco evaluate`` reads it as it reads a run directory."""
    from hyco.config import load_config_file
    from hyco_ray.cli import main

    spec, _, sweep = repeats_sweep
    best = sweep.best()
    trial_dir = Path(best.path)
    run_dir = tmp_path / "run"
    cfg = load_config_file(trial_dir / CONFIG_FILE)
    cfg.run_params.mode = ["train", "evaluate"]
    train_run(cfg, run_dir, progress=False)
    run_files = {p.name for p in run_dir.iterdir()}
    assert run_files == RUN_FILES
    assert run_files <= {p.name for p in trial_dir.iterdir()}
    assert {p.name for p in (trial_dir / FIGURES_DIR).iterdir()} == {p.name for p in (run_dir / FIGURES_DIR).iterdir()}
    assert not {"hyco_config.yaml", "epochs.jsonl"} & {p.name for p in trial_dir.iterdir()}
    assert not list(trial_dir.glob("checkpoint_*/history.json"))
    assert [r["epoch"] for r in read_metrics(trial_dir)] == [r["epoch"] for r in best.history] == list(range(1, spec.max_t + 1))
    assert [r["val_loss"] for r in read_metrics(trial_dir)] == [r["val_loss"] for r in best.history]
    assert main(["evaluate", str(trial_dir)]) == 0
    saved = json.loads((trial_dir / "test_metrics.json").read_text())
    assert saved["test_loss_physical"] == pytest.approx(best.final["test_loss_physical"], rel=1e-9)
