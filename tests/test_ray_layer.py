"""The Ray layer's start, stop and bookkeeping, cheap: no sweep runs here (those are in test_sweep.py)."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from hyco_ray.core import sweep_dir  # noqa: E402
from hyco_ray.runner import sweep as sweep_mod  # noqa: E402


def test_local_ray_never_joins_another_ray_on_the_host(monkeypatch):
    """Issue 10.1: without address="local", ray.init joins a running Ray, then num_cpus raises."""
    calls = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    assert sweep_mod.connect_ray(None, 2) is True
    (kw,) = calls
    assert kw["address"] == "local" and kw["num_cpus"] == 2


@pytest.mark.slow
def test_local_ray_starts_beside_another_ray_on_the_host(tmp_path):
    """Issue 10.1 for real: another Ray (its own session) runs on this host; ours starts anyway."""
    import subprocess
    import sys
    import time

    ready = tmp_path / "ready"
    other = subprocess.Popen(
        [sys.executable, "-c", "import pathlib, sys, time, ray; ray.init(num_cpus=1, include_dashboard=False); "
         f"pathlib.Path({str(ready)!r}).write_text('x'); time.sleep(120)"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while not ready.exists():
            assert other.poll() is None and time.time() < deadline, "the other Ray did not start"
            time.sleep(0.5)
        assert sweep_mod.connect_ray(None, 2)
        try:
            assert ray.cluster_resources()["CPU"] == 2  # ours, not the other one (1 CPU)
        finally:
            ray.shutdown()
    finally:
        import os
        import signal

        os.killpg(other.pid, signal.SIGTERM)  # the session we started, nothing else
        other.wait(timeout=60)


@pytest.mark.slow
def test_local_ray_listens_on_localhost_only(monkeypatch):
    """Issue 11.9: the embedded Ray listened on all interfaces ('::', the host's address).
    Every listening TCP socket of every process it starts (GCS, raylet and object manager, agents,
    a worker) must be on 127.0.0.1 / ::1; joining a cluster afterwards resolves addresses as before."""
    import ipaddress
    from unittest import mock

    import psutil
    from ray._private import ray_constants, services

    from hyco_ray.runner import leftovers

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert isinstance(getattr(ray_constants, "ENABLE_RAY_CLUSTER", None), bool), (
        "Ray renamed or removed ray._private.ray_constants.ENABLE_RAY_CLUSTER, which connect_ray patches")
    with mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False):  # what Ray reads it for, before a start
        assert services.get_node_ip_address() == services.get_localhost_ip() == "127.0.0.1"
    cluster_flag = ray_constants.ENABLE_RAY_CLUSTER
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert sweep_mod.connect_ray(None, 2)
    try:
        worker = ray.get(ray.remote(lambda: __import__("os").getpid()).remote())
        ours = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        assert worker in {p.pid for p in ours}
        listening = {(p.name(), c.laddr.ip) for p in ours for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    finally:
        ray.shutdown()
        leftovers.forget()
    assert {"gcs_server", "raylet"} <= {name for name, _ in listening}, listening
    for name, ip in listening:
        addr = ipaddress.ip_address(ip.split("%")[0])
        assert (getattr(addr, "ipv4_mapped", None) or addr).is_loopback, f"{name} listens on {ip}"
    assert ray_constants.ENABLE_RAY_CLUSTER == cluster_flag  # a later --address join is unaffected


def test_a_failed_start_can_be_started_again(tmp_path, monkeypatch):
    """Issue 10.2: Ray failed to start; the rerun must not claim the sweep exists (nor --resume work)."""
    from sweep_util import write_space

    from hyco_ray.core.space import load_space

    spec = load_space(write_space(tmp_path))

    def no_ray(*_):
        raise sweep_mod.SweepError("Ray did not start")

    monkeypatch.setattr(sweep_mod, "connect_ray", no_ray)
    monkeypatch.setattr(sweep_mod, "prepare_data", lambda spec: "")
    for _ in range(2):
        with pytest.raises(sweep_mod.SweepError, match="Ray did not start"):
            sweep_mod.run_sweep(spec)


def test_a_trial_with_an_infinite_val_loss_is_diverged(tmp_path, monkeypatch):
    """Issue 11.2: in a sweep that trial was "complete" in Tune and PRUNED in Optuna."""
    from ray import tune
    from sweep_util import write_space
    from test_cli import SMALL

    from hyco_ray.core.space import load_space
    from hyco_ray.core.sweep_dir import TrialRecord
    from hyco_ray.runner import trainable

    spec = load_space(write_space(tmp_path, cache_dir=tmp_path / "cache",
                                  overrides=[*SMALL, "trainer_params.synthetic.learning_rate=1e5"]))
    reported = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda row, checkpoint=None: reported.append(row))
    trainable.run_trial({"trainer_params.alpha": 0.5, "trainer_params.physical.max_iterations": 1}, sweep=spec.to_dict())
    final = reported[-1]
    assert "diverged (NaN or inf)" in final["training_error"] and final["val_loss"] == float("inf")
    assert TrialRecord("t", "TERMINATED", {}, reported, "").outcome(spec.max_t) == "diverged"


def test_faults_are_injected_by_the_test_not_by_a_production_switch(tmp_path, monkeypatch):
    """Issue 11.10: the trainable read HYCO_FAIL_ONCE_AT_EPOCH from the environment and raised once at that
    epoch (leaving a marker file). With the variable set, a trial must run on to the test's hook."""
    from ray import tune
    from sweep_util import write_space

    from hyco_ray.core.space import load_space
    from hyco_ray.runner import trainable

    spec = load_space(write_space(tmp_path, cache_dir=tmp_path / "cache", epochs=2))
    seen = []

    def hook(epoch, trial_dir):
        seen.append((epoch, trial_dir))
        if epoch == 2:
            raise RuntimeError("injected")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYCO_FAIL_ONCE_AT_EPOCH", "1")  # the old switch: must change nothing
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda row, checkpoint=None: None)
    with pytest.raises(RuntimeError, match="injected"):
        trainable.run_trial({"trainer_params.alpha": 0.5}, sweep=spec.to_dict(), after_epoch=hook)
    assert seen == [(1, tmp_path), (2, tmp_path)]
    assert not list(tmp_path.glob(".hyco_injected*"))


def test_debug_run_samples_the_sweeps_first_trial(tmp_path):
    """Issue 10.9: --debug drew with Python's random, not the sweep's sampler. The sweep's first trial is
    the defaults (enqueued); the bench's fixed configs are the searcher's proposals in order."""
    from sweep_util import write_space

    from hyco_ray.core.space import load_space, proposals, sample_params
    from hyco_ray.runner.search import build_searcher

    for sampler in ("tpe", "random"):
        spec = load_space(write_space(tmp_path, searcher={"sampler": sampler, "seed": 7}))
        searcher = build_searcher(spec, None)
        assert spec.defaults and sample_params(spec) == spec.defaults == searcher.suggest("first")
        assert proposals(spec, 3) == [spec.defaults, searcher.suggest("second"), searcher.suggest("third")]


def test_dry_run_prints_the_plan_fast_without_ray(tmp_path):
    """Issue 10.4: the plan (trials, concurrency, resources, rungs, storage), no Ray, in < 5 s."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import torch

    space = Path(__file__).resolve().parent.parent / "search_spaces" / "burgers_quick.yaml"
    gpus = 0.5 if torch.cuda.device_count() else 0  # a GPU request on a host without one is refused (below)
    tic = time.time()
    out = subprocess.run([sys.executable, "-m", "hyco_ray.cli", "tune", str(space), "--dry-run", "--max-concurrent", "3",
                          "--metric", "val_loss_physical", "--gpus-per-trial", str(gpus), "num_samples=5",
                          "scheduler.grace_period=2", "space.trainer_params.alpha.high=0.5",
                          f"--storage-path={tmp_path}"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    wall = time.time() - tic
    assert out.returncode == 0, out.stderr
    plan = out.stdout
    assert "5 trials, at most 3 at a time" in plan and "min val_loss_physical" in plan
    assert f"{gpus:g} GPU" in plan and "rungs after epochs 2, 4, 8 of 16" in plan and "uniform [0.05, 0.5]" in plan
    assert f"sweep directory: {tmp_path}/burgers_quick (new)" in plan
    assert not (tmp_path / "burgers_quick").exists()
    assert "default backend" not in out.stdout + out.stderr  # issue 10.7: PhiML's line, twice
    assert wall < 5 + 3, wall  # 5 s on an idle machine; this one is shared
    if not torch.cuda.device_count():  # issue 21.17: a plan is never printed for a sweep that would be refused
        out = subprocess.run([sys.executable, "-m", "hyco_ray.cli", "tune", str(space), "--dry-run", "--gpus-per-trial",
                              "0.5", f"--storage-path={tmp_path}"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert out.returncode == 2 and out.stdout == "" and "0 GPUs: no trial could ever start" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_space_overrides_and_flags_reach_the_spec(tmp_path):
    """Issue 10.4: key=value overrides of any space field; other keys are config overrides of every trial."""
    from sweep_util import write_space

    from hyco_ray.core.space import SpaceError, load_space

    spec = load_space(write_space(tmp_path), ["max_concurrent=3", "metric=val_loss_physical", "mode=max",
                                              "resources.gpu=0.5", "searcher.seed=5", "space.trainer_params.alpha.low=0.2",
                                              "trainer_params.synthetic.learning_rate=0.01"])
    assert (spec.max_concurrent, spec.metric, spec.mode, spec.resources.gpu, spec.searcher.seed) == (3, "val_loss_physical", "max", 0.5, 5)
    assert spec.space["trainer_params.alpha"].low == 0.2
    assert "trainer_params.synthetic.learning_rate=0.01" in spec.overrides
    with pytest.raises(SpaceError, match="scheduler.grace: unknown key"):
        load_space(write_space(tmp_path), ["scheduler.grace=2"])
    with pytest.raises(SpaceError, match="no searched key"):
        load_space(write_space(tmp_path), ["space.trainer_params.beta.low=1"])


def test_resume_refuses_an_edited_space(tmp_path):
    """Issue 11.4 (and 10.4): --resume silently ignored a changed space file (fewer num_samples)."""
    from sweep_util import write_space

    from hyco_ray.core.space import load_space

    spec = load_space(write_space(tmp_path))
    exp_dir = sweep_dir.experiment_dir(spec)
    sweep_dir.save_spec(spec)
    assert sweep_mod._unchanged_saved_spec(exp_dir, spec).to_dict() == spec.to_dict()
    edited = load_space(write_space(tmp_path), ["num_samples=2", "space.trainer_params.alpha.high=0.5"])
    with pytest.raises(sweep_mod.SweepError, match=r"num_samples: 4 -> 2.*space.trainer_params.alpha.high: 1.0 -> 0.5"):
        sweep_mod.run_sweep(edited, resume=True)


def test_interrupt_hint_keeps_the_sweep_name(tmp_path, monkeypatch, capsys):
    """Issue 10.3: the printed resume hint dropped --name and resumed the other sweep."""
    from sweep_util import write_space

    from hyco_ray.cli import main

    space = write_space(tmp_path)
    monkeypatch.setattr(sweep_mod, "run_sweep", lambda spec, **kw: sweep_mod.SweepOutcome(
        sweep_dir.experiment_dir(spec), "", False, 1.0))
    assert main(["tune", str(space), "--name", "X", "num_samples=3"]) == 130
    hint = capsys.readouterr().out.split("continue it with: ")[1].strip()
    assert hint == f"hyco tune {space} --name X num_samples=3 --resume"


def test_a_sweep_whose_every_trial_errored_exits_non_zero():
    """Issue 11.8: every trial errored, exit 0."""
    assert sweep_mod.SweepOutcome("d", "", True, 1.0, trials=3, errored=3).exit_code == 1
    assert sweep_mod.SweepOutcome("d", "", True, 1.0, trials=3, errored=2).exit_code == 0
    assert sweep_mod.SweepOutcome("d", "", False, 1.0, trials=3, errored=0).exit_code == 130


def test_a_reused_worker_loads_each_dataset_once(tmp_path, monkeypatch):
    """Issue 13: trials in a reused worker share the dataset of the same data settings; other
    settings get their own, and the worker keeps only a few."""
    import torch
    from sweep_util import write_space

    from hyco.config import load_config
    from hyco_ray.core.space import load_space
    from hyco_ray.runner import trainable

    spec = load_space(write_space(tmp_path, cache_dir=tmp_path / "cache"))
    monkeypatch.setattr(trainable, "_datasets", {})
    cfg = load_config(spec.base, spec.trial_overrides({"trainer_params.alpha": 0.3}))
    first = trainable.trial_dataset(cfg)
    again = trainable.trial_dataset(load_config(spec.base, spec.trial_overrides({"trainer_params.alpha": 0.9})))
    assert again is first  # alpha does not change the data
    other = trainable.trial_dataset(load_config(spec.base, [*spec.trial_overrides({}), "data.observation.noise=0.01"]))
    assert other is not first and not torch.equal(other.observations.frames, first.observations.frames)
    trainable.trial_dataset(load_config(spec.base, [*spec.trial_overrides({}), "data.seed=5"]))
    assert len(trainable._datasets) == trainable.DATASETS_KEPT


def test_a_trial_larger_than_the_machine_is_refused_before_ray_starts(tmp_path, monkeypatch, capsys):
    """Issue 11.7: resources.cpu above the machine's CPUs left every trial PENDING forever."""
    from sweep_util import write_space

    from hyco_ray.cli import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(sweep_mod, "prepare_data", lambda spec: pytest.fail("no work before the check"))
    space = write_space(tmp_path)
    for args, words in ((["resources.cpu=3", "--num-cpus", "2"], "resources.cpu is 3 per trial, but the local Ray has 2 CPUs"),
                        (["resources.gpu=1"], "resources.gpu is 1 per trial, but the local Ray has 0 GPUs")):
        assert main(["tune", str(space), *args]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
        assert not ray.is_initialized()
