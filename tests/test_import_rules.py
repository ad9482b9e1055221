"""The import rules (pyproject.toml, [tool.importlinter]) hold, and a wrong import breaks them.

`lint-imports` runs on the project as it is, then on a copy with one deliberately wrong import
added per rule: each must fail, naming the rule it breaks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.conftest import REPO

PACKAGES = ("ddoc", "api", "workflows", "activities", "worker", "agent_worker")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True
    )


def test_the_project_keeps_every_rule() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(REPO / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return root


@pytest.mark.parametrize(
    ("module", "wrong_import", "rule"),
    [
        (
            "workflows/probe.py",
            "from ddoc.platform import db",
            "Workflows import only the contracts",
        ),
        ("workflows/probe.py", "import activities.store", "Workflows import only the contracts"),
        ("agent_worker/probe.py", "from ddoc.runbooks import model", "The agent imports only"),
        ("ddoc/platform/probe.py", "from ddoc.alerts import sources", "One direction"),
        ("ddoc/runbooks/probe.py", "from ddoc.execution import store", "One direction"),
        ("ddoc/alerts/probe.py", "import api.app", "Nothing imports the API"),
        (
            "ddoc/contracts/probe.py",
            "from ddoc.platform import ids",
            "The contracts import nothing",
        ),
    ],
)
def test_a_wrong_import_fails(copy: Path, module: str, wrong_import: str, rule: str) -> None:
    probe = copy / module
    probe.write_text(f'"""A deliberately wrong import."""\n\n{wrong_import}\n')
    try:
        result = lint_imports(copy)
    finally:
        probe.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert rule in broken and probe.stem in broken, result.stdout


def package_of(module: str, deeper: bool) -> str:
    """The package a module is in: `ddoc.<noun>` or a top-level one (`api`, `workflows`, ...);
    with `deeper`, one level further in (`ddoc.runbooks.parsing`, `api.routes`)."""
    parts = module.split(".")
    keep = (2 if parts[0] == "ddoc" else 1) + deeper
    return ".".join(parts[:keep])


def package_cycles(deeper: bool) -> list[list[str]]:
    """Cycles among packages, each as the packages on it."""
    graph = grimp.build_graph(*PACKAGES)
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        source = package_of(module, deeper)
        for imported in graph.find_modules_directly_imported_by(module):
            target = package_of(imported, deeper)
            if source != target:
                edges.setdefault(source, set()).add(target)
    cycles: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for nxt in sorted(edges.get(path[-1], ())):
            if nxt == path[0]:
                cycles.append(path)
            elif nxt > path[0] and nxt not in path:  # each cycle once, from its smallest member
                walk([*path, nxt])

    for start in sorted(edges):
        walk([start])
    return cycles


@pytest.mark.parametrize("deeper", [False, True], ids=["packages", "subpackages"])
def test_no_import_cycle_between_packages(deeper: bool) -> None:
    assert package_cycles(deeper) == []
