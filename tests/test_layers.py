"""The layers of src/hyco, read from the imports (ast): imports point down only, never to Ray.

errors, registry < config < runtime < physics < data < models < training < evaluation < run
(docs/architecture.md, "Layers"; docs/extending.md). A module may import its own layer or a lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "hyco"
LAYERS = ["errors", "registry", "config", "runtime", "physics", "data", "models", "training", "evaluation", "run"]
RANK = {"errors": 0, "registry": 0, **{name: i for i, name in enumerate(LAYERS)}}


def layer(module: str) -> str:
    """``hyco.physics.heat`` -> ``physics``; ``hyco`` itself is the package root (lowest)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "errors"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


MODULES = sorted(SRC.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_module_has_a_layer():
    unknown = {layer(module_name(p)) for p in MODULES} - set(RANK)
    assert not unknown, f"add {sorted(unknown)} to LAYERS (and to docs/architecture.md)"


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_point_down(path):
    here = layer(module_name(path))
    upward = [
        f"{path.relative_to(SRC.parent)}:{line} imports {target} ({layer(target)} is above {here})"
        for line, target in imports(path)
        if target.split(".")[0] == "hyco" and RANK[layer(target)] > RANK[here]
    ]
    assert not upward, "\n".join(upward)
    assert not [t for _, t in imports(path) if t.split(".")[0] == "ray"], "the library never imports Ray"


def test_the_checker_sees_an_arrow_up(tmp_path):
    bad = tmp_path / "validate.py"
    bad.write_text("def f():\n    from hyco.physics import make_problem\n")
    assert [RANK[layer(t)] for _, t in imports(bad)] == [RANK["physics"]] and RANK["physics"] > RANK["config"]
