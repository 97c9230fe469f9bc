"""The Ray layer's start, stop and bookkeeping, cheap: no sweep runs here (those are in test_sweep.py)."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from hyco_ray import sweep as sweep_mod  # noqa: E402


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


def test_a_failed_start_can_be_started_again(tmp_path, monkeypatch):
    """Issue 10.2: Ray failed to start; the rerun must not claim the sweep exists (nor --resume work)."""
    from sweep_util import write_space

    from hyco_ray.space import load_space

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

    from hyco_ray import trainable
    from hyco_ray.analysis import TrialRecord
    from hyco_ray.space import load_space

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
    """Issue 11.10: the trainable read HYCO_FAIL_ONCE_AT_EPOCH from the environment."""
    import inspect

    from ray import tune
    from sweep_util import write_space

    from hyco_ray import trainable
    from hyco_ray.space import load_space

    source = inspect.getsource(trainable)
    assert "HYCO_FAIL" not in source and "fail_once" not in source
    spec = load_space(write_space(tmp_path, cache_dir=tmp_path / "cache", epochs=2))
    seen = []

    def hook(epoch, trial_dir):
        seen.append((epoch, trial_dir))
        raise RuntimeError("injected")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda row, checkpoint=None: None)
    with pytest.raises(RuntimeError, match="injected"):
        trainable.run_trial({"trainer_params.alpha": 0.5}, sweep=spec.to_dict(), after_epoch=hook)
    assert seen == [(1, tmp_path)]
