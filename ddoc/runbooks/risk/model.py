"""Result types of the risk classifier: one verdict per simple command, and their worst."""

from __future__ import annotations

from dataclasses import dataclass

from ddoc.runbooks.model import RiskClass


@dataclass(frozen=True)
class PartAssessment:
    """The verdict on one simple command (after unwrapping), or one SQL statement."""

    command: str
    level: RiskClass
    reason: str
    rule: str


@dataclass(frozen=True)
class RiskAssessment:
    """The verdict on a whole command line: the worst of its parts."""

    level: RiskClass
    reason: str
    parts: tuple[PartAssessment, ...]

    @classmethod
    def of(cls, parts: list[PartAssessment] | tuple[PartAssessment, ...]) -> RiskAssessment:
        """Combine parts; the reason is the first part at the worst level."""
        if not parts:
            part = PartAssessment("", RiskClass.YELLOW, "empty command", "shell.empty")
            return cls(part.level, part.reason, (part,))
        level = RiskClass.worst([p.level for p in parts])
        first = next(p for p in parts if p.level is level)
        return cls(level, first.reason, tuple(parts))


class RiskRulesError(ValueError):
    """Tenant rules that cannot be loaded; the message names the offending rule."""
