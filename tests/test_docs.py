"""docs/extending.md: its ``python`` code blocks run, in order, in a fresh process (the worked
example registers a metric and trains physics-only and HYCO on Gray–Scott)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "extending.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_doc_has_the_worked_example():
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 2 and "METRICS.register" in blocks[0] and "gray_scott" in blocks[1]


@pytest.mark.slow
def test_extending_example_runs(tmp_path):
    script = tmp_path / "example.py"
    script.write_text("\n\n".join(python_blocks(DOC.read_text())))
    env = {**os.environ, "HOME": str(tmp_path)}  # the data cache (~/.cache/hyco) goes to tmp_path
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "physics-only" in done.stdout and "HYCO" in done.stdout
