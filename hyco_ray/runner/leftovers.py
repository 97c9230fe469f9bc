"""Leftovers of a killed sweep: the Ray processes a SIGKILLed ``hyco tune`` left, ended at the next start.

A driver that starts a local Ray keeps ``<pid>.json`` in :func:`state_dir`: (pid, start time) of itself
and of every process under it, refreshed every few seconds, deleted on a clean exit. If its driver is
gone, the processes still running with the same pid *and* start time are ended; no other Ray is touched.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil  # the declared package; imported before Ray, whose import puts its bundled copy first on sys.path

_lock, _stop = threading.Lock(), threading.Event()


def state_dir() -> Path:
    """``$HYCO_RAY_SESSIONS``, default ``~/.cache/hyco/ray-sessions`` (per user)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("HYCO_RAY_SESSIONS") or cache / "hyco" / "ray-sessions")


def _key(proc: psutil.Process) -> tuple[int, float]:
    return proc.pid, round(proc.create_time(), 2)


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (a killed orphan waits for init to reap it)."""
    with suppress(psutil.Error):
        return proc.status() != psutil.STATUS_ZOMBIE
    return False


def _process(key: list) -> psutil.Process | None:
    """The process of ``key`` (pid, start time) if it still runs; a reused pid is not it."""
    with suppress(psutil.Error):
        proc = psutil.Process(key[0])
        return proc if _key(proc) == tuple(key) and _running(proc) else None
    return None


@contextmanager
def recorded(sweep: str, every_s: float = 2.0):
    """Around ``ray.init``: this driver and the processes under it are recorded until :func:`forget`."""
    global _stop
    me, path, stop = psutil.Process(), state_dir() / f"{os.getpid()}.json", threading.Event()
    before = {p.pid for p in me.children(recursive=True)}  # not Ray's (a test's own subprocesses)
    record = {"driver": _key(me), "sweep": sweep, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "procs": []}

    def save() -> None:
        with _lock, suppress(psutil.Error):
            if not stop.is_set():
                now = {_key(p) for p in me.children(recursive=True) if p.pid not in before and _running(p)}
                record["procs"] = sorted(now | {tuple(k) for k in record["procs"]})
                path.write_text(json.dumps(record))

    def refresh() -> None:  # workers start with trials
        while not stop.wait(every_s):
            save()

    path.parent.mkdir(parents=True, exist_ok=True)
    save()
    yield
    save()
    _stop = stop
    threading.Thread(target=refresh, daemon=True, name="hyco-ray-record").start()


def forget() -> None:
    """A clean exit: this driver's Ray is shut down, nothing to end later."""
    with _lock:
        _stop.set()
        (state_dir() / f"{os.getpid()}.json").unlink(missing_ok=True)


def _signal(procs: list[psutil.Process], how: str, wait_s: float) -> list[psutil.Process]:
    for proc in procs:
        with suppress(psutil.Error):  # psutil checks pid and start time before it signals
            getattr(proc, how)()
    deadline = time.time() + wait_s
    while any(map(_running, procs)) and time.time() < deadline:
        time.sleep(0.1)
    return list(filter(_running, procs))


def end_leftovers(grace_s: float = 5.0) -> int:
    """End the processes of every recorded driver that is gone (SIGTERM, then SIGKILL after
    ``grace_s``); one line per killed sweep. Returns how many processes were ended."""
    ended = 0
    for path in sorted(state_dir().glob("*.json")):
        with suppress(OSError, ValueError, KeyError):
            rec = json.loads(path.read_text())
            if _process(rec["driver"]):
                continue  # a live sweep: not ours to end
            procs = [p for p in map(_process, rec["procs"]) if p]
            _signal(_signal(procs, "terminate", grace_s), "kill", 2.0)
            if procs:
                print(f"hyco: ended {len(procs)} leftover Ray processes of the killed sweep {rec['sweep']} "
                      f"(driver pid {rec['driver'][0]}, started {rec['started']})", flush=True)
            ended += len(procs)
            path.unlink(missing_ok=True)
    return ended
