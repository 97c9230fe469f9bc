"""Faults of the disk a sweep writes to (issue 21.1, 21.2, 21.7): a disk that fills mid-sweep, a
damaged state file, two starts of the same sweep at once.

The full disk is a real one: a small tmpfs (mounting it needs root; skipped elsewhere), filled by the
test while trials run, then freed, as a user would. An RLIMIT_FSIZE would give EFBIG on one file
instead of ENOSPC on the whole disk (and SIGXFSZ to every Ray worker), so it is not used.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs
import pytest

optuna = pytest.importorskip("optuna")
ray = pytest.importorskip("ray")

from sweep_util import start_shared_ray, start_tune, write_space  # noqa: E402

from hyco.run import append_line  # noqa: E402
from hyco_ray.cli import main  # noqa: E402
from hyco_ray.core import sweep_dir  # noqa: E402
from hyco_ray.core.space import load_space  # noqa: E402
from hyco_ray.core.sweep_dir import load_sweep  # noqa: E402
from hyco_ray.runner.sweep import run_sweep  # noqa: E402


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` (root only), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path) -> Path:
    """Fill the disk to the last block, as another program would; returns the file to delete."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_state_files_are_written_then_renamed(tmp_path):
    """What Tune syncs into a sweep (through ``sweep_dir.storage_filesystem``) and what hyco writes there:
    on a full disk the old file stays whole and no half file or temporary file is left."""
    source = tmp_path / "staging"
    source.mkdir()
    with small_disk(tmp_path / "disk", "1m") as disk:
        exp = disk / "sweep"
        fs = sweep_dir.storage_filesystem(str(exp))
        (source / "experiment_state-1.json").write_text(json.dumps({"trial_data": ["x" * 300_000]}))
        pyarrow.fs.copy_files(str(source), str(exp), destination_filesystem=fs)
        (source / "experiment_state-1.json").write_text(json.dumps({"trial_data": ["y" * 900_000]}))
        with pytest.raises(OSError) as raised:
            pyarrow.fs.copy_files(str(source), str(exp), destination_filesystem=fs)
        assert sweep_dir.is_disk_full(raised.value)
        assert json.loads((exp / "experiment_state-1.json").read_text())["trial_data"] == ["x" * 300_000]
        with pytest.raises(OSError):
            sweep_dir.write_atomic(exp / "experiment_state-1.json", "z" * 900_000)
        assert json.loads((exp / "experiment_state-1.json").read_text())["trial_data"] == ["x" * 300_000]
        append_line(exp / "metrics.jsonl", json.dumps({"epoch": 1}))
        with pytest.raises(OSError):
            append_line(exp / "metrics.jsonl", json.dumps({"epoch": 2, "pad": "p" * 900_000}))
        assert (exp / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
        assert sorted(p.name for p in exp.iterdir()) == ["experiment_state-1.json", "metrics.jsonl"]


@pytest.mark.slow
def test_a_full_disk_stops_the_sweep_resumably_and_the_resume_loses_nothing(tmp_path):
    """Issue 21.1: the sweep directory on a 12 MB tmpfs that the test fills while trials run. The
    driver stops within a minute with one line naming the full disk and the resume command (no
    traceback; it died on Optuna's StorageInternalError), every state file reads whole (Tune's
    experiment state was left truncated), ``hyco report`` works on the stopped sweep, and after the
    filler is deleted the printed command finishes every trial: the finished trial's results are
    untouched, no trial restarts from scratch or runs as a new trial, every Optuna trial is told
    (none left RUNNING)."""
    with small_disk(tmp_path / "disk", "12m") as disk:
        space = write_space(tmp_path, cache_dir=tmp_path / "cache", name="full", num_samples=4, max_concurrent=2,
                            scheduler={"type": "fifo"}, checkpoint_period_s=2, storage_path=str(disk))
        exp = disk / "full"
        log_path = tmp_path / "first.log"
        with log_path.open("w") as log:
            proc = start_tune(space, log, tmp_path)
            try:
                deadline = time.time() + 300
                while not list(exp.glob("trial_*/checkpoint_000002")):  # one trial is in its last epoch
                    assert proc.poll() is None, log_path.read_text()[-3000:]
                    assert time.time() < deadline, "no trial reached epoch 3"
                    time.sleep(0.2)
                filler = fill(disk)
                rc = proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(60)
        out = log_path.read_text()
        last = out.strip().splitlines()[-1]
        assert rc == 1 and "Traceback" not in out, out[-4000:]
        assert last.startswith(f"hyco: error: the disk of {exp} is full") and last.endswith("--resume"), last
        hint = last.split("continue it with: ")[1]
        for state in exp.glob("experiment_state-*.json"):
            json.loads(state.read_text())
        for epochs in exp.glob("trial_*/metrics.jsonl"):
            [json.loads(line) for line in epochs.read_text().splitlines()]
        assert not list(exp.rglob(".tmp-*")), "a half-written file was left"
        stopped = load_sweep(exp)
        finished = {t.trial_id: Path(t.path, "result.json").read_text() for t in stopped.by_outcome("complete")}
        assert main(["report", str(exp), "-o", str(tmp_path / "report")]) == 0

        filler.unlink()
        assert main(hint.split()[1:]) == 0
        resumed = load_sweep(exp)
        assert len(resumed.trials) == 4 and {t.trial_id for t in stopped.trials} <= {t.trial_id for t in resumed.trials}
        assert [t.outcome(3) for t in resumed.trials] == ["complete"] * 4
        for t in resumed.trials:
            assert [r["epoch"] for r in t.history] == [1, 2, 3], (t.trial_id, t.history)
        for trial_id, before in finished.items():
            assert Path(exp, f"trial_{trial_id}", "result.json").read_text() == before, f"{trial_id} ran again"
        study = optuna.load_study(study_name="full", storage=f"sqlite:///{exp}/optuna.db")
        assert [t.state for t in study.trials].count(optuna.trial.TrialState.COMPLETE) == 4
        assert optuna.trial.TrialState.RUNNING not in [t.state for t in study.trials]
        assert main(["report", str(exp)]) == 0


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """One trial of one epoch: a finished sweep directory to damage."""
    tmp = tmp_path_factory.mktemp("tiny")
    space = write_space(tmp, cache_dir=tmp / "cache", epochs=1, name="tiny", num_samples=1)
    start_shared_ray()
    outcome = run_sweep(load_space(space), num_cpus=2)
    return space, Path(outcome.experiment_dir)


@pytest.mark.slow
def test_a_damaged_searcher_state_is_one_line_on_resume(tiny_sweep, tmp_path, capsys):
    """Issue 21.2: a truncated searcher-state file. Tune restarted the sweep from scratch (a trial ran
    again as a new one; the issue saw a hang); now one line names the file, exit 2, nothing runs."""
    space, exp = tiny_sweep
    damaged = max(exp.glob("searcher-state-*.pkl"))
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[: len(whole) // 2])
    before = sorted((p.name, p.stat().st_mtime_ns) for p in exp.rglob("*") if p.name != sweep_dir.LOCK_FILE)
    capsys.readouterr()
    try:
        assert main(["tune", str(space), "--resume"]) == 2
    finally:
        damaged.write_bytes(whole)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(damaged) in err[0] and "damaged" in err[0], err
    after = sorted((p.name, p.stat().st_mtime_ns) for p in exp.rglob("*") if p.name != sweep_dir.LOCK_FILE)
    assert [a for a in after if a[0] != damaged.name] == [b for b in before if b[0] != damaged.name], \
        "the refused resume wrote into the sweep"


@pytest.mark.slow
def test_a_truncated_experiment_state_is_one_line_in_report(tiny_sweep, tmp_path, capsys):
    """A truncated ``experiment_state-*.json`` (as an older hyco left on a full disk): `hyco report`
    names the file in one line, exit 2 (it was a JSONDecodeError traceback, exit 1)."""
    _, exp = tiny_sweep
    copy = tmp_path / "tiny"
    subprocess.run(["cp", "-a", str(exp), str(copy)], check=True)
    state = max(copy.glob("experiment_state-*.json"))
    state.write_text(state.read_text()[:1000])
    capsys.readouterr()
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(state) in err[0], err


@pytest.mark.slow
def test_two_starts_of_the_same_sweep_at_once_one_is_refused_in_one_line(tmp_path):
    """Issue 21.7: two `hyco tune` of the same name started together. The second died on a SQLite
    IntegrityError traceback (both created the study); now the sweep directory is locked: one run
    goes on, the other gets the "a sweep named ... exists" line, exit 2, before it writes anything."""
    space = write_space(tmp_path, cache_dir=tmp_path / "cache", epochs=1, name="twin", num_samples=1)
    procs = [subprocess.Popen([sys.executable, "-m", "hyco_ray.cli", "tune", str(space), "--num-cpus", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                              start_new_session=True) for _ in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    refused = outs[[p.returncode for p in procs].index(2)] if 2 in codes else ""
    assert codes == [0, 2], outs
    assert "Traceback" not in refused and "IntegrityError" not in refused, refused
    assert refused.strip().splitlines()[-1].startswith("hyco: error: a sweep named 'twin' exists in "), refused
    sweep = load_sweep(tmp_path / "sweeps" / "twin")
    assert [t.outcome(1) for t in sweep.trials] == ["complete"]
