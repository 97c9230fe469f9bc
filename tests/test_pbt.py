"""Population-based training sweeps (issue 12): schedules of the HYCO settings.

A PBT trial's state (S, its optimizer, theta and the fitted initial states, the history) goes
through Tune's exploit/explore as the trainer's checkpoint; the settings each epoch was trained with
ride along in the history, become ``trainer_params.schedule`` in the trial's saved config, and
``hyco train`` replays it. The reference for the replay is the sweep's own result rows.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from sweep_util import HALF_OBSERVED, SMALL, start_shared_ray, start_tune, write_space  # noqa: E402

from hyco.run import read_metrics  # noqa: E402
from hyco_ray.core.space import SpaceError, load_space  # noqa: E402
from hyco_ray.core.sweep_dir import load_sweep  # noqa: E402
from hyco_ray.runner.sweep import run_sweep  # noqa: E402

EPOCHS = 6
SPACE = {
    "trainer_params.alpha": {"type": "uniform", "low": 0.05, "high": 1.0},
    "trainer_params.alpha_physical": {"type": "uniform", "low": 0.5, "high": 1.0},
    "trainer_params.physical.max_iterations": {"type": "int", "low": 1, "high": 4},
}


def pbt_space(tmp: Path, name: str, **changes) -> Path:
    """4 trials at once (0.5 CPU each on 2 CPUs); the worse half exploits after every epoch."""
    fields = dict(
        name=name, num_samples=4, max_concurrent=4, space=SPACE, resources={"cpu": 0.5, "gpu": 0},
        overrides=[f"trainer_params.epochs={EPOCHS}", *SMALL, *HALF_OBSERVED],
        scheduler={"type": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5},
        searcher={"type": "optuna", "sampler": "random", "seed": 0},
    )
    return write_space(tmp, cache_dir=tmp / "cache", **{**fields, **changes})


def _rows(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.parametrize("changes, message", [
    ({"space": {"trainer_params.warmup_epochs": {"type": "int", "low": 0, "high": 2}}}, "none of the searched keys"),
    ({"num_samples": 1}, "a PBT population needs at least 2 trials"),
    ({"scheduler": {"type": "pbt", "perturbation_interval": EPOCHS}}, "an interval shorter than max_t"),
    ({"objectives": {"val_loss_synthetic": "min", "val_loss_physical": "min"}}, "PBT ranks trials by one metric"),
    ({"scheduler": {"type": "pbt", "quantile_fraction": 0.7}}, "scheduler.quantile_fraction: is 0.7"),
])
def test_pbt_space_mistakes_are_one_line(tmp_path, changes, message):
    with pytest.raises(SpaceError) as err:
        load_space(pbt_space(tmp_path, "bad", **changes))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def pbt_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pbt")
    spec = load_space(pbt_space(tmp, "pbt"))
    start_shared_ray()  # the resume test's in-process --resume joins it too
    outcome = run_sweep(spec, num_cpus=2)
    return spec, outcome, load_sweep(outcome.experiment_dir)


def _exploited(trial) -> list[dict]:
    return [s for s in json.loads(Path(trial.path, "schedule.json").read_text()) if s["exploit"]]


@pytest.mark.slow
def test_pbt_sweep_finishes_with_exploits_recorded(pbt_sweep):
    spec, outcome, sweep = pbt_sweep
    assert outcome.finished and [t.outcome(EPOCHS) for t in sweep.trials] == ["complete"] * 4
    exploited = [t for t in sweep.trials if _exploited(t)]
    assert exploited, "no trial took over another's checkpoint"
    for trial in exploited:
        segments = json.loads(Path(trial.path, "schedule.json").read_text())
        by_epoch = {int(r["epoch"]): r for r in trial.history}
        assert sorted(by_epoch) == list(range(1, EPOCHS + 1))
        for seg, nxt in zip(segments, segments[1:] + [{"from_epoch": EPOCHS + 1}]):
            for epoch in range(seg["from_epoch"], nxt["from_epoch"]):  # each epoch trained as recorded
                assert by_epoch[epoch]["settings"] == seg["settings"]
                assert by_epoch[epoch]["trial_id"] == seg["trained_by"]
        taken = _exploited(trial)[0]
        assert taken["trained_by"] == trial.trial_id or taken["from_epoch"] > 1
    # compute counts every epoch trained, also those an exploit replaced in the trial's history
    trained = {t.trial_id: t.trained_rows() for t in sweep.trials}  # its own lines of metrics.jsonl
    assert {t.trial_id: t.trial_epochs for t in sweep.trials} == {k: len(v) for k, v in trained.items()}
    for trial in sweep.trials:  # its own epochs of the history (not always a tail: A -> B -> A) are among them
        own = {(r["epoch"], r["done_at"]) for r in trial.history if r["trial_id"] == trial.trial_id}
        assert own <= {(r["epoch"], r["done_at"]) for r in trained[trial.trial_id]}
    assert sum(map(len, trained.values())) >= EPOCHS * len(sweep.trials) - sum(
        int(s["from_epoch"]) - 1 for t in sweep.trials for s in _exploited(t))


@pytest.mark.slow
def test_replaying_an_exploited_trials_schedule_reproduces_it(pbt_sweep, tmp_path):
    from hyco_ray.cli import main

    spec, outcome, sweep = pbt_sweep
    trial = max(sweep.trials, key=lambda t: len(_exploited(t)))
    out = tmp_path / "pbt.yaml"
    assert main(["export", outcome.experiment_dir, "--trial", trial.trial_id, "-o", str(out)]) == 0
    assert "schedule:\n  - from_epoch:" in out.read_text()
    assert main(["train", "--config-file", str(out), "--run-dir", str(tmp_path / "replay")]) == 0
    last = [json.loads(line) for line in (tmp_path / "replay" / "metrics.jsonl").read_text().splitlines()][-1]
    for key in ("val_loss", "val_loss_synthetic", "val_loss_physical"):
        assert abs(last[key] - trial.final[key]) <= 1e-6 * abs(trial.final[key]), (key, last[key], trial.final[key])


def _last_checkpointed_epoch(trial_dir: Path) -> int:
    rows = read_metrics(trial_dir)  # written before each epoch's checkpoint reaches Tune
    return int(rows[-1]["epoch"]) if rows else 0


@pytest.mark.slow
def test_a_pbt_sweep_writes_its_study_and_its_export_lists_the_schedule(pbt_sweep, tmp_path):
    """21.13 and 21.17: a PBT sweep wrote no optuna.db (no dashboard, no importances); a PBT export's
    header listed the final settings only, not the schedule its config replays."""
    import optuna

    from hyco_ray.cli import main

    spec, outcome, sweep = pbt_sweep
    study = sweep.study()
    assert study is not None and study.metric_names == [spec.metric]
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert sorted(by_ray_id) == sorted(t.trial_id for t in sweep.trials)
    for trial in sweep.trials:
        ot = by_ray_id[trial.trial_id]
        assert ot.state == optuna.trial.TrialState.COMPLETE and ot.value == trial.value(spec.metric)
        assert ot.params == trial.params and ot.user_attrs["test_loss"] == trial.final["test_loss"]
        assert ot.user_attrs["schedule"] == json.loads(Path(trial.path, "schedule.json").read_text())
        assert ot.intermediate_values == {r["epoch"]: r[spec.metric] for r in trial.history}
    trial = next(t for t in sweep.trials if _exploited(t))
    out = tmp_path / "pbt.yaml"
    assert main(["export", outcome.experiment_dir, "--trial", trial.trial_id, "-o", str(out)]) == 0
    segments = json.loads(Path(trial.path, "schedule.json").read_text())
    header = [line for line in out.read_text().splitlines() if line.startswith("#   epochs ")]
    assert len(header) == len(segments) >= 2 and header[0].startswith(f"#   epochs 1-{segments[1]['from_epoch'] - 1}: ")
    assert "exploited its checkpoint" in "\n".join(header) and header[-1].split(":")[0] == f"#   epochs {segments[-1]['from_epoch']}-{EPOCHS}"


@pytest.mark.slow
def test_pbt_sweep_resumes_after_sigint_without_rerunning(tmp_path):
    """Stopped by SIGINT to its group part-way (Ctrl-C in a terminal), the PBT sweep finishes with
    the printed hint. Trials that had finished (as the stopped driver recorded them) report nothing
    more; the others go on from their latest checkpoint: only an epoch whose report had not reached
    the driver when it stopped (at most the last one each trial wrote) is trained again."""
    space = pbt_space(tmp_path, "pbtresume", checkpoint_period_s=2)
    exp_dir = tmp_path / "sweeps" / "pbtresume"
    log_path = tmp_path / "first.log"
    with log_path.open("w") as log:
        proc = start_tune(space, log, tmp_path)
        try:
            deadline = time.time() + 240
            # a third of the 24 trial-epochs, counted in checkpoints: a paused PBT trial's result.json
            # reaches the trial dir late, its checkpoints at once
            while sum(_last_checkpointed_epoch(d) for d in exp_dir.glob("trial_*")) < 8:
                assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
            os.killpg(proc.pid, signal.SIGINT)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert rc == 130, log_path.read_text()[-3000:]
    interrupted = load_sweep(exp_dir)
    assert interrupted.by_outcome("unfinished"), "the interrupt came too late to test a resume"
    last = {Path(t.path).name: _last_checkpointed_epoch(Path(t.path)) for t in interrupted.trials}
    finished = {Path(t.path).name for t in interrupted.trials if t.status == "TERMINATED"}
    first_nodes = {r["node_id"] for d in exp_dir.glob("trial_*") for r in _rows(d)}
    hint = log_path.read_text().split("continue it with: ")[1].splitlines()[0]

    from hyco_ray.cli import main

    assert main(shlex.split(hint)[1:]) == 0
    resumed = load_sweep(exp_dir)
    assert [t.outcome(EPOCHS) for t in resumed.trials] == ["complete"] * 4
    assert any(0 < epoch < EPOCHS for epoch in last.values()), last
    for trial in resumed.trials:
        name = Path(trial.path).name
        new = [r for r in _rows(Path(trial.path)) if r["node_id"] not in first_nodes]  # the resumed session's
        if name in finished:
            assert not new, f"{name} had finished but ran again"
            continue
        assert new, f"{name} was unfinished but reported nothing after --resume"
        assert new[0]["epoch"] == new[0]["restored_from_epoch"] + 1
        assert new[0]["restored_from_epoch"] >= last.get(name, 0) - 1, (name, last.get(name), new[0]["restored_from_epoch"])
