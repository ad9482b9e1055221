"""What `ddoc up`'s supervisor tells the API about its children (docs/decisions/0015).

The supervisor (ddoc/cli/up.py) writes its view to `<data-dir>/supervisor.json` on every
change, atomically (a temporary file renamed over it), and names that file to its children in
DDOC_SUPERVISOR_STATE. The API reads it on each `/health`; where nothing supervises the API
(docker-compose, Kubernetes) the variable is unset and `/health` has no `supervisor` field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_ENV_VAR = "DDOC_SUPERVISOR_STATE"
STATE_FILE = "supervisor.json"

# What `/health` shows of each child: no pids (it is unauthenticated).
_PUBLIC_FIELDS = ("state", "restarts", "last_exit", "last_exit_at", "since")


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace `path` with `state` in one step: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The supervisor's last written view, or None when there is none (or it is unreadable)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def health_view(state: dict[str, Any]) -> dict[str, Any]:
    """The part of the supervisor's view that `/health` shows: per child its state, restarts,
    last exit and when, and since when it is in that state."""
    children = state.get("children")
    if not isinstance(children, dict):
        return {"children": {}}
    return {
        "children": {
            name: {key: child.get(key) for key in _PUBLIC_FIELDS}
            for name, child in children.items()
            if isinstance(child, dict)
        }
    }
