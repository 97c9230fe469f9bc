"""Every third-party package the code imports is declared in pyproject.toml (a fresh install gets it).

Read from the source (ast, imports inside functions too): hyco_ray/ and src/ need ``dependencies``;
bench/, scripts/ and tests/ may also use an optional group (``test``, ``mlflow``). An import name is
mapped to its distribution by the installed metadata (``yaml`` -> PyYAML, ``phi`` -> phiflow).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads TOML itself")  # requires-python is >= 3.10
ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = {"hyco", "hyco_ray"}


def normalized(requirement: str) -> str:
    """``ray[tune]>=2.59`` -> ``ray`` (PEP 503 name)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", requirement).group()).lower()


def declared(*groups: str) -> set[str]:
    project = PYPROJECT["project"]
    found = {normalized(r) for r in project["dependencies"]}
    for group in groups:
        found |= {normalized(r) for r in project["optional-dependencies"][group]}
    return found


def top_level_imports(folder: Path) -> dict[str, str]:
    """top-level module -> the first file:line importing it (absolute imports only)."""
    local = {p.stem for root in (folder, ROOT / "bench", ROOT / "tests", ROOT / "scripts") for p in root.rglob("*.py")}
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY | local and top != "__future__":
                    found.setdefault(top, f"{path.relative_to(folder)}:{node.lineno}")
    return found


def distributions(module: str) -> set[str]:
    return {normalized(d) for d in importlib.metadata.packages_distributions().get(module, [])}


@pytest.mark.parametrize(("folder", "groups"), [("hyco_ray", ()), ("src", ()), ("bench", ("test", "mlflow")),
                                                 ("scripts", ("test", "mlflow")), ("tests", ("test", "mlflow"))])
def test_every_import_is_declared(folder, groups):
    allowed = declared(*groups)
    missing = {module: where for module, where in top_level_imports(ROOT / folder).items()
               if not distributions(module) & allowed}
    assert not missing, f"imported but not declared in pyproject.toml {groups or 'dependencies'}: {missing}"


def test_the_checker_sees_an_undeclared_import(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    import pandas\n")
    assert "pandas" in top_level_imports(tmp_path)
    assert distributions("pandas") == {"pandas"} and "jsonschema" not in declared()


def test_psutil_is_the_declared_package_not_rays_copy():
    """leftovers imports psutil before Ray puts its bundled copy first on sys.path."""
    import subprocess

    code = "import hyco_ray.runner.leftovers, psutil, ray; print(psutil.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "thirdparty_files" not in out and "site-packages" in out, out
