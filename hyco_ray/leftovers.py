"""Leftovers of a killed sweep: the Ray processes a SIGKILLed ``hyco tune`` left, ended at the next start.

Starting a local Ray, the driver writes ``<pid>.json`` to :func:`state_dir`: its own pid and start
time, and those of the processes ``ray.init`` started (GCS, raylet, agents, log monitor, first
workers). Workers started later carry the driver's tag in their environment. A clean exit deletes
the file. A file whose driver is gone names a killed sweep: only its own processes (same pid *and*
start time, or its tag) are ended; another user's or another live sweep's Ray is never touched.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import ray  # noqa: F401  (puts Ray's bundled psutil on the path)

# isort: split
import psutil

ENV = "HYCO_RAY_DRIVER"


def state_dir() -> Path:
    """``$HYCO_RAY_SESSIONS``, default ``~/.cache/hyco/ray-sessions`` (per user)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("HYCO_RAY_SESSIONS") or cache / "hyco" / "ray-sessions")


def _key(proc: psutil.Process) -> list:
    return [proc.pid, round(proc.create_time(), 2)]


def _tree() -> dict[int, psutil.Process]:
    return {p.pid: p for p in psutil.Process().children(recursive=True)}


@contextmanager
def recorded(sweep: str):
    """Around ``ray.init``: the processes started inside are recorded as this driver's."""
    me, before, path = psutil.Process(), _tree(), state_dir() / f"{os.getpid()}.json"
    record = {"driver": _key(me), "sweep": sweep, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "procs": []}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    old, os.environ[ENV] = os.environ.get(ENV), json.dumps(record["driver"])
    try:
        yield
        record["procs"] = [_key(p) for pid, p in _tree().items() if pid not in before and p.is_running()]
        path.write_text(json.dumps(record))
    finally:
        if old is None:
            del os.environ[ENV]
        else:
            os.environ[ENV] = old


def forget() -> None:
    """A clean exit: this driver's Ray is shut down, nothing to end later."""
    (state_dir() / f"{os.getpid()}.json").unlink(missing_ok=True)


def _alive(key: list) -> bool:
    try:
        return _key(psutil.Process(key[0])) == key
    except psutil.Error:
        return False


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (a killed orphan waits for init to reap it)."""
    with suppress(psutil.Error):
        return proc.status() != psutil.STATUS_ZOMBIE
    return False


def end_leftovers(grace_s: float = 5.0) -> int:
    """End the processes of every recorded driver that is gone (SIGTERM, then SIGKILL after
    ``grace_s``); one line per killed sweep. Returns how many processes were ended."""
    ended = 0
    for path in sorted(state_dir().glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _alive(rec["driver"]):
            continue  # a live sweep: not ours to end
        keys, tag = {tuple(k) for k in rec["procs"]}, json.dumps(rec["driver"])
        procs = [p for p in psutil.process_iter(["create_time", "environ"]) if p.pid != os.getpid() and _running(p)
                 and ((p.pid, round(p.info["create_time"] or 0, 2)) in keys or (p.info["environ"] or {}).get(ENV) == tag)]
        for p in procs:
            with suppress(psutil.Error):
                p.terminate()
        deadline = time.time() + grace_s
        while any(map(_running, procs)) and time.time() < deadline:
            time.sleep(0.1)
        for p in filter(_running, procs):
            with suppress(psutil.Error):
                p.kill()
        if procs:
            print(f"hyco: ended {len(procs)} leftover Ray processes of the killed sweep {rec['sweep']} "
                  f"(driver pid {rec['driver'][0]}, started {rec['started']})", flush=True)
        ended += len(procs)
        path.unlink(missing_ok=True)
    return ended
