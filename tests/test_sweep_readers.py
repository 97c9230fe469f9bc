"""Issue 21 (10, 12, 13, 16, 17): what reads a sweep agrees with what hyco writes.

The summary names the trial `hyco export` writes (the knee of a multi-objective front); a study
storage that outlives the driver when the sweep directory is remote (an Optuna journal on a shared
disk, or a database the head runs): tested with a `file://` storage path, which hyco treats as remote
as it does `s3://` (the sweep directory is not read back), and a journal file elsewhere.
The Ray readers' and the study's checks on the shared sweeps are in test_sweep.py and test_pbt.py.
"""

from __future__ import annotations

import math

import pytest
from sweep_util import write_space

from hyco_ray.cli import main
from hyco_ray.core.analysis import summary_text, trials_table
from hyco_ray.core.space import load_space
from hyco_ray.core.sweep_dir import Sweep, TrialRecord

OBJECTIVES = {"val_loss_synthetic": "min", "val_loss_physical": "min"}


def _front_sweep(tmp_path) -> Sweep:
    """Three complete trials on a front: A is the best by val_loss (the geometric mean), B the knee."""
    spec = load_space(write_space(tmp_path, name="mo", epochs=2, objectives=OBJECTIVES,
                                  searcher={"type": "optuna", "sampler": "nsga2", "seed": 0}))
    trials = []
    for name, syn, phys in (("A", 1.0, 0.001), ("B", 0.5, 0.1), ("C", 0.45, 0.5)):
        row = {"epoch": 2, "val_loss": math.sqrt(syn * phys), "val_loss_synthetic": syn, "val_loss_physical": phys,
               "param_error": phys / 2, "test_loss": math.sqrt(syn * phys) * 1.1}
        trials.append(TrialRecord(name, "TERMINATED", {"trainer_params.alpha": syn / 2}, [row], str(tmp_path / name)))
    return Sweep(tmp_path, spec, trials)


def test_the_multi_objective_summary_names_the_trial_export_writes(tmp_path):
    """21.12: the summary's "best trial" was the best by val_loss (A) while `hyco export` wrote the knee (B)."""
    sweep = _front_sweep(tmp_path)
    assert sweep.best().trial_id == "A" and sweep.knee().trial_id == "B" and sweep.default_pick() is sweep.knee()
    text = summary_text(sweep)
    chosen = [line for line in text.splitlines() if line.startswith("chosen trial")]
    assert chosen == ["chosen trial (the knee of the Pareto front, hyco export's default): B (2 epochs): "
                      "val_loss_synthetic = 0.5, val_loss_physical = 0.1, val_loss = 0.223607, param_error = 0.05"], text
    assert "best trial" not in text and "  * B: " in text


def test_the_trials_table_has_val_loss_parts_and_test_metrics(tmp_path):
    """21.17: trials.csv / report.md had the metric and param_error only."""
    table = trials_table(_front_sweep(tmp_path))
    for key in ("val_loss", "val_loss_synthetic", "val_loss_physical", "param_error", "test_loss",
                "test_loss_synthetic", "test_loss_physical"):
        assert key in table.columns, key
    assert list(table.val_loss_physical) == [0.001, 0.1, 0.5] and table.test_loss.notna().all()
    assert table.test_loss_synthetic.isna().all()  # not reported: empty, not invented


def test_dry_run_says_where_the_study_lives_on_remote_storage(tmp_path, capsys):
    """21.16: with an s3:// storage path the study lived in memory, silently; --study-storage keeps it."""
    space = str(write_space(tmp_path, epochs=1))
    assert main(["tune", space, "--storage-path", "s3://bucket/hyco", "--dry-run"]) == 0
    assert "study tiny in memory (lost when the driver ends: give --study-storage journal:///" in capsys.readouterr().out
    journal = f"journal://{tmp_path}/shared/study.log"
    assert main(["tune", space, "--storage-path", "s3://bucket/hyco", "--study-storage", journal, "--dry-run"]) == 0
    assert f"study tiny in {journal}" in capsys.readouterr().out
    assert main(["tune", space, "--study-storage", "nonsense", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "searcher.storage" in err and "journal:///abs/path/study.log" in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_remote_sweeps_study_survives_in_a_journal_file(tmp_path):
    """21.16: a sweep whose directory is remote (file://, as s3://) keeps its study in the journal
    file --study-storage names: readable after the driver ended, every trial with its metrics."""
    pytest.importorskip("ray")
    from sweep_util import start_shared_ray

    from hyco_ray.core.sweep_dir import optuna_storage
    from hyco_ray.runner.sweep import run_sweep

    journal = f"journal://{tmp_path}/shared/study.log"
    space = write_space(tmp_path, cache_dir=tmp_path / "cache", epochs=1, num_samples=2)
    spec = load_space(space, [f"storage_path=file://{tmp_path}/bucket", f"searcher.storage={journal}"])
    start_shared_ray()
    outcome = run_sweep(spec, num_cpus=2)
    assert outcome.finished and outcome.experiment_dir == f"file://{tmp_path}/bucket/tiny"
    assert not (tmp_path / "bucket" / "tiny" / "optuna.db").exists()
    import optuna

    study = optuna.load_study(study_name="tiny", storage=optuna_storage(journal))
    assert study.metric_names == ["val_loss"] and len(study.trials) == 2
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == trial.user_attrs["val_loss"]
        assert {"val_loss_synthetic", "val_loss_physical", "param_error", "test_loss"} <= set(trial.user_attrs)


def test_the_cluster_docs_commands_join_the_cluster_with_gpus_and_keep_the_study(capsys, monkeypatch):
    """21.16: docs/cluster.md's `ray exec` line lacked --address auto (on the head it would start a
    second local Ray) and a GPU flag, no `ray job submit` example ran a sweep, and with s3:// the
    study lived in memory. Each documented `hyco tune` command is dry-run by the real CLI here."""
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "cluster.md").read_text()
    commands = [c.split("hyco tune ", 1)[1].rstrip("'") for c in re.findall(r"hyco tune [^\n]*", doc)]
    assert "ray exec --tmux cluster.yaml" in doc and "ray job submit --address http://localhost:8265" in doc
    assert len(commands) >= 2
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # the space file's path in the docs
    import hyco_ray.runner.sweep

    # the one stand-in: a GPU cluster cannot run here, and --dry-run asks the address whether a Ray answers
    monkeypatch.setattr(hyco_ray.runner.sweep, "check_address", lambda address: None)
    for command in commands:
        args = shlex.split(command)
        assert args[args.index("--address") + 1] == "auto" and float(args[args.index("--gpus-per-trial") + 1]) >= 1
        storage = args[args.index("--study-storage") + 1]
        assert main(["tune", *args, "--dry-run"]) == 0, capsys.readouterr().err
        plan = capsys.readouterr().out
        assert f"in {storage}" in plan and "Ray: auto" in plan and ", 1 GPU;" in plan
