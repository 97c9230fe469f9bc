"""The import structure of hyco_ray, read from the source (ast), every import counted: module-level ones
and those inside functions (a lazy import is still a dependency; it only runs later).

(a) no module imports in a circle; (b) the Ray-free modules never import ``ray`` and import no hyco_ray
module that does (docs/architecture.md, "Layers"); (c) the callback names a spec is checked against
(hyco_ray.core.names) are the names hyco_ray.runner.search builds.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hyco_ray"
#: the two rooms (docs/architecture.md, "Layers"): ``hyco_ray.core`` is Ray-free, ``hyco_ray.runner`` runs on Ray
CORE, RUNNER = PACKAGE / "core", PACKAGE / "runner"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``path``, inside functions too; ``from hyco_ray import x``
    is counted as ``hyco_ray.x`` when ``x`` is a module of the package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import (the checker reads absolute ones)"
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                      if (root / node.module.replace(".", "/") / f"{a.name}.py").is_file()]
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
#: checked and read without Ray: every module of the core room (the spec, its names and types, the sweep
#: directory, the report), the leftovers (psutil only), Ray's noise filter and the package roots
RAY_FREE = {module_name(p) for p in sorted(CORE.glob("*.py"))} | {"hyco_ray.runner.leftovers", "hyco_ray.runner.quiet", "hyco_ray"}


def graph(modules: dict[str, Path], root: Path = PACKAGE.parent) -> dict[str, set[str]]:
    """module -> the package modules it imports (itself and the package root left out)."""
    return {name: {t for _, t in imports(path, root) if t in modules and t not in (name, "hyco_ray")}
            for name, path in modules.items()}


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import circle as a path ``[a, b, ..., a]``, or ``[]`` (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return []

    for start in sorted(edges):
        if start not in state and (found := visit(start, [])):
            return found
    return []


def imports_ray(path: Path) -> list[str]:
    return [f"{path.name}:{line} imports {t}" for line, t in imports(path) if t.split(".")[0] == "ray"]


def test_no_import_circle():
    found = cycle(graph(MODULES))
    assert not found, "import circle: " + " -> ".join(found)


def test_the_checker_sees_a_circle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "hyco_ray"
    pkg.mkdir()
    (pkg / "a.py").write_text("from hyco_ray.b import x\n")
    (pkg / "b.py").write_text("x = 1\n\ndef f():\n    from hyco_ray import a\n")
    mods = {f"hyco_ray.{n}": pkg / f"{n}.py" for n in "ab"}
    assert cycle(graph(mods, tmp_path)) == ["hyco_ray.a", "hyco_ray.b", "hyco_ray.a"]


def test_the_package_is_two_rooms_and_the_core_is_most_of_what_a_user_reads():
    """Every module lives in a room (only the package root and the CLI, the door between them, outside),
    and the core holds the spec, the sweep directory and the report."""
    outside = {m for m in MODULES if m.count(".") == 1 and m not in ("hyco_ray.cli", "hyco_ray.core", "hyco_ray.runner")}
    assert not outside, f"modules outside both rooms: {sorted(outside)}"
    assert {"hyco_ray.core.space", "hyco_ray.core.sweep_dir", "hyco_ray.core.analysis"} <= RAY_FREE


@pytest.mark.parametrize("name", sorted(RAY_FREE))
def test_ray_free_modules_never_import_ray(name):
    edges = graph(MODULES)
    reach, todo = set(), [name]  # everything it imports, directly or through other hyco_ray modules
    while todo:
        for nxt in edges[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    assert not imports_ray(MODULES[name]), f"{name} imports Ray: {imports_ray(MODULES[name])}"
    via = {m: imports_ray(MODULES[m]) for m in sorted(reach) if imports_ray(MODULES[m])}
    assert not via, f"{name} reaches Ray through {via}"


def test_a_ray_free_module_loads_without_ray():
    """The same at run time: reading and checking a space file leaves Ray unimported."""
    code = ("import sys; from hyco_ray.core import analysis, names, space, sweep_dir; from hyco_ray.runner import leftovers; "
            "space.load_space('search_spaces/burgers_quick.yaml'); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_spec_names_are_the_names_search_builds():
    from hyco_ray.core import names
    from hyco_ray.runner import search

    assert sorted(names.CALLBACK_REQUIRES) == search.CALLBACKS.names()
