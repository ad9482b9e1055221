"""Progressive trust: a runbook moves read_along → copilot → autopilot on evidence, and falls
back to copilot by itself when an autopilot execution fails or rolls back.

Promotion guards are the tenant's (settings key `trust_policy`, defaults below); a refusal names
each guard that failed and the evidence it is missing. `force` with a reason overrides the
guards and is audited as such. Moving down needs no evidence. Every change is kept in
`trust_changes` and in the audit trail.

    {"copilot_min_rehearsals": 3,        # finished read-along or dry-run executions
     "autopilot_min_successes": 10,      # successful copilot or autopilot executions
     "autopilot_clean_window": 10,       # none of the last N of those failed or rolled back
     "autopilot_requires_red_rollbacks": true,
     "autopilot_min_resolved_ratio": 0.8,  # of the graded alert-started runs, mitigated
     "demote_on_failure": true}

`resolves_alert` weighs the graded outcomes of the recent alert-started runs
(ddoc/trust/outcomes.py): a runbook whose runs succeed but do not make their alert go away, or
whose alert comes back within 24 h, does not reach autopilot however many runs succeeded. A
ratio of 0 turns it off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from ddoc.contracts.execution import ExecutionMode, ExecutionStatus
from ddoc.platform import audit
from ddoc.platform.tables import Execution, Runbook, TrustChange
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook, RiskClass
from ddoc.trust import outcomes

SETTINGS_KEY = "trust_policy"
LEVELS = (ExecutionMode.READ_ALONG, ExecutionMode.COPILOT, ExecutionMode.AUTOPILOT)
_REHEARSAL_MODES = (ExecutionMode.READ_ALONG.value, ExecutionMode.DRY_RUN.value)
_ACTING_MODES = (ExecutionMode.COPILOT.value, ExecutionMode.AUTOPILOT.value)
_BAD_ENDINGS = (ExecutionStatus.FAILED.value, ExecutionStatus.ROLLED_BACK.value)
_FINISHED = (
    ExecutionStatus.SUCCEEDED.value,
    ExecutionStatus.FAILED.value,
    ExecutionStatus.ROLLED_BACK.value,
    ExecutionStatus.ABORTED.value,
)


class TrustError(ValueError):
    """A request that cannot be met as asked (unknown level, no reason)."""


@dataclass(frozen=True)
class TrustPolicy:
    copilot_min_rehearsals: int = 3
    autopilot_min_successes: int = 10
    autopilot_clean_window: int = 10
    autopilot_requires_red_rollbacks: bool = True
    demote_on_failure: bool = True
    autopilot_min_resolved_ratio: float = 0.8


def trust_policy(settings: dict[str, Any]) -> TrustPolicy:
    raw = settings.get(SETTINGS_KEY) or {}
    return TrustPolicy(**{f.name: raw[f.name] for f in fields(TrustPolicy) if f.name in raw})


def validate(raw: dict[str, Any]) -> dict[str, Any]:
    """The policy as it will be stored; TrustError with a message a human can act on."""
    known = {f.name: f for f in fields(TrustPolicy)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise TrustError(f"unknown trust_policy keys: {', '.join(unknown)}")
    for name, value in raw.items():
        if known[name].type == "bool":
            if not isinstance(value, bool):
                raise TrustError(f"{name} must be true or false")
        elif known[name].type == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise TrustError(f"{name} must be a number between 0 and 1")
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
            raise TrustError(f"{name} must be a whole number between 0 and 1000")
    return raw


@dataclass(frozen=True)
class Guard:
    name: str
    level: str  # the level it guards
    passed: bool
    detail: str  # what was required and what was found
    evidence: dict[str, Any] = field(default_factory=dict)


class TrustRefused(Exception):
    def __init__(self, guards: list[Guard]) -> None:
        self.guards = guards
        failed = [g for g in guards if not g.passed]
        super().__init__(
            "; ".join(f"to {g.level}: {g.detail}" for g in failed)
            + ". Promote when the evidence is there, or force with a reason."
        )


def level_of(value: str) -> ExecutionMode:
    try:
        mode = ExecutionMode(value)
    except ValueError:
        mode = None
    if mode not in LEVELS:
        raise TrustError(f"unknown trust level {value!r}: one of {', '.join(LEVELS)}")
    return mode


def guards(
    session: Session, *, runbook: Runbook, target: ExecutionMode, policy: TrustPolicy
) -> list[Guard]:
    """The guards between the runbook's level and `target` (every level passed on the way)."""
    current, wanted = LEVELS.index(ExecutionMode(runbook.trust_level)), LEVELS.index(target)
    found: list[Guard] = []
    if current < 1 <= wanted:
        found.append(_rehearsals(session, runbook, policy))
    if current < 2 <= wanted:
        found += [
            _successes(session, runbook, policy),
            _clean_window(session, runbook, policy),
            _resolves_alert(session, runbook, policy),
        ]
        if policy.autopilot_requires_red_rollbacks:
            found.append(_red_rollbacks(session, runbook))
    return found


def _executions(runbook: Runbook) -> Any:
    return select(Execution).where(
        Execution.tenant_id == runbook.tenant_id, Execution.runbook_id == runbook.id
    )


def _count(
    session: Session, runbook: Runbook, modes: tuple[str, ...], statuses: tuple[str, ...]
) -> int:
    return int(
        session.exec(
            select(func.count()).where(
                Execution.tenant_id == runbook.tenant_id,
                Execution.runbook_id == runbook.id,
                col(Execution.mode).in_(modes),
                col(Execution.status).in_(statuses),
            )
        ).one()
    )


def _enough(
    session: Session,
    runbook: Runbook,
    *,
    name: str,
    level: ExecutionMode,
    modes: tuple[str, ...],
    need: int,
    what: str,
) -> Guard:
    """At least `need` succeeded executions in `modes`."""
    have = _count(session, runbook, modes, (ExecutionStatus.SUCCEEDED.value,))
    return Guard(
        name,
        level.value,
        have >= need,
        f"needs {need} {what}, has {have}",
        {"required": need, "found": have},
    )


def _rehearsals(session: Session, runbook: Runbook, policy: TrustPolicy) -> Guard:
    return _enough(
        session,
        runbook,
        name="rehearsals",
        level=ExecutionMode.COPILOT,
        modes=_REHEARSAL_MODES,
        need=policy.copilot_min_rehearsals,
        what="completed read-along or dry-run executions",
    )


def _successes(session: Session, runbook: Runbook, policy: TrustPolicy) -> Guard:
    return _enough(
        session,
        runbook,
        name="successes",
        level=ExecutionMode.AUTOPILOT,
        modes=_ACTING_MODES,
        need=policy.autopilot_min_successes,
        what="successful copilot executions",
    )


def _clean_window(session: Session, runbook: Runbook, policy: TrustPolicy) -> Guard:
    window = policy.autopilot_clean_window
    recent = session.exec(
        _executions(runbook)
        .where(col(Execution.mode).in_(_ACTING_MODES), col(Execution.status).in_(_FINISHED))
        .order_by(col(Execution.finished_at).desc().nulls_last(), col(Execution.created_at).desc())
        .limit(window)
    ).all()
    bad = [f"{e.id} ({e.status})" for e in recent if e.status in _BAD_ENDINGS]
    detail = (
        f"none of the last {window} copilot executions may have failed or rolled back: "
        + ", ".join(bad)
        if bad
        else f"none of the last {len(recent)} copilot executions failed or rolled back"
    )
    return Guard(
        "clean_window",
        ExecutionMode.AUTOPILOT.value,
        not bad,
        detail,
        {"window": window, "checked": len(recent), "failed_or_rolled_back": bad},
    )


def _resolves_alert(session: Session, runbook: Runbook, policy: TrustPolicy) -> Guard:
    """Of the recent alert-started runs already graded, enough were `mitigated`. None at all (every
    run started by hand): passes, nothing to weigh. Only pending ones: refused until they are
    graded (docs/decisions/0013)."""
    need = policy.autopilot_min_resolved_ratio
    seen = outcomes.outcomes(session, runbook=runbook).recent
    graded = [o for o in seen if o.grade != "pending"]
    by_grade = {g: sum(1 for o in graded if o.grade == g) for g in outcomes.GRADES}
    mitigated = by_grade["mitigated"]
    missed = [f"{o.execution_id} ({o.grade})" for o in graded if o.grade != "mitigated"]
    evidence: dict[str, Any] = {
        "required_ratio": need,
        "checked": len(seen),
        "graded": len(graded),
        "mitigated": mitigated,
        "not_resolved": by_grade["not_resolved"],
        "recurred": by_grade["recurred"],
        "pending": len(seen) - len(graded),
        "not_mitigated": missed[:10],
    }
    if not seen:
        passed, detail = True, "no alert-started runs to grade"
    elif not graded:
        passed = need == 0
        detail = (
            f"{len(seen)} alert-started run(s) not graded yet: their alert's window or the "
            "24 h after it resolved are not over"
        )
    else:
        passed = mitigated >= need * len(graded) - 1e-9
        detail = (
            f"needs {need:.0%} of the graded alert-started runs to resolve their alert for 24 h, "
            f"has {mitigated} of {len(graded)}"
            + (
                f" ({by_grade['not_resolved']} not resolved, {by_grade['recurred']} recurred)"
                if missed
                else ""
            )
        )
    return Guard("resolves_alert", ExecutionMode.AUTOPILOT.value, passed, detail, evidence)


def _red_rollbacks(session: Session, runbook: Runbook) -> Guard:
    version = runbooks.version(session, tenant_id=runbook.tenant_id, runbook_id=runbook.id)
    parsed = ParsedRunbook.from_dict(version.parsed)
    missing = [
        s.id
        for s in parsed.steps
        if s.risk == RiskClass.RED and s.command and (s.rollback is None or not s.rollback.command)
    ]
    detail = (
        f"every red step needs a rollback; version {version.version} has none for step(s) "
        + ", ".join(missing)
        if missing
        else "every red step has a rollback"
    )
    return Guard(
        "red_rollbacks",
        ExecutionMode.AUTOPILOT.value,
        not missing,
        detail,
        {"version": version.version, "red_steps_without_rollback": missing},
    )


@dataclass(frozen=True)
class TrustOutcome:
    runbook: Runbook
    previous: str
    changed: bool
    kind: str | None
    guards: list[Guard]


def change(
    session: Session,
    *,
    tenant_id: str,
    runbook_id: str,
    level: str,
    reason: str,
    actor: str,
    policy: TrustPolicy,
    force: bool = False,
    origin: dict[str, Any] | None = None,
) -> TrustOutcome:
    """Set a runbook's trust level, in the caller's transaction. Raises TrustRefused when a
    promotion guard fails and `force` is not set."""
    target = level_of(level)
    reason = reason.strip()
    if not reason:
        raise TrustError("a reason is required")
    runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id, for_update=True)
    previous = runbook.trust_level
    if previous == target.value:
        return TrustOutcome(runbook, previous, False, None, [])
    checked = guards(session, runbook=runbook, target=target, policy=policy)
    failed = [g for g in checked if not g.passed]
    if failed and not force:
        raise TrustRefused(checked)
    if LEVELS.index(target) < LEVELS.index(ExecutionMode(previous)):
        kind = "demoted"
    else:
        kind = "forced" if failed else "promoted"
    _record(
        session,
        runbook=runbook,
        to_level=target.value,
        kind=kind,
        reason=reason,
        actor=actor,
        evidence={
            "guards": [asdict(g) for g in checked],
            "force": force,
            **({"from": origin} if origin else {}),
        },
    )
    return TrustOutcome(runbook, previous, True, kind, checked)


def _record(
    session: Session,
    *,
    runbook: Runbook,
    to_level: str,
    kind: str,
    reason: str,
    actor: str,
    evidence: dict[str, Any],
    execution_id: str | None = None,
) -> None:
    previous = runbook.trust_level
    runbook.trust_level = to_level
    session.add(runbook)
    session.add(
        TrustChange(
            tenant_id=runbook.tenant_id,
            runbook_id=runbook.id,
            from_level=previous,
            to_level=to_level,
            kind=kind,
            reason=reason,
            actor=actor,
            execution_id=execution_id,
            evidence=evidence,
        )
    )
    failed = [g["name"] for g in evidence.get("guards", []) if not g["passed"]]
    audit.append(
        session,
        tenant_id=runbook.tenant_id,
        actor=actor,
        action=f"trust.{kind}",
        subject=runbook.id,
        data={
            "from": previous,
            "to": to_level,
            "reason": reason,
            **({"overridden_guards": failed} if kind == "forced" else {}),
            **({"execution_id": execution_id} if execution_id else {}),
            **({"origin": evidence["from"]} if evidence.get("from") else {}),
        },
    )


def demote_after(
    session: Session, *, execution: Execution, status: ExecutionStatus, policy: TrustPolicy
) -> str | None:
    """An autopilot execution that failed or rolled back sends its runbook back to copilot.
    Returns the reason when it did (the caller notifies), in the caller's transaction."""
    if (
        execution.mode != ExecutionMode.AUTOPILOT.value
        or status.value not in _BAD_ENDINGS
        or not policy.demote_on_failure
    ):
        return None
    runbook = runbooks.get(
        session, tenant_id=execution.tenant_id, runbook_id=execution.runbook_id, for_update=True
    )
    if runbook.trust_level != ExecutionMode.AUTOPILOT.value:
        return None  # already demoted (by a person, or by another execution)
    reason = f"autopilot execution {execution.id} {status.value.replace('_', ' ')}"
    _record(
        session,
        runbook=runbook,
        to_level=ExecutionMode.COPILOT.value,
        kind="auto_demoted",
        reason=reason,
        actor="workflow",
        evidence={"execution_id": execution.id, "status": status.value},
        execution_id=execution.id,
    )
    return reason


def history(session: Session, *, tenant_id: str, runbook_id: str) -> list[dict[str, Any]]:
    runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id)
    rows = session.exec(
        select(TrustChange)
        .where(TrustChange.tenant_id == tenant_id, TrustChange.runbook_id == runbook_id)
        .order_by(col(TrustChange.id))
    ).all()
    return [
        {
            "at": r.at,
            "from": r.from_level,
            "to": r.to_level,
            "kind": r.kind,
            "reason": r.reason,
            "actor": r.actor,
            "execution_id": r.execution_id,
            "overridden_guards": [
                g["name"] for g in r.evidence.get("guards", []) if not g["passed"]
            ]
            if r.kind == "forced"
            else [],
        }
        for r in rows
    ]


def next_level(level: str) -> ExecutionMode | None:
    index = LEVELS.index(ExecutionMode(level))
    return LEVELS[index + 1] if index + 1 < len(LEVELS) else None
