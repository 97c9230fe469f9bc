"""Issue 21.15: the live view of ``hyco tune``. One line per event with each trial's settings, why it
ended (ASHA-stopped, diverged, finished, errored), a status line with best so far, running/done/to
start and an ETA; none of Ray's noise (token-auth warning, the "SearchGenerator" box, a TensorBoard
hint into Ray's temp dir, PBT's multi-line blocks, abseil's mutex lines).

The fast tests drive the callback with Tune's own ``Trial`` objects (stubs: no Ray started); the
slow one runs ``hyco tune`` as a user does and reads its whole console output."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_util import write_space

from hyco_ray.core.space import load_space
from hyco_ray.runner.console import LiveView, PbtOneLine, quiet_ray
from hyco_ray.runner.quiet import MUTEX, FilteredStream, LineFilter

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    return load_space(write_space(tmp, epochs=4, scheduler={"type": "asha", "grace_period": 2, "reduction_factor": 2}))


def _trial(trial_id: str, status: str = "RUNNING", **result):
    from ray.tune.experiment import Trial

    trial = Trial("__fake", config={"trainer_params.alpha": 0.41, "trainer_params.physical.max_iterations": 3},
                  trial_id=trial_id, stub=True)
    trial.set_status(status)
    if result:
        trial.update_last_result(result)
    return trial


def test_each_trial_event_is_one_line_with_settings_reason_best_and_eta(spec, capsys):
    view = LiveView(spec, "/sweeps/tiny")
    view.setup()
    a, b, c, d = (_trial(i) for i in "abcd")
    trials = [a, b, c, d]
    for trial in trials:
        view.on_trial_start(0, trials, trial)
    for epoch, value in ((1, 0.5), (2, 0.2), (3, 0.1), (4, 0.05)):
        a.update_last_result({"epoch": epoch, "val_loss": value})
        view.on_trial_result(0, trials, a, a.last_result)
    b.update_last_result({"epoch": 2, "val_loss": 0.9})
    view.on_trial_result(0, trials, b, b.last_result)
    c.update_last_result({"epoch": 3, "val_loss": float("inf"), "training_error": "val_loss is inf"})
    for trial in (a, b, c):  # Tune calls on_trial_complete before it marks the trial TERMINATED
        view.on_trial_complete(0, trials, trial)
        trial.set_status("TERMINATED")
    view.on_trial_error(0, trials, d)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sweep tiny: 4 trials of 4 epochs, 2 at a time, ASHA rung after epoch 2; min val_loss;"
                               " searching α_S, iters_P")
    assert lines[1] == "TensorBoard: tensorboard --logdir /sweeps/tiny"  # not into Ray's temp dir
    assert lines[2] == "+ a started: α_S=0.41 iters_P=3"
    assert sum(line.startswith("* a epoch") and "new best val_loss" in line for line in lines) == 4
    assert "- a finished after epoch 4: val_loss 0.05" in lines
    assert "- b ASHA-stopped after epoch 2: val_loss 0.9" in lines
    assert "- c diverged after epoch 3: val_loss inf" in lines
    assert "! d errored after its retries: see /sweeps/tiny/trial_d/error.txt" in lines
    status = [line for line in lines if line.startswith("[")]
    assert len(status) == 4  # one after each end
    assert re.search(r"\] 0 running, 4 done \(1 finished, 1 ASHA-stopped, 1 diverged, 1 errored\), 0 to start "
                     r"\| best val_loss 0\.05 \(a, epoch 4\) \| ETA", status[-1])
    assert not any("epoch 1:" in line and "new best" not in line for line in lines)  # no line per epoch


def test_eta_counts_the_epochs_left_at_the_rate_so_far(spec):
    view = LiveView(spec, "/sweeps/tiny")
    assert view.eta([]) == "ETA: after the first epoch"
    running = _trial("a")
    view.on_trial_result(0, [running], running, {"epoch": 1, "val_loss": 0.3})
    view.started_at -= 10.0  # 1 trial-epoch in 10 s; 3 left of this trial, 4 x 3 not started: 15 -> 150 s
    assert view.eta([running]) == "ETA at most 2m30s"  # at most: ASHA may stop trials


def test_a_resumed_sweep_counts_and_ranks_the_trials_it_restored(spec):
    view = LiveView(spec, "/sweeps/tiny")
    done = _trial("old", "TERMINATED", epoch=4, val_loss=0.01)
    new = _trial("new")
    view.on_trial_result(0, [done, new], new, {"epoch": 1, "val_loss": 0.5})
    assert "1 running, 1 done (1 finished)" in view.status([done, new])
    assert view.best == (0.01, "old", 4)


def test_pbt_blocks_become_one_line(spec, capsys):
    from ray.tune.schedulers import PopulationBasedTraining

    changes = PopulationBasedTraining(metric="val_loss", mode="min", hyperparam_mutations={"x": [1, 2]})._summarize_hyperparam_changes(
        {"trainer_params.alpha": 0.655, "trainer_params.physical.max_iterations": 3},
        {"trainer_params.alpha": 0.571, "trainer_params.physical.max_iterations": 6},
        {"trainer_params.alpha": "resample", "trainer_params.physical.max_iterations": "* 1.2"})
    logger = logging.getLogger("test.pbt.oneline")
    logger.propagate, logger.handlers = False, [logging.StreamHandler(sys.stdout)]
    logger.setLevel(logging.INFO)
    logger.addFilter(PbtOneLine(spec))  # min val_loss: PBT's scores are negated
    # the messages as ray/tune/schedulers/pbt.py logs them (_exploit)
    logger.info("\n\n[PopulationBasedTraining] [Exploit] Cloning trial b (score = -0.012940) into trial c (score = -0.039892)\n")
    logger.info("\n\n[PopulationBasedTraining] [Explore] Perturbed the hyperparameter config of trialc:\n" + changes)
    logger.info("[pbt]: no checkpoint for trial trial_b. Skip exploit for Trial trial_c")
    out = capsys.readouterr().out.splitlines()
    assert out == ["x PBT exploit: c (val_loss 0.03989) takes b's checkpoint (0.01294); α_S 0.655 -> 0.571, iters_P 3 -> 6"]


def test_quiet_ray_silences_the_local_token_note_and_selects_tunes_silent_output(spec, monkeypatch, caplog):
    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
    quiet_ray(spec)
    quiet_ray(spec)  # twice (a resume that adds trials): one filter each, not two
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0"
    token = logging.getLogger("ray._private.authentication.authentication_token_setup")
    from ray._private.authentication import authentication_token_setup as setup

    with caplog.at_level(logging.WARNING, logger=token.name):
        setup._warn_token_auth_enabled()  # Ray's own warning function
        setup._warn_token_auth_disabled()  # a cluster anyone on the network may use: kept
    assert [r.getMessage()[:40] for r in caplog.records] == ["Token authentication is disabled for thi"]
    assert len(token.filters) == 1
    assert MUTEX.search("[mutex.cc : 1418] RAW: Lock blocking 0x55d0c0a8 @") and MUTEX.search("[mutex.cc:452] RAW: Lock blocking 1")
    assert not MUTEX.search("hyco: error: x")


#: what the driver printed when a node of a two-node Ray was killed mid-sweep (ray.cluster_utils.Cluster,
#: ``remove_node(allow_graceful=False)``; Ray 2.x, 2026-12-06), abridged: 20 lines of dump and log tail
DEAD_NODE = """\
+ 1fd241d3 started: α_S=0.62 iters_P=3
\x1b[33m(raylet)\x1b[0m Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by \
the user or system OOM killer, (2) Invalid memory access from Raylet causing SIGSEGV or SIGBUS, (3) Other termination \
signals. Last 20 lines of the Raylet logs:
    [state-dump] \tObjectManager.UpdateAvailableMemory - 1 total (0 active), Execution time: mean = 0.00ms
    [state-dump] DebugString() time ms: 0
    [state-dump]
    [2026-12-06 04:18:36,563 I 24281 24281] (raylet) worker_pool.cc:564: Started worker process with pid 24479
    [2026-12-06 04:18:45,928 I 24281 24281] (raylet) grpc_client_manager.h:65: Starting gRPC client manager

~ 1fd241d3 failed; retried from its last checkpoint (failure 1 of 2 allowed)
\x1b[33m(raylet)\x1b[0m The node with node id: e5a67e5a and address: 192.0.2.2 has been marked dead because the \
detector has missed too many heartbeats from it. This can happen when a \t(1) raylet crashes unexpectedly (OOM, etc.)
\t(2) raylet has lagging heartbeats due to slow network or busy workload.
- 1fd241d3 finished after epoch 6: val_loss 0.01174
"""


def test_a_dead_nodes_raylet_report_is_one_line_not_its_state_dump():
    """Issue 21, item 15: when a node dies, Ray prints its raylet's state dump and log tail (20 lines,
    twice). The console keeps the head line, with where the log is, and drops the dump; the node's
    death notice, the trial's retry and every other line pass unchanged, on stdout and stderr."""
    keep = LineFilter()
    shown = [s for line in DEAD_NODE.splitlines(keepends=True) if (s := keep(line)) is not None]
    text = "".join(shown)
    assert "[state-dump]" not in text and "(raylet) worker_pool.cc" not in text and "Last 20 lines" not in text
    assert len(shown) == len(DEAD_NODE.splitlines()) - 6  # the head kept; its 5 indented lines and the blank dropped
    died = [s for s in shown if "Raylet is terminated" in s]
    assert len(died) == 1 and died[0].endswith("(ray logs raylet.out --node-ip <ip>).\n")
    assert "~ 1fd241d3 failed; retried" in text and "has been marked dead" in text and "\t(2) raylet has lagging" in text

    # the driver's sys.stdout: Ray prints the report as one multi-line string, then its newline
    sink = io.StringIO()
    stdout = FilteredStream(sink)
    head, _, rest = DEAD_NODE.partition("\x1b[33m")
    print(head, end="", file=stdout)
    print("\x1b[33m" + rest.rstrip("\n"), file=stdout)
    print("progress 50%", end="", file=stdout, flush=True)  # a line still open is shown on flush
    assert sink.getvalue() == text + "progress 50%"


@pytest.mark.slow
def test_hyco_tune_console_is_compact_and_free_of_rays_noise(tmp_path):
    """A real ``hyco tune`` (its own local Ray): 3 ASHA trials of 2 epochs; then ``--resume`` of the
    finished sweep prints its summary once, without Ray's restore notes."""
    space = write_space(tmp_path, cache_dir=tmp_path / "cache", epochs=2, num_samples=3, max_concurrent=2,
                        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2})
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    done = subprocess.run([sys.executable, "-m", "hyco_ray.cli", "tune", str(space), "--num-cpus", "2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for noise in ("Token authentication is enabled", "Configuration for experiment", "SearchGenerator",
                  "/tmp/ray/session", "View detailed results here", "RAW: Lock blocking"):
        assert noise not in out, noise
    exp_dir = tmp_path / "sweeps" / "tiny"
    assert f"TensorBoard: tensorboard --logdir {exp_dir}" in out
    assert len(re.findall(r"^\+ \w+ started: α_S=[\d.]+ iters_P=\d$", out, flags=re.M)) == 3
    ends = re.findall(r"^- \w+ (finished|ASHA-stopped) after epoch (\d)", out, flags=re.M)
    assert len(ends) == 3 and all((why == "finished") == (epoch == "2") for why, epoch in ends)
    assert len(re.findall(r"^\[\S+\] \d running, \d done .*\| best val_loss \S+ \(\w+, epoch \d\) \| ETA", out, flags=re.M)) == 3
    assert out.count("## sweep tiny") == 1  # the summary once
    again = subprocess.run([sys.executable, "-m", "hyco_ray.cli", "tune", str(space), "--num-cpus", "2", "--resume"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert out.count("## sweep tiny") == 1 and "trials: 3 started of num_samples 3" in out, out
    for noise in ("Token authentication is enabled", "Tuner.restore", "Restoring the run", "Configuration for experiment"):
        assert noise not in out, noise


def test_the_drivers_error_line_reaches_the_console_through_the_noise_filter(tmp_path):
    """The driver's stderr passes through the console process (which drops abseil's mutex lines):
    a refusal made in the driver still arrives whole, before the console exits."""
    space = write_space(tmp_path, resources={"cpu": 4, "gpu": 0})
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    done = subprocess.run([sys.executable, "-m", "hyco_ray.cli", "tune", str(space), "--num-cpus", "2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == ["hyco: error: resources.cpu is 4 per trial, but the local Ray has 2 CPUs: no trial "
                                        "could ever start; lower resources.cpu or raise --num-cpus"]
