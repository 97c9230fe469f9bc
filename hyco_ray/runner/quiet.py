"""Ray's console noise, dropped line by line on the way to the user's terminal.

Some of it Ray's C++ core writes straight to file descriptor 2 (abseil's mutex log), so the console
process filters the driver's stderr (``hyco_ray.cli``); some the driver prints to ``sys.stdout``
itself (a dead node's raylet report, with 20 lines of state dump and log tail, twice), so the
driver's ``sys.stdout`` goes through :class:`FilteredStream`. Both use one :class:`LineFilter`
(docs/architecture.md, "Layers"). Ray-free: plain text in, plain text out.
"""

from __future__ import annotations

import io
import re
from typing import TextIO

#: abseil's mutex log from Ray's C++ core: tells a user nothing
MUTEX = re.compile(r"mutex\.cc\s*:\s*\d+\]\s*RAW: Lock blocking")
#: the head line of Ray's report of a raylet killed by a signal (ray/_private/process_watcher.py)
RAYLET_KILLED = re.compile(r"Raylet is terminated\. Termination is unexpected")
#: where Ray's head line turns into the log tail it then prints, indented, line by line
LOG_TAIL = "Last 20 lines of the Raylet logs:"


class LineFilter:
    """Whole lines in, the lines to show out (``None``: drop it). Stateful: after a dead raylet's head
    line, its indented state dump and log tail are dropped up to the next unindented line."""

    def __init__(self) -> None:
        self._in_report = False

    def __call__(self, line: str) -> str | None:
        if self._in_report:
            if not line.strip() or line[:1] in (" ", "\t"):
                return None
            self._in_report = False
        if MUTEX.search(line):
            return None
        if RAYLET_KILLED.search(line):
            self._in_report = True
            head = line.split(LOG_TAIL)[0].rstrip()
            return (f"{head} Its last log lines: raylet.out in the logs of that node's Ray session "
                    "(ray logs raylet.out --node-ip <ip>).\n")
        return line


class FilteredStream(io.TextIOBase):
    """A text stream that passes whole lines through a :class:`LineFilter` to ``target``. Text without
    its newline yet waits for it; ``flush`` lets it through unfiltered (a prompt, a progress bar)."""

    def __init__(self, target: TextIO, keep: LineFilter | None = None) -> None:
        self._target = target
        self._keep = keep or LineFilter()
        self._pending = ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            if (shown := self._keep(line + "\n")) is not None:
                self._target.write(shown)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._target.write(self._pending)
            self._pending = ""
        self._target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target.encoding
