"""Issue 21, items 4, 9 and 11: `--address` where no Ray answers or whose Ray wants a token, a SIGKILLed
sweep driver, and a space field given twice. (Item 8, an epoch trained again after Ctrl-C: the
epochs.jsonl asserts of the interrupt tests in test_sweep.py, and the driver-kill test here.)"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from sweep_util import start_tune, write_space  # noqa: E402

from hyco.run import METRICS_FILE, metrics_lines  # noqa: E402
from hyco_ray.cli import main  # noqa: E402
from hyco_ray.core.sweep_dir import load_sweep  # noqa: E402


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nothing_written(tmp_path: Path, space: Path) -> None:
    """Nothing but the space file under ``tmp_path``: no sweep directory or spec, no simulated data."""
    assert list(tmp_path.rglob("*")) == [space]


def test_an_address_with_nothing_there_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """21.4: `--address` to a closed port simulated the data, wrote the spec, then blocked in ray.init
    until Ray's own traceback (20-90 s). Now: one line, exit 2, in seconds, nothing written; RAY_ADDRESS
    and --dry-run alike."""
    space = write_space(tmp_path, cache_dir=tmp_path / "cache", name="nowhere")
    address = f"127.0.0.1:{_closed_port()}"
    tic = time.time()
    assert main(["tune", str(space), "--address", address]) == 2
    assert time.time() - tic < 15
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hyco: error: no Ray cluster at {address}") and "refused" in err and "\n" not in err, err
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert main(["tune", str(space), "--dry-run"]) == 2
    assert f"no Ray cluster at {address}" in capsys.readouterr().err
    _nothing_written(tmp_path, space)


def _hyco(args: list[str], cwd: Path, **env: str | None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in env}
    environ.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run([sys.executable, "-m", "hyco_ray.cli", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=240)


@pytest.mark.slow
def test_a_token_auth_cluster_without_its_token_is_named_one_line(tmp_path):
    """21.4: joining a token-auth Ray (Ray >= 2.59) without its token was reported as "no Ray cluster at ..."
    after 20 s of retries (and after simulating the data). A real local Ray with RAY_AUTH_MODE=token: no
    token, or a wrong one, is one line naming the token and how to pass it, exit 2, nothing written; the
    right token passes the check."""
    token = secrets.token_hex(32)
    head = subprocess.Popen(  # a Ray of its own, token auth; ends (ray.shutdown) when its stdin closes
        [sys.executable, "-c", "import ray, sys; ray.init(address='local', num_cpus=1, include_dashboard=False); "
         "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read(); ray.shutdown()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    try:
        address = head.stdout.readline().strip()
        assert re.fullmatch(r"[\d.]+:\d+", address), address
        space = write_space(tmp_path, cache_dir=tmp_path / "cache", name="token")
        run = ["tune", str(space), "--address", address]
        none = _hyco(run, tmp_path, RAY_AUTH_MODE=None, RAY_AUTH_TOKEN=None, RAY_AUTH_TOKEN_PATH=str(tmp_path / "none"))
        wrong = _hyco(run, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        for result, what in ((none, "uses token auth and we sent no token"), (wrong, "refused our token")):
            err = result.stderr.strip()
            assert result.returncode == 2 and "\n" not in err and not result.stdout.strip(), (result.returncode, err, result.stdout)
            assert err.startswith(f"hyco: error: the Ray cluster at {address} {what}") and "RAY_AUTH_TOKEN=" in err, err
        _nothing_written(tmp_path, space)
        right = _hyco([*run, "--dry-run"], tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        assert right.returncode == 0 and f"Ray: {address}" in right.stdout, (right.stdout, right.stderr)
    finally:
        head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def test_a_space_field_given_twice_is_refused(tmp_path, capsys):
    """21.11: `hyco tune <space> num_samples=4 --resume --num-samples 5` ran nothing more, silently (the
    override won), and its resume hint carried num_samples=4 again. A field set twice to different
    values is refused, one line naming both; the same value twice is fine."""
    space = write_space(tmp_path, cache_dir=tmp_path / "cache", name="twice")
    assert main(["tune", str(space), "num_samples=4", "--resume", "--num-samples", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("hyco: error: num_samples is given twice, --num-samples 5 and num_samples=4: give it once "
                   "(e.g. num_samples=5 only, also in the --resume command)"), err
    assert main(["tune", str(space), "--name", "a", "name=b", "--dry-run"]) == 2
    assert "name is given twice, --name a and name=b" in capsys.readouterr().err
    assert main(["tune", str(space), "num_samples=5", "--num-samples", "5", "--dry-run"]) == 0
    assert "sweep twice: 5 trials" in capsys.readouterr().out


def _epochs_trained(exp_dir: Path) -> dict[str, Counter]:
    """Per trial: how often each epoch was trained (its own rows of its metrics.jsonl)."""
    return {p.parent.name: Counter(r["epoch"] for r in metrics_lines(p.parent) if f"trial_{r.get('trial_id')}" == p.parent.name)
            for p in exp_dir.glob(f"trial_*/{METRICS_FILE}")}


@pytest.mark.slow
def test_a_killed_driver_is_named_with_the_resume_command_and_the_resume_is_quiet(tmp_path):
    """21.9 (and 21.8): a SIGKILL of the sweep driver (the OOM killer) left the `hyco tune` console silent
    (exit 247); the resume then logged a Ray ERROR traceback (a checkpoint_00000N Tune had deleted after
    its last experiment snapshot) and trained again the epochs whose checkpoints were on disk. Now the
    console names the kill and prints the resume command (exit 137); that command finishes the sweep
    with no ERROR and no traceback, and every trial trained each epoch once. The driver is killed just
    as Tune deletes a trial's first checkpoint (epoch 3 recorded): Tune's last snapshot is older."""
    import psutil  # Ray's bundled copy, on the path once ray is imported

    space = write_space(tmp_path, cache_dir=tmp_path / "cache", name="killed", num_samples=2, max_concurrent=2,
                        epochs=5, scheduler={"type": "fifo"}, checkpoint_period_s=2)
    exp_dir = tmp_path / "sweeps" / "killed"
    log_path = tmp_path / "console.log"
    with log_path.open("w") as log:
        console = start_tune(space, log, tmp_path)
        try:
            deadline = time.time() + 300
            while not any((p / "checkpoint_000002").is_dir() and not (p / "checkpoint_000000").exists()
                          for p in exp_dir.glob("trial_*")):
                assert console.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
            (driver,) = [p for p in psutil.Process(console.pid).children() if "--in-session" in p.cmdline()]
            driver.kill()
            rc = console.wait(timeout=60)
        finally:
            if console.poll() is None:
                os.killpg(console.pid, signal.SIGKILL)
    text = log_path.read_text()
    assert rc == 128 + signal.SIGKILL, (rc, text[-3000:])
    line = text.strip().splitlines()[-1]
    assert line.startswith(f"hyco: error: the driver process (pid {driver.pid}) was killed by SIGKILL"), line
    hint = line.split("continue it with: ")[1]
    assert hint == f"hyco tune {space} --num-cpus 2 --resume", hint

    resumed = subprocess.run([*shlex.split(hint.replace("hyco", f"{sys.executable} -m hyco_ray.cli", 1))], cwd=tmp_path,
                             capture_output=True, text=True, timeout=400)
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-3000:]
    assert "ERROR" not in out and "Traceback" not in out, out[-5000:]
    sweep = load_sweep(exp_dir)
    assert [t.outcome(5) for t in sweep.trials] == ["complete"] * 2
    assert _epochs_trained(exp_dir) == {f"trial_{t.trial_id}": Counter(range(1, 6)) for t in sweep.trials}
    for t in sweep.trials:
        assert [r["epoch"] for r in t.history] == [1, 2, 3, 4, 5]
