"""The agent stays a light install: its import closure and its declared dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from tests.conftest import REPO

HEAVY = ["torch", "sentence_transformers", "sqlalchemy", "sqlmodel", "psycopg", "fastapi",
         "uvicorn", "pgserver", "anthropic", "slack_sdk", "pydantic", "httpx"]  # fmt: skip


def test_agent_imports_nothing_heavy() -> None:
    blocker = "; ".join(f"sys.modules[{name!r}] = None" for name in HEAVY)
    script = (
        f"import sys; {blocker}; "
        "import agent_worker.main, agent_worker.commands, ddoc.cli.main; "
        "ddoc.cli.main.build_parser().parse_args(['agent', '--tenant', 't', '--environment', 'e'])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_agent_imports_only_itself_and_the_contracts() -> None:
    """What the agent process loads of this project (lint-imports checks the same statically)."""
    script = (
        "import sys, json; import agent_worker.main, agent_worker.commands; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ours = [
        name
        for name in json.loads(result.stdout)
        if name.split(".")[0]
        in {"ddoc", "agent_worker", "activities", "workflows", "api", "worker"}
    ]
    assert "agent_worker.commands" in ours and "ddoc.contracts.execution" in ours
    outside = [
        n for n in ours if n != "ddoc" and not n.startswith(("agent_worker", "ddoc.contracts"))
    ]
    assert outside == []


def test_base_dependencies_are_only_what_the_agent_needs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = sorted(dep.split("==")[0].split(">=")[0] for dep in project["dependencies"])
    # cryptography: the agent encrypts what it sends back (ddoc/contracts/codec.py); no ML, no DB
    # driver.
    assert names == ["cryptography", "pyyaml", "temporalio"]
