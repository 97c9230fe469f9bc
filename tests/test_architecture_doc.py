"""docs/architecture.md is the design the code cites: it names every hyco_ray module with the same
Ray-free set the layer test proves, and nothing in the repository cites files outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from test_hyco_ray_layers import MODULES, RAY_FREE

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()


def test_every_hyco_ray_module_is_in_the_doc_with_its_ray_status():
    rows = dict(re.findall(r"^\| `(\w+)`\s*\| ([^|]+?)\s*\|", DOC, flags=re.M))
    modules = {name.split(".")[-1] for name in MODULES if name not in ("hyco_ray", "hyco_ray.core", "hyco_ray.runner")}
    assert modules <= set(rows), f"add to docs/architecture.md: {sorted(modules - set(rows))}"
    assert {m for m in modules if rows[m] == "free"} == {name.split(".")[-1] for name in RAY_FREE} - {"hyco_ray", "core"}
    assert "hyco_ray/core/" in DOC and "hyco_ray/runner/" in DOC  # the two rooms, described


def test_nothing_cites_design_or_style_notes_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    here = Path(__file__).name
    citing = [f for f in files if f != f"tests/{here}" and (ROOT / f).is_file()
              and re.search(r"\b(DESIGN|STYLE)\.md", (ROOT / f).read_text(errors="ignore"))]
    assert not citing, f"cite docs/architecture.md instead: {citing}"
