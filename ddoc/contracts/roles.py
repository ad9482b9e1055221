"""The roles of API keys and responders, in one order: each includes the ones before it.

Stdlib only: the approval policy (ddoc/contracts/approvals.py) runs inside the workflow sandbox.
The values are stored (keys, users) and recorded in workflow histories: they never change.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    """Each role includes the ones before it: an approver may do what a responder may. The
    order is by rank, not by storage: a role added between two (assistant) changes no stored
    value."""

    VIEWER = "viewer"  # watches
    # An AI assistant's key (MCP): reads, starts runbooks, runs green diagnostics, asks for
    # approval; never decides (every decision needs responder or higher).
    ASSISTANT = "assistant"
    RESPONDER = "responder"  # decides on steps, starts runbooks
    APPROVER = "approver"  # approves red steps
    ADMIN = "admin"  # keys, users, settings

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, role: Role) -> bool:
        return self.rank >= role.rank


_RANKS = {role: rank for rank, role in enumerate(Role)}


def holds(roles: Iterable[str], role: Role) -> bool:
    """Whether any of `roles` (as stored: strings, unknown ones count for nothing) is `role` or
    a higher one."""
    return any(Role(held).at_least(role) for held in roles if held in _RANKS)
