"""The structured runbook: what the parsers produce and every later stage consumes.

Plain dataclasses (stdlib only) so the model crosses every boundary unchanged: it is stored as
JSON in Postgres, snapshotted into workflow inputs, and imported by the light agent worker.
The JSON shape is versioned by ``SCHEMA_VERSION`` and documented in ``docs/RUNBOOK_SCHEMA.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Risk classes are shared with the executions and their approval rules (ddoc/contracts); the
# runbook model names them too.
from ddoc.contracts.execution import RiskClass as RiskClass

SCHEMA_VERSION = 1


class StepKind(StrEnum):
    COMMAND = "command"
    MANUAL = "manual"
    DECISION = "decision"
    ESCALATE = "escalate"


class RollbackOrigin(StrEnum):
    RUNBOOK = "runbook"  # the runbook itself says how to undo the step
    SUGGESTED = "suggested"  # derived by us (e.g. `cordon` -> `uncordon`); needs a human's eye


class VariableSource(StrEnum):
    LABEL = "label"
    ANNOTATION = "annotation"
    ASK = "ask"  # no alert field is a plausible source: a human supplies it


@dataclass
class SourceSpan:
    """1-based, inclusive line range in the source document."""

    start_line: int
    end_line: int


@dataclass
class Rollback:
    command: str | None
    text: str
    origin: RollbackOrigin


@dataclass
class Branch:
    """One way out of a decision step.

    ``check`` is a machine-checkable condition when the source states one, e.g.
    ``{"exit_code": 0}`` or ``{"output_pattern": "CrashLoopBackOff"}``; otherwise a human chooses.
    """

    condition: str
    text: str
    goto: str | None = None
    check: dict[str, Any] | None = None


@dataclass
class Check:
    """A read-only command run before a change (``precheck``) or after it (``verify``), and the
    result it must give. ``expect`` is one of ``{"exit_code": 0}``, ``{"output_pattern": "…"}``
    (a substring of the output) or ``{"threshold": {"op": "<=", "value": 5}}`` (the first number
    in the output compared to ``value``). It is retried every ``interval_seconds`` until it passes
    or ``within_seconds`` have passed (0: one try). Always green: a check that changes anything
    is refused by the parser."""

    command: str
    expect: dict[str, Any] = field(default_factory=lambda: {"exit_code": 0})
    within_seconds: int = 0
    interval_seconds: int = 10
    text: str = ""  # the words it came from ("you should see …")
    source: SourceSpan | None = None


@dataclass
class Mitigation:
    """When the runbook's incident counts as mitigated: its alert resolved within
    ``within_seconds`` of the execution's end, or (when given) a check passes."""

    alert_resolved: bool = True
    within_seconds: int = 1800
    check: Check | None = None


@dataclass
class Step:
    id: str
    text: str
    kind: StepKind
    source: SourceSpan
    command: str | None = None  # exactly as written in the source (multi-line kept)
    language: str | None = None  # shell, kubectl, sql, http, aws, gcloud, az, terraform, ...
    risk: RiskClass | None = None  # None for steps with no command
    risk_reason: str | None = None
    rollback: Rollback | None = None
    branches: list[Branch] = field(default_factory=list)
    precheck: Check | None = None  # run right before the change; a failure stops it
    verify: Check | None = None  # run after the change; a failure offers its rollback
    # Consecutive steps with the same group id run concurrently ("meanwhile", front-matter
    # `parallel:`); None: in order. See docs/RUNBOOK_SCHEMA.md.
    parallel: str | None = None


@dataclass
class Variable:
    name: str  # normalised, e.g. "namespace"
    syntax: str  # as written in the source, e.g. "$NAMESPACE", "<service-name>", "{{ namespace }}"
    source: VariableSource
    key: str | None = None  # the label/annotation name when source is label/annotation
    prompt: str | None = None  # the words around it in the runbook, to ask a human with


@dataclass
class Prerequisite:
    text: str
    kind: str  # access | vpn | tool | other
    source: SourceSpan | None = None


@dataclass
class Triggers:
    alerts: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)


@dataclass
class QualityFlag:
    code: str  # vague_step | red_without_rollback | undefined_variable | no_actionable_step | ...
    message: str
    step_id: str | None = None


@dataclass
class QualityReport:
    score: int  # 0..100, shown to the author
    flags: list[QualityFlag] = field(default_factory=list)


@dataclass
class ParsedRunbook:
    title: str
    summary: str
    steps: list[Step]
    triggers: Triggers = field(default_factory=Triggers)
    prerequisites: list[Prerequisite] = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)
    quality: QualityReport = field(default_factory=lambda: QualityReport(score=0))
    parser: str = "deterministic"  # deterministic | ai
    warnings: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    mitigated_when: Mitigation | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParsedRunbook:
        return cls(
            title=data["title"],
            summary=data.get("summary", ""),
            steps=[_step_from_dict(s) for s in data.get("steps", [])],
            triggers=Triggers(**data.get("triggers", {})),
            prerequisites=[
                Prerequisite(
                    text=p["text"],
                    kind=p["kind"],
                    source=SourceSpan(**p["source"]) if p.get("source") else None,
                )
                for p in data.get("prerequisites", [])
            ],
            variables=[
                Variable(
                    name=v["name"],
                    syntax=v["syntax"],
                    source=VariableSource(v["source"]),
                    key=v.get("key"),
                    prompt=v.get("prompt"),
                )
                for v in data.get("variables", [])
            ],
            quality=QualityReport(
                score=data.get("quality", {}).get("score", 0),
                flags=[QualityFlag(**f) for f in data.get("quality", {}).get("flags", [])],
            ),
            parser=data.get("parser", "deterministic"),
            warnings=list(data.get("warnings", [])),
            schema_version=data.get("schema_version", SCHEMA_VERSION),
            mitigated_when=_mitigation_from_dict(data.get("mitigated_when")),
        )


def check_from_dict(data: dict[str, Any] | None) -> Check | None:
    if not data:
        return None
    return Check(
        command=data["command"],
        expect=dict(data.get("expect") or {"exit_code": 0}),
        within_seconds=int(data.get("within_seconds", 0)),
        interval_seconds=int(data.get("interval_seconds", 10)),
        text=data.get("text", ""),
        source=SourceSpan(**data["source"]) if data.get("source") else None,
    )


def _mitigation_from_dict(data: dict[str, Any] | None) -> Mitigation | None:
    if not data:
        return None
    return Mitigation(
        alert_resolved=bool(data.get("alert_resolved", True)),
        within_seconds=int(data.get("within_seconds", 1800)),
        check=check_from_dict(data.get("check")),
    )


def _step_from_dict(data: dict[str, Any]) -> Step:
    rollback = data.get("rollback")
    return Step(
        id=data["id"],
        text=data["text"],
        kind=StepKind(data["kind"]),
        source=SourceSpan(**data["source"]),
        command=data.get("command"),
        language=data.get("language"),
        risk=RiskClass(data["risk"]) if data.get("risk") else None,
        risk_reason=data.get("risk_reason"),
        rollback=Rollback(
            command=rollback.get("command"),
            text=rollback.get("text", ""),
            origin=RollbackOrigin(rollback["origin"]),
        )
        if rollback
        else None,
        branches=[Branch(**b) for b in data.get("branches", [])],
        precheck=check_from_dict(data.get("precheck")),
        verify=check_from_dict(data.get("verify")),
        parallel=data.get("parallel"),
    )
