"""End-to-end sweeps with real Ray Tune on this machine (1D Burgers, a few epochs per trial).

One ASHA sweep (every trial crashes once, injected) is shared by the PRUNED, retry, export and
report tests; the interrupt/resume tests run their own sweep in a subprocess and signal it (a literal `timeout -s TERM`
to the group, SIGKILL of the driver or of the console process). The sweeps of the shared fixtures join one
local Ray (sweep_util.start_shared_ray), which ends with this module.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

optuna = pytest.importorskip("optuna")
ray = pytest.importorskip("ray")

from sweep_util import SMALL, fail_once_at, start_shared_ray, start_tune, write_space  # noqa: E402

from hyco.run import metrics_lines  # noqa: E402
from hyco_ray.core.analysis import export_best, plot_compare, plot_curves, summary_text, write_report  # noqa: E402
from hyco_ray.core.space import load_space  # noqa: E402
from hyco_ray.core.sweep_dir import load_sweep  # noqa: E402
from hyco_ray.runner.sweep import SweepError, run_sweep  # noqa: E402

pytestmark = pytest.mark.slow

FAIL_AT = 2
EPOCHS = 4
OBJECTIVES = {"val_loss_synthetic": "min", "val_loss_physical": "min"}


@pytest.fixture(scope="module")
def asha_sweep(tmp_path_factory):
    """6 trials, ASHA (one rung, after 1 epoch), each trial crashes once at epoch 2.

    One trial at a time makes ASHA's decisions deterministic; reduction factor 4 keeps only trials
    in the best quarter at the rung, so some are stopped unless every trial beats all before it.
    """
    tmp = tmp_path_factory.mktemp("asha")
    space = write_space(
        tmp, cache_dir=tmp / "cache", epochs=EPOCHS, name="asha", num_samples=6, max_concurrent=1,
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 4},
        searcher={"type": "optuna", "sampler": "tpe", "seed": 1, "n_startup_trials": 3, "storage": "auto"},
    )
    spec = load_space(space)
    start_shared_ray()
    outcome = run_sweep(spec, num_cpus=2, after_epoch=fail_once_at(FAIL_AT))
    # a sweep that started its own Ray shuts it down: asserted after the in-process resume of
    # test_timeout_term_then_the_printed_hint_resumes_with_nothing_rerun; this one joined the shared Ray
    assert ray.is_initialized(), "a sweep must leave a Ray it joined running"
    return spec, outcome, load_sweep(outcome.experiment_dir)


def test_sweep_is_complete_and_summarised(asha_sweep):
    spec, outcome, sweep = asha_sweep
    assert outcome.finished
    assert len(sweep.trials) == spec.num_samples
    assert all(t.status == "TERMINATED" for t in sweep.trials)
    assert {t.outcome(spec.max_t) for t in sweep.trials} <= {"complete", "stopped"}
    assert "best trial:" in outcome.summary and "trial-epochs" in outcome.summary
    assert (Path(outcome.experiment_dir) / "summary.md").read_text() == outcome.summary
    stopped = sweep.by_outcome("stopped")
    assert stopped, "ASHA stopped no trial: the PRUNED test below would be vacuous"
    assert "ASHA stopped" in summary_text(sweep)


def test_sweep_trials_are_coupled_on_partial_data(asha_sweep):
    """The tiny problem is half observed, so every trial's sampled alpha < 1 turns the interaction
    term on in every epoch (on fully observed data alpha would change nothing)."""
    _, _, sweep = asha_sweep
    for trial in sweep.trials:
        assert trial.params["trainer_params.alpha"] < 1
        assert trial.history and all(row["coupled"] for row in trial.history), trial.trial_id


def test_asha_stopped_trials_are_pruned_in_the_optuna_study(asha_sweep):
    spec, outcome, sweep = asha_sweep
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{outcome.experiment_dir}/optuna.db")
    assert len(study.trials) == spec.num_samples
    by_params = {tuple(sorted(t.params.items())): t for t in study.trials}
    pruned = 0
    for trial in sweep.trials:
        ot = by_params[tuple(sorted(trial.params.items()))]
        epochs = [r["epoch"] for r in trial.history]
        values = {r["epoch"]: r["val_loss"] for r in trial.history}
        assert ot.intermediate_values == pytest.approx(values), "every epoch must reach Optuna as an intermediate value"
        if trial.outcome(spec.max_t) == "stopped":
            pruned += 1
            assert ot.state == optuna.trial.TrialState.PRUNED
            assert max(ot.intermediate_values) == max(epochs) < spec.max_t
        else:
            assert ot.state == optuna.trial.TrialState.COMPLETE
            assert ot.value == pytest.approx(trial.final["val_loss"])
            assert max(ot.intermediate_values) == spec.max_t
    assert pruned >= 1
    assert len(study.get_trials(states=(optuna.trial.TrialState.PRUNED,))) == pruned


def test_crashed_trials_continue_from_their_checkpoint(asha_sweep):
    spec, _, sweep = asha_sweep
    crashed = [t for t in sweep.trials if t.epochs >= FAIL_AT]
    assert crashed, "no trial reached the injected failure"
    for t in sweep.trials:
        epochs = [r["epoch"] for r in t.history]
        assert epochs == list(range(1, t.epochs + 1)), f"epochs must continue, not restart: {epochs}"
        marker = Path(t.path) / ".hyco_injected_failure"
        if t in crashed:
            assert marker.exists() and t.num_failures == 1
            # epochs before the crash ran in the first attempt, the rest after restoring epoch FAIL_AT - 1
            assert [r["restored_from_epoch"] for r in t.history] == [0] * (FAIL_AT - 1) + [FAIL_AT - 1] * (t.epochs - FAIL_AT + 1)
            # Tune's own iteration counter continues too (rows Tune's result.json lost come from the checkpoint)
            assert all(r["training_iteration"] == r["epoch"] for r in t.history if "training_iteration" in r)
        else:
            assert not marker.exists() and t.num_failures == 0


def test_export_then_hyco_train_reproduces_the_trial(asha_sweep, tmp_path):
    from hyco.config import load_config_file
    from hyco_ray.cli import main

    spec, outcome, sweep = asha_sweep
    best = sweep.best()
    out = tmp_path / "best.yaml"
    assert main(["export", outcome.experiment_dir, "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# hyco export") and "num_threads=1" in text and best.trial_id in text
    cfg = load_config_file(out)
    assert cfg.run_params.seed == 0 and cfg.run_params.num_threads == best.final["num_threads"] == 1
    for key, value in best.params.items():
        section, *rest = key.split(".")
        node = getattr(cfg, section)
        for part in rest:
            node = getattr(node, part)
        assert node == value

    run_dir = tmp_path / "rerun"
    assert main(["train", "--config-file", str(out), "--run-dir", str(run_dir)]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == spec.max_t
    rerun, trial = rows[-1]["val_loss"], best.final["val_loss"]
    assert abs(rerun - trial) / abs(trial) < 1e-6, (rerun, trial)


def test_export_refuses_an_unknown_trial(asha_sweep, tmp_path):
    from hyco.errors import HycoError

    with pytest.raises(HycoError, match="no trial"):
        export_best(asha_sweep[1].experiment_dir, tmp_path / "x.yaml", trial_id="nope")


def test_report_writes_curves_table_and_importances(asha_sweep, tmp_path):
    spec, outcome, _ = asha_sweep
    files = write_report(outcome.experiment_dir, tmp_path / "report")
    assert files["curves"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = files["csv"].read_text().splitlines()
    assert len(lines) == 1 + spec.num_samples and "stopped" in files["csv"].read_text()
    imp = json.loads(files["importances"].read_text())
    assert imp["note"]
    if imp["importances"]:
        assert set(imp["importances"]) == set(spec.space)
        assert math.isclose(sum(imp["importances"].values()), 1.0, rel_tol=1e-6)
    assert "| trial_id |" in files["markdown"].read_text()


def test_complete_trials_leave_figures_test_metrics_and_evaluate(asha_sweep, capsys):
    """Issue 10.5: a trial dir held no figures nor test metrics, `hyco evaluate <trial dir>` refused
    it, and nothing linked an Optuna trial to its Ray trial."""
    from hyco_ray.cli import main

    spec, outcome, sweep = asha_sweep
    best = sweep.best()
    trial_dir = Path(best.path)
    assert {p.name for p in (trial_dir / "figures").glob("*.png")} >= {"predictions.png"}
    # issue 23: the other trials spend no CPU on figures (trial_figures: best, the default); the sweep
    # drew its pick's from the checkpoint when it ended
    assert spec.trial_figures == "best"
    assert not [t.trial_id for t in sweep.trials if t is not best and (Path(t.path) / "figures").exists()]
    saved = json.loads((trial_dir / "test_metrics.json").read_text())
    assert saved["epoch"] == spec.max_t and best.final["test_loss_physical"] == saved["test_loss_physical"]
    for t in sweep.by_outcome("stopped"):
        assert not (Path(t.path) / "test_metrics.json").exists()
    (trial_dir / "test_metrics.json").unlink()
    capsys.readouterr()
    assert main(["evaluate", str(trial_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["test_loss_physical"] == pytest.approx(saved["test_loss_physical"], rel=1e-6)
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{outcome.experiment_dir}/optuna.db")
    assert sorted(t.user_attrs["ray_trial_id"] for t in study.trials) == sorted(t.trial_id for t in sweep.trials)


def test_the_study_names_its_metric_and_each_trial_holds_what_it_reported(asha_sweep):
    """21.13: the study had no metric_names (plots said "Objective 0") and its trials carried only
    ray_trial_id: now every number of a trial's last result, test metrics of complete trials too."""
    spec, _, sweep = asha_sweep
    study = sweep.study()
    assert study.metric_names == [spec.metric]
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    for trial in sweep.trials:
        attrs = by_ray_id[trial.trial_id].user_attrs
        for key in ("epoch", "val_loss", "val_loss_synthetic", "val_loss_physical", "param_error", "train_loss"):
            assert attrs[key] == trial.final[key], (trial.trial_id, key)
        tested = [k in attrs for k in ("test_loss", "test_loss_synthetic", "test_loss_physical")]
        assert tested == [trial.outcome(spec.max_t) == "complete"] * 3, (trial.trial_id, attrs)


def test_report_and_test_metrics_hold_the_val_loss_parts_and_the_test_loss(asha_sweep, tmp_path):
    """21.17: trials.csv / report.md lacked val_loss's parts and the test metrics; test_metrics.json
    lacked the combined test loss (the geometric mean, as val_loss)."""
    spec, outcome, sweep = asha_sweep
    files = write_report(outcome.experiment_dir, tmp_path / "report")
    table = pd.read_csv(files["csv"], dtype={"trial_id": str}).set_index("trial_id")
    keys = ["val_loss", "val_loss_synthetic", "val_loss_physical", "param_error", "test_loss",
            "test_loss_synthetic", "test_loss_physical"]
    assert set(keys) <= set(table.columns) and all(f" {k} |" in files["markdown"].read_text() for k in keys)
    for trial in sweep.trials:
        row = table.loc[trial.trial_id]
        assert row.val_loss_physical == pytest.approx(trial.final["val_loss_physical"], rel=1e-12)
        if trial.outcome(spec.max_t) != "complete":
            assert math.isnan(row.test_loss)
            continue
        saved = json.loads((Path(trial.path) / "test_metrics.json").read_text())
        assert saved["test_loss"] == trial.final["test_loss"] == pytest.approx(row.test_loss, rel=1e-12)
        assert saved["test_loss"] == pytest.approx(math.sqrt(saved["test_loss_synthetic"] * saved["test_loss_physical"]))


def test_a_second_start_of_the_same_sweep_asks_for_resume(asha_sweep, no_shared_ray):
    spec, _, _ = asha_sweep
    with pytest.raises(SweepError, match="--resume"):
        run_sweep(spec)
    assert not ray.is_initialized()


def _finished(exp_dir: Path, epochs: int) -> list[Path]:
    done = []
    for path in exp_dir.glob("trial_*/result.json"):
        if any(json.loads(line).get("epoch") == epochs for line in path.read_text().splitlines() if line.strip()):
            done.append(path)
    return done


def test_timeout_term_then_the_printed_hint_resumes_with_nothing_rerun(tmp_path, no_shared_ray):
    """Issue 11 acceptance: `hyco tune <space> --name X` under `timeout -s TERM` stops cleanly when timeout
    signals its whole process group, as it does at its deadline and as job schedulers do (issue 11.3): exit
    130 within 45 s, a summary, one line per event and no status tables (10.7), the sweep directory at start
    and end, and a hint that resumes the sweep named with --name (10.3). The hint, run in this process,
    finishes every trial, runs no finished one again, continues interrupted ones from their checkpoint and
    shuts its embedded Ray down. The test, not the clock, sends timeout the TERM once two trials finished
    (a 30 s deadline is not reached on a loaded machine before Ray has even been imported). Was two tests:
    SIGTERM to a Popen's group, and a literal `timeout -s TERM 30` (its exit 124 is timeout's own). The sweep is
    multi-objective (issue 12: every trial reaches the MO study with its last values after the resume; was a
    test of its own, with Ctrl-C, which reaches the driver the same way)."""
    space = write_space(tmp_path, cache_dir=tmp_path / "cache", name="timeout", num_samples=4, max_concurrent=2,
                        scheduler={"type": "fifo"}, checkpoint_period_s=2, objectives=OBJECTIVES)
    exp_dir = tmp_path / "sweeps" / "X"
    log_path = tmp_path / "first.log"
    with log_path.open("w") as out:
        proc = subprocess.Popen(["timeout", "-s", "TERM", "600", sys.executable, "-m", "hyco_ray.cli", "tune",
                                 str(space), "--name", "X", "--num-cpus", "2"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
        try:
            deadline = time.time() + 240
            while len(_finished(exp_dir, 3)) < 2:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.time() < deadline, "trials did not finish in time"
                time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)  # timeout passes it on to its process group
            tic = time.time()
            rc = proc.wait(timeout=120)
            stop_s = time.time() - tic
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    log = log_path.read_text()
    assert rc == 130 and stop_s < 45, (rc, stop_s, log[-3000:])
    assert "## sweep X" in log and "continue it with: hyco tune" in log, log[-3000:]
    assert "== Status ==" not in log, [line for line in log.splitlines() if "Status" in line]
    assert "finished after epoch 3: val_loss" in log, log[-3000:]  # one line per event (hyco_ray.runner.console)
    assert log.count(f"sweep directory: {exp_dir}") == 2
    hint = log.split("continue it with: ")[1].splitlines()[0]
    assert hint.startswith("hyco tune") and "--name X" in hint and hint.endswith("--resume")

    interrupted = load_sweep(exp_dir)
    assert interrupted.trials and (len(interrupted.trials) < 4 or interrupted.by_outcome("unfinished")), \
        f"{len(interrupted.trials)} trials started: the sweep was not interrupted mid-way"
    finished = {t.trial_id: Path(t.path, "result.json").read_text() for t in interrupted.by_outcome("complete")}
    assert len(finished) >= 2

    from hyco_ray.cli import main

    assert main(shlex.split(hint)[1:] + ["--num-cpus", "2"]) == 0
    assert not ray.is_initialized(), "the embedded Ray must be shut down after the sweep"
    resumed = load_sweep(exp_dir)
    assert len(resumed.trials) == 4
    assert [t.outcome(resumed.spec.max_t) for t in resumed.trials] == ["complete"] * 4
    for trial_id, before in finished.items():
        after = Path(exp_dir, f"trial_{trial_id}", "result.json").read_text()
        assert after == before, f"finished trial {trial_id} was run again"
    for t in resumed.trials:  # an interrupted trial went on from its checkpoint: no epoch ran twice
        assert [r["epoch"] for r in t.history] == [1, 2, 3], (t.trial_id, [r["epoch"] for r in t.history])
        trained = [r["epoch"] for r in metrics_lines(t.path) if r.get("trial_id") == t.trial_id]
        assert trained == [1, 2, 3], (t.trial_id, trained)  # 21.8: the epoch saved after the signal was trained again
    study = optuna.load_study(study_name="X", storage=f"sqlite:///{exp_dir}/optuna.db")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert sorted(by_ray_id) == sorted(t.trial_id for t in resumed.trials)
    for t in resumed.trials:
        assert by_ray_id[t.trial_id].values == [t.final[k] for k in OBJECTIVES]


@pytest.fixture(scope="module")
def grown_sweep(tmp_path_factory):
    """A FIFO sweep of 2 trials (2 epochs), then resumed with num_samples=3: issue 10.4's test, the
    second sweep of `hyco report A B`, and the MLflow callback's sweep."""
    tmp = tmp_path_factory.mktemp("grown")
    space = write_space(tmp, cache_dir=tmp / "cache", epochs=2, num_samples=2, callbacks=["mlflow"])
    start_shared_ray()
    first = run_sweep(load_space(space), num_cpus=2)
    return first, run_sweep(load_space(space, ["num_samples=3"]), resume=True, num_cpus=2)


def test_resume_with_more_samples_adds_trials(grown_sweep):
    """Issue 10.4: `--resume --num-samples N` refused with a diff; now it adds the missing trials
    (a new Tune run in the same directory) and the Optuna study goes on with new points."""
    first, more = grown_sweep
    assert first.finished and first.trials == 2
    sweep = load_sweep(more.experiment_dir)
    assert more.finished and len(sweep.trials) == 3 and sweep.spec.num_samples == 3
    assert {t.outcome(2) for t in sweep.trials} == {"complete"}
    assert "trials: 3 started of num_samples 3" in more.summary
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{more.experiment_dir}/optuna.db")
    assert len(study.trials) == 3 and len({t.params["trainer_params.alpha"] for t in study.trials}) == 3


def test_mlflow_callback_logs_one_run_per_trial_to_a_file_store(grown_sweep):
    """Issue 10 (trackers): `callbacks: [mlflow]` names Ray's MLflowLoggerCallback; by default it
    writes a local file store <sweep dir>/mlruns with one run per trial and its metrics (the trial
    added by the resume too)."""
    from mlflow.tracking import MlflowClient

    _, outcome = grown_sweep
    client = MlflowClient(tracking_uri=(Path(outcome.experiment_dir) / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    trial_ids = {t.trial_id for t in load_sweep(outcome.experiment_dir).trials}
    assert len(trial_ids) == 3 and len(runs) == 3
    assert {r.data.tags["trial_name"] for r in runs} == {f"trial_{i}" for i in trial_ids}
    for run in runs:
        assert run.info.status == "FINISHED" and math.isfinite(run.data.metrics["val_loss"])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]
        assert "trainer_params.alpha" in run.data.params


def test_report_curves_are_labelled_by_the_sampled_values(asha_sweep):
    """Issue 10: each trial's curve says which settings it ran, not only its trial id."""
    _, _, sweep = asha_sweep
    ax = plot_curves(sweep).axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts() if not text.get_text().startswith("ASHA rung")]
    assert len(labels) == len(sweep.trials)
    for t, label in zip(sweep.trials, labels):  # the best trial starred, a stopped one says so
        alpha, iterations = t.params["trainer_params.alpha"], t.params["trainer_params.physical.max_iterations"]
        assert f"{t.trial_id}: α_S={alpha:.2g} iters_P={iterations}" in label
    assert ax.get_xlabel() == "epoch" and ax.xaxis.get_major_locator()._integer and "(relative)" in ax.get_ylabel()


def test_report_a_b_compares_two_sweeps(asha_sweep, grown_sweep, tmp_path, capsys):
    """`hyco report A B`: one table (best metric, param_error, trials, trial-epochs, early-stop
    savings per sweep) and one figure (best so far against trial-epochs, and both sweeps' curves)."""
    from hyco_ray.cli import main

    sweeps = [asha_sweep[2], load_sweep(grown_sweep[1].experiment_dir)]
    a, b = (str(s.path) for s in sweeps)
    assert main(["report", a, b, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "compare-tiny.csv")
    assert list(table.sweep) == ["asha", "tiny"] and list(table.scheduler) == ["asha", "fifo"]
    rows = [row for _, row in table.iterrows()]
    for row, sweep in zip(rows, sweeps):
        best, max_t = sweep.best(), sweep.spec.max_t
        assert row["best"] == pytest.approx(best.value("val_loss"))
        assert row["param_error"] == pytest.approx(best.value("param_error"))
        assert row["trials"] == len(sweep.trials) and row["trial-epochs"] == sum(len(t.history) for t in sweep.trials)
        assert row["saved trial-epochs"] == sum(max_t - t.epochs for t in sweep.by_outcome("stopped"))
        assert f"{row['sweep']} " in printed.split("compare: ")[1]
    assert table["saved trial-epochs"][0] > 0 == table["saved trial-epochs"][1]
    assert "## compared with" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "compare-tiny.png").read_bytes()[:4] == b"\x89PNG"

    fig = plot_compare(sweeps)
    best_ax, *curve_axes = fig.axes[:3]
    assert best_ax.get_xlabel() == "trial-epochs spent" and best_ax.xaxis.get_major_locator()._integer
    for line, row in zip(best_ax.get_lines(), rows):  # ends at the sweep's compute and best
        assert line.get_label().startswith(row["sweep"]) and line.get_xdata()[-1] == row["trial-epochs"]
        assert line.get_ydata()[-1] == pytest.approx(row["best"])
    assert [ax.get_title().split(":")[0] for ax in curve_axes] == ["asha", "tiny"]
    trial_lines = [[line for line in ax.get_lines() if any(t.trial_id in line.get_label() for t in s.trials)]
                   for ax, s in zip(curve_axes, sweeps)]  # beside them: the best trial's star, ASHA's rungs
    assert [len(lines) for lines in trial_lines] == [len(s.trials) for s in sweeps]

    assert main(["report", a, b]) == 0  # default: next to the first sweep
    assert (Path(a) / "report" / "compare-tiny.png").is_file()


def test_leftovers_of_a_killed_driver_are_ended_by_the_next_start(tmp_path, capsys):
    """Issue 11.9: after a SIGKILL of the `hyco tune` driver its Ray processes live on (agents for
    about a minute); the next start (`hyco tune`, `--resume`: connect_ray -> end_leftovers) ends
    them by pid and start time, and leaves another live sweep's Ray alone."""
    import psutil  # Ray's bundled copy, on the path once ray is imported

    from hyco_ray.runner import leftovers

    sessions = leftovers.state_dir()  # conftest: a directory of this test session
    ready = tmp_path / "ready"
    other = subprocess.Popen(  # another live sweep's Ray, recorded the same way
        [sys.executable, "-c", "import pathlib, time; from hyco_ray.runner.sweep import connect_ray; connect_ray(None, 1, "
         f"'other'); pathlib.Path({str(ready)!r}).write_text('x'); time.sleep(600)"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    space = Path(__file__).parents[1] / "search_spaces" / "burgers_quick.yaml"
    small = [o for o in SMALL if "warmup" not in o]  # warmup_epochs is searched in this space
    exp_dir = tmp_path / "burgers_quick"
    log = (tmp_path / "driver.log").open("w")
    driver = None
    try:
        deadline = time.time() + 120
        while not ready.exists():
            assert other.poll() is None and time.time() < deadline, "the other Ray did not start"
            time.sleep(0.5)
        others = psutil.Process(other.pid).children(recursive=True)
        driver = subprocess.Popen(  # the driver itself (the console command runs it with --in-session)
            [sys.executable, "-m", "hyco_ray.cli", "tune", str(space), "--in-session", "--storage-path", str(tmp_path),
             "--num-cpus", "2", "num_samples=4", "trainer_params.epochs=3", "scheduler.grace_period=1", *small, f"data.cache_dir={tmp_path}/cache"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
        deadline = time.time() + 240
        while not any(p.stat().st_size for p in exp_dir.glob("trial_*/result.json")):
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.time() < deadline, "no trial reported in time"
            time.sleep(0.5)
        ours = psutil.Process(driver.pid).children(recursive=True)
        assert any(p.name().startswith("ray::") for p in ours), [p.name() for p in ours]
        driver.kill()
        driver.wait()
        killed = time.time()
        time.sleep(2)
        left = [p for p in ours if leftovers._running(p)]
        assert left, "no Ray process outlived the driver: nothing to test"
        assert (sessions / f"{driver.pid}.json").exists() and (sessions / f"{other.pid}.json").exists()

        ended = leftovers.end_leftovers()
        out = capsys.readouterr().out
        assert ended >= 1 and f"killed sweep {exp_dir} (driver pid {driver.pid}" in out, out
        assert not [p.name() for p in ours if leftovers._running(p)], "leftovers still running"
        assert time.time() - killed < 40  # not just the agents' own ~60 s time-out
        assert not (sessions / f"{driver.pid}.json").exists()
        assert other.poll() is None and all(map(leftovers._running, others)), "another sweep's Ray was touched"
        assert (sessions / f"{other.pid}.json").exists()
        assert leftovers.end_leftovers() == 0  # nothing more to end
    finally:
        log.close()
        if driver is not None and driver.poll() is None:
            driver.kill()
        other.send_signal(signal.SIGINT)  # it shuts its Ray down and exits
        try:
            other.wait(timeout=60)
        except subprocess.TimeoutExpired:
            other.kill()
        leftovers.end_leftovers(grace_s=2)  # whatever either left: ours only


def test_a_killed_console_process_stops_its_driver_resumably(tmp_path):
    """Issue 11.9: `hyco tune` runs its driver in a session of its own; a SIGKILL of the `hyco tune`
    process (the one the user sees) left that driver running the sweep on, unseen. It now stops as
    on Ctrl-C: summary, resume hint, its Ray shut down and its leftovers record deleted."""
    import psutil  # Ray's bundled copy, on the path once ray is imported

    from hyco_ray.runner import leftovers

    space = write_space(tmp_path, cache_dir=tmp_path / "cache", name="orphan", num_samples=6, checkpoint_period_s=2)
    log = (tmp_path / "console.log").open("w")
    console = start_tune(space, log, tmp_path)
    driver = None
    try:
        deadline = time.time() + 240
        while not any(p.stat().st_size for p in (tmp_path / "sweeps" / "orphan").glob("trial_*/result.json")):
            assert console.poll() is None, (tmp_path / "console.log").read_text()[-3000:]
            assert time.time() < deadline, "no trial reported in time"
            time.sleep(0.5)
        (driver,) = [p for p in psutil.Process(console.pid).children() if "--in-session" in p.cmdline()]
        ray_procs = driver.children(recursive=True)
        console.kill()
        console.wait()
        driver.wait(timeout=90)
        assert not [p.name() for p in ray_procs if leftovers._running(p)], "the driver left Ray processes"
    finally:
        log.close()
        if driver is not None and driver.is_running():
            driver.kill()
    text = (tmp_path / "console.log").read_text()
    assert "## sweep orphan" in text and "continue it with: hyco tune" in text, text[-3000:]
    assert not (leftovers.state_dir() / f"{driver.pid}.json").exists()


def test_rays_own_readers_see_every_trial_of_an_extended_sweep(grown_sweep):
    """21.10: after `--resume --num-samples 3` (a second Tune run in the sweep directory),
    ExperimentAnalysis and Tuner.restore(...).get_results() read the newest run's state only: 1 of 3
    trials. The state files are merged: Ray's readers see every trial and the same best as hyco's."""
    from ray import tune
    from ray.tune import ExperimentAnalysis

    from hyco_ray.runner.trainable import make_trainable

    _, more = grown_sweep
    sweep = load_sweep(more.experiment_dir)
    assert len(list(Path(more.experiment_dir).glob("experiment_state-*.json"))) >= 2  # a run added trials
    ids, best = sorted(t.trial_id for t in sweep.trials), sweep.best().trial_id
    analysis = ExperimentAnalysis(more.experiment_dir)
    assert sorted(t.trial_id for t in analysis.trials) == ids and len(ids) == 3
    assert analysis.get_best_trial("val_loss", "min", "last").trial_id == best
    assert {t.trial_id: t.status for t in analysis.trials} == dict.fromkeys(ids, "TERMINATED")
    results = tune.Tuner.restore(more.experiment_dir, make_trainable(sweep.spec)).get_results()
    assert sorted(r.metrics["trial_id"] for r in results) == ids and not results.errors
    assert results.get_best_result("val_loss", "min").metrics["trial_id"] == best


#: half the domain observed, with noise: S's and P's errors pull apart as the data weights vary
CONFLICT = ["data.observation.mask=region", "data.observation.region=[[0.0,0.5]]", "data.observation.noise=0.02"]


@pytest.fixture(scope="module")
def mo_sweep(tmp_path_factory):
    """Issue 12: 8 trials of 3 epochs, FIFO (every trial complete, so every trial may be on the front),
    NSGA-II over S's and P's data weights, one trial at a time (the same trials every run).

    The objectives conflict only weakly here (S's error moves ~1% across the space in 3 epochs, P's
    20x): fronts of 8 trials had 1-3 members over samplers tpe/nsga2 x seeds 0-3; this one has 3."""
    tmp = tmp_path_factory.mktemp("mo")
    space = write_space(
        tmp, cache_dir=tmp / "cache", epochs=3, name="mo", num_samples=8, max_concurrent=1, objectives=OBJECTIVES,
        overrides=["trainer_params.epochs=3", *SMALL, *CONFLICT],
        space={"trainer_params.alpha": {"type": "uniform", "low": 0.02, "high": 1.0},
               "trainer_params.alpha_physical": {"type": "uniform", "low": 0.02, "high": 1.0}},
        searcher={"type": "optuna", "sampler": "nsga2", "seed": 0, "n_startup_trials": 4, "storage": "auto"},
    )
    spec = load_space(space)
    start_shared_ray()
    outcome = run_sweep(spec, num_cpus=2)
    return spec, outcome, load_sweep(outcome.experiment_dir)


def test_multi_objective_sweep_has_a_front_and_its_figure(mo_sweep, tmp_path):
    spec, outcome, sweep = mo_sweep
    assert outcome.finished and len(sweep.by_outcome("complete")) == spec.num_samples
    front = sweep.pareto_front()
    assert len(front) >= 3, [(t.trial_id, [t.value(k) for k in OBJECTIVES]) for t in sweep.trials]
    assert sweep.knee() in front
    assert "Pareto front (min val_loss_synthetic, min val_loss_physical): " in outcome.summary
    assert all(t.trial_id in outcome.summary for t in front)
    files = write_report(outcome.experiment_dir, tmp_path / "report")
    assert files["pareto"].name == "pareto.png" and files["pareto"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![pareto](pareto.png)" in files["markdown"].read_text()


def test_multi_objective_study_holds_each_trials_last_result_row(mo_sweep):
    spec, outcome, sweep = mo_sweep
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{outcome.experiment_dir}/optuna.db")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert sorted(by_ray_id) == sorted(t.trial_id for t in sweep.trials)
    for trial in sweep.trials:
        ot = by_ray_id[trial.trial_id]
        assert ot.state == optuna.trial.TrialState.COMPLETE and ot.intermediate_values == {}
        assert ot.values == [trial.final[k] for k in OBJECTIVES]
    assert {t.user_attrs["ray_trial_id"] for t in study.best_trials} == {t.trial_id for t in sweep.pareto_front()}


def test_the_multi_objective_study_names_its_objectives(mo_sweep):
    """21.13: optuna-dashboard and Optuna's plots said "Objective 0", "Objective 1"."""
    spec, _, sweep = mo_sweep
    study = sweep.study()
    assert study.metric_names == list(OBJECTIVES)
    for trial in study.trials:
        assert {*OBJECTIVES, "val_loss", "param_error", "test_loss"} <= set(trial.user_attrs)


def test_export_of_a_front_member_reruns_to_its_objectives(mo_sweep, tmp_path):
    from hyco_ray.cli import main

    spec, outcome, sweep = mo_sweep
    knee = sweep.knee()
    assert main(["export", outcome.experiment_dir, "-o", str(tmp_path / "knee.yaml")]) == 0
    assert f"trial {knee.trial_id} " in (tmp_path / "knee.yaml").read_text()
    member = next(t for t in sweep.pareto_front() if t is not knee)
    out = tmp_path / "member.yaml"
    assert main(["export", outcome.experiment_dir, "--trial", member.trial_id, "-o", str(out)]) == 0
    assert main(["train", "--config-file", str(out), "--run-dir", str(tmp_path / "rerun")]) == 0
    last = [json.loads(line) for line in (tmp_path / "rerun" / "metrics.jsonl").read_text().splitlines()][-1]
    for key in OBJECTIVES:
        assert abs(last[key] - member.final[key]) / abs(member.final[key]) < 1e-6, (key, last[key], member.final[key])
