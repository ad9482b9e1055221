"""Execution records in Postgres: created by the API/intake, updated by the workflow's activities.

The workflow is the source of truth while it runs; these rows are its durable, queryable trail.

Why this file is long: the trail's writes (status, steps with their decisions and audit
events, events for the notifiers) and its reads (the typed views) share the same rows and their
mapping; both sides change together when a column does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from ddoc.contracts.diagnostic import tenant_of_workflow_id as tenant_of_diagnostic
from ddoc.contracts.dryrun import dry_run_form
from ddoc.contracts.execution import (
    AlertContext,
    BranchSnapshot,
    CheckSnapshot,
    ExecutionInput,
    ExecutionMode,
    ExecutionPolicy,
    ExecutionStatus,
    StepRecord,
    StepSnapshot,
    StepStatus,
    VariableSpec,
)
from ddoc.contracts.selfcheck import tenant_of_workflow_id as tenant_of_self_check
from ddoc.execution.policy import execution_policy
from ddoc.execution.views import (
    AwaitingView,
    DecisionView,
    ExecutionSummary,
    ExecutionView,
    StepView,
)
from ddoc.platform import audit, metrics, tenancy
from ddoc.platform.errors import NotFound
from ddoc.platform.tables import (
    Execution,
    ExecutionEventRow,
    ExecutionStep,
    Runbook,
    RunbookVersion,
)
from ddoc.runbooks.model import Check, ParsedRunbook, RiskClass, RollbackOrigin, Step
from ddoc.runbooks.risk import RuleSet, classify_command
from ddoc.runbooks.risk import tenant as tenant_rules

log = logging.getLogger(__name__)

# Notifiers LISTEN here; the payload is the execution id (they read the events table).
EVENTS_CHANNEL = "ddoc_execution_events"

TERMINAL_STATUSES = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.ROLLED_BACK,
        ExecutionStatus.ABORTED,
    }
)


class ExecutionNotFound(NotFound):
    pass


def build_input(
    *,
    execution_id: str,
    tenant_id: str,
    environment: str,
    runbook: Runbook,
    version: RunbookVersion,
    mode: ExecutionMode,
    alert: AlertContext | None,
    incident_id: str | None,
    values: dict[str, str] | None = None,
    command_timeout_seconds: int = 300,
    agent_offline_timeout_seconds: int = 120,
    policy: ExecutionPolicy | None = None,
    rules: RuleSet | None = None,
    started_by: str | None = None,
    breakpoints: dict[str, str] | None = None,
    runbook_breakpoints: bool = True,
) -> ExecutionInput:
    parsed = ParsedRunbook.from_dict(version.parsed)
    step_ids = {step.id for step in parsed.steps} if runbook_breakpoints else set()
    return ExecutionInput(
        execution_id=execution_id,
        tenant_id=tenant_id,
        environment=environment,
        runbook_id=runbook.id,
        runbook_version=version.version,
        runbook_title=parsed.title,
        mode=mode,
        steps=[_snapshot(step, rules) for step in parsed.steps],
        variables=[
            VariableSpec(name=v.name, syntax=v.syntax, source=v.source.value, key=v.key)
            for v in parsed.variables
        ],
        values=dict(values or {}),
        alert=alert,
        incident_id=incident_id,
        command_timeout_seconds=command_timeout_seconds,
        agent_offline_timeout_seconds=agent_offline_timeout_seconds,
        policy=policy or ExecutionPolicy(),
        started_by=started_by,
        mitigated_check=_check(parsed.mitigated_when.check, rules)
        if parsed.mitigated_when is not None
        else None,
        breakpoints={
            **{k: str(v) for k, v in (runbook.breakpoints or {}).items() if k in step_ids},
            **(breakpoints or {}),
        },
    )


def execution_rules(session: Session, tenant_id: str) -> dict[str, Any]:
    """The tenant's policy and risk rules, as `build_input` takes them."""
    return {
        "policy": execution_policy(tenancy.settings(session, tenant_id)),
        "rules": tenant_rules.risk_rules(session, tenant_id),
    }


def _snapshot(step: Step, rules: RuleSet | None) -> StepSnapshot:
    rollback = step.rollback
    rollback_command = rollback.command if rollback and step.command else None
    rollback_risk = None
    if rollback_command:
        rollback_risk = classify_command(rollback_command, rules).level
        if (
            rollback is not None
            and rollback.origin == RollbackOrigin.SUGGESTED
            and rollback_risk == RiskClass.GREEN
        ):
            rollback_risk = RiskClass.YELLOW  # derived by us: a human looks first
    return StepSnapshot(
        id=step.id,
        text=step.text,
        kind=step.kind.value,
        command=step.command,
        risk=step.risk,
        rollback_command=rollback_command,
        rollback_risk=rollback_risk,
        rollback_suggested=bool(rollback and rollback.origin == RollbackOrigin.SUGGESTED),
        branches=[
            BranchSnapshot(condition=b.condition, text=b.text, goto=b.goto, check=b.check)
            for b in step.branches
        ],
        dry_run_command=dry_run_form(step.command) if step.command else None,
        precheck=_check(step.precheck, rules) if step.command else None,
        verify=_check(step.verify, rules) if step.command else None,
        parallel=step.parallel,
    )


def _check(check: Check | None, rules: RuleSet | None) -> CheckSnapshot | None:
    """A check as the workflow runs it, only when it is read-only under the tenant's rules as
    they are now (the parser refused the others; a tenant rule may have changed since)."""
    if check is None or classify_command(check.command, rules).level != RiskClass.GREEN:
        return None
    return CheckSnapshot(
        command=check.command,
        expect=dict(check.expect),
        within_seconds=check.within_seconds,
        interval_seconds=max(1, check.interval_seconds),
    )


_CONVERTER = DataConverter.default.payload_converter


def stored_input(inp: ExecutionInput) -> dict[str, Any]:
    """The workflow input as JSON, exactly as Temporal's JSON converter writes it: kept with
    the execution so an interrupted start can be finished from it (ddoc/execution/outbox.py)."""
    payload = _CONVERTER.to_payloads([inp])[0]
    decoded: dict[str, Any] = json.loads(payload.data)
    return decoded


def input_of(stored: dict[str, Any]) -> ExecutionInput:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(stored).encode())
    [inp] = _CONVERTER.from_payloads([payload], [ExecutionInput])
    assert isinstance(inp, ExecutionInput)
    return inp


def create(
    session: Session, *, inp: ExecutionInput, started_by: str, record_audit: bool = True
) -> Execution:
    """Insert the execution and its pending steps. With `record_audit=False` the caller
    appends `creation_audit(...)` itself, last in its transaction (see intake)."""
    execution = Execution(
        id=inp.execution_id,
        tenant_id=inp.tenant_id,
        incident_id=inp.incident_id,
        runbook_id=inp.runbook_id,
        runbook_version=inp.runbook_version,
        mode=inp.mode.value,
        status=ExecutionStatus.RUNNING.value,
        environment=inp.environment,
        started_by=started_by,
        start_input=stored_input(inp),
    )
    session.add(execution)
    session.flush()
    for position, step in enumerate(inp.steps):
        session.add(
            ExecutionStep(
                execution_id=inp.execution_id,
                step_id=step.id,
                tenant_id=inp.tenant_id,
                position=position,
                kind=step.kind,
                text=step.text,
                command=step.command,
                risk=step.risk,
                status=StepStatus.PENDING.value,
                parallel=step.parallel,
            )
        )
    session.flush()
    if record_audit:
        append_creation_audit(session, inp=inp, started_by=started_by)
    return execution


def append_creation_audit(session: Session, *, inp: ExecutionInput, started_by: str) -> None:
    audit.append(
        session,
        tenant_id=inp.tenant_id,
        actor=started_by,
        action="execution.created",
        subject=inp.execution_id,
        data={
            "runbook_id": inp.runbook_id,
            "runbook_version": inp.runbook_version,
            "mode": inp.mode.value,
            "incident_id": inp.incident_id,
        },
    )


def record_status(
    session: Session,
    *,
    tenant_id: str,
    execution_id: str,
    status: ExecutionStatus,
    from_workflow: bool = True,
    current_step: str | None = None,
) -> bool:
    """Write the execution's status; True when it changed (a retry writes the same again)."""
    execution = _get(session, tenant_id=tenant_id, execution_id=execution_id)
    if from_workflow:
        if not execution.workflow_started:
            record_event(
                session, tenant_id=tenant_id, execution_id=execution_id, kind="execution.started"
            )
        execution.workflow_started = True  # the workflow runs: its start went through
        execution.current_step = current_step
    if execution.status == status.value:
        session.add(execution)
        return False
    execution.status = status.value
    if status in TERMINAL_STATUSES:
        execution.finished_at = datetime.now(UTC)
    session.add(execution)
    record_event(
        session,
        tenant_id=tenant_id,
        execution_id=execution_id,
        kind=f"execution.{status.value}",
        data={"current_step": current_step},
    )
    audit.append(
        session,
        tenant_id=tenant_id,
        actor="workflow",
        action=f"execution.{status.value}",
        subject=execution_id,
    )
    return True


def record_event(
    session: Session,
    *,
    tenant_id: str,
    execution_id: str,
    kind: str,
    step_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append a transition for notifiers and wake the listeners (on commit)."""
    session.add(
        ExecutionEventRow(
            tenant_id=tenant_id,
            execution_id=execution_id,
            type=kind,
            step_id=step_id,
            data=data or {},
        )
    )
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": EVENTS_CHANNEL, "payload": execution_id},
    )


def events(
    session: Session, *, tenant_id: str, execution_id: str, after: int = 0
) -> list[dict[str, Any]]:
    rows = session.exec(
        select(ExecutionEventRow)
        .where(
            ExecutionEventRow.tenant_id == tenant_id,
            ExecutionEventRow.execution_id == execution_id,
            col(ExecutionEventRow.id) > after,
        )
        .order_by(col(ExecutionEventRow.id))
    ).all()
    return [
        {"id": r.id, "at": r.at, "type": r.type, "step_id": r.step_id, "data": r.data} for r in rows
    ]


def record_step(session: Session, *, record: StepRecord) -> None:
    """Write a step's state; a step new to the trail (a compensation) gets its row here.
    Idempotent: an activity retry writes the same state again."""
    step = session.exec(
        select(ExecutionStep).where(
            ExecutionStep.execution_id == record.execution_id,
            ExecutionStep.step_id == record.step_id,
            ExecutionStep.tenant_id == record.tenant_id,
        )
    ).first()
    if step is None:
        if record.undoes is None:
            raise ExecutionNotFound(f"step {record.step_id} of {record.execution_id} not found")
        last = session.exec(
            select(func.max(ExecutionStep.position)).where(
                ExecutionStep.execution_id == record.execution_id
            )
        ).one()
        step = ExecutionStep(
            execution_id=record.execution_id,
            step_id=record.step_id,
            tenant_id=record.tenant_id,
            position=(last or 0) + 1,
            kind=record.kind or "compensation",
            text=record.text or "",
            command=record.command,
            risk=record.risk,
            status=record.status.value,
            undoes=record.undoes,
        )
    now = datetime.now(UTC)
    if record.status == StepStatus.RUNNING:
        step.started_at = step.started_at or now
    elif record.status not in (
        StepStatus.PENDING,
        StepStatus.AWAITING_APPROVAL,
        StepStatus.UNKNOWN,
    ):
        step.finished_at = now
    changed = step.status != record.status.value
    step.status = record.status.value
    step.exit_code = record.exit_code
    if record.output is not None:
        step.output = record.output
        step.output_truncated = record.output_truncated
    step.detail = record.detail
    if (
        record.edited_by is not None
        and record.command is not None
        and record.command != step.command
        and step.original_command is None
    ):
        step.original_command = step.command  # the runbook's, kept beside the human's edit
    if record.command is not None:
        step.command = record.command
    if record.risk is not None:
        step.risk = record.risk
    if record.edited_by is not None:
        step.edited_by = record.edited_by
    step.awaiting = dataclasses.asdict(record.awaiting) if record.awaiting else None
    if record.decisions is not None:
        decisions = [dataclasses.asdict(d) for d in record.decisions]
        for new in decisions[len(step.decisions) :]:
            if new["decision"] == "approve" and new["accepted"]:
                _observe_approval_wait(session, record, new["at"])
            audit.append(
                session,
                tenant_id=record.tenant_id,
                actor=new["user_id"],
                action=f"decision.{new['decision']}" + ("" if new["accepted"] else ".refused"),
                subject=f"{record.execution_id}/{record.step_id}",
                data={
                    **{
                        k: new[k]
                        for k in ("source", "address", "reason", "command", "branch", "comment")
                        if new.get(k)
                    },
                    **_hashed("command", new.get("command")),
                },
            )
        step.decisions = decisions
    session.add(step)
    if record.event is not None:
        record_event(
            session,
            tenant_id=record.tenant_id,
            execution_id=record.execution_id,
            kind=record.event,
            step_id=record.step_id,
            data={
                "status": record.status.value,
                "detail": record.detail,
                # Workflow time, when a human was asked (the event's own `at` is the write's).
                **({"asked_at": record.awaiting.asked_at} if record.awaiting else {}),
            },
        )
    if changed and step.command and step.started_at and record.status in _COMMAND_OUTCOMES:
        seconds = (step.finished_at or now) - step.started_at
        metrics.AGENT_COMMAND_SECONDS.labels(record.status.value).observe(seconds.total_seconds())
        if record.status == StepStatus.FAILED:
            metrics.AGENT_COMMAND_FAILURES.inc()
    if changed and record.status not in (
        StepStatus.RUNNING,
        StepStatus.PENDING,
        StepStatus.AWAITING_APPROVAL,
    ):
        audit.append(
            session,
            tenant_id=record.tenant_id,
            actor="workflow",
            action=f"step.{record.status.value}",
            subject=f"{record.execution_id}/{record.step_id}",
            data={
                "exit_code": record.exit_code,
                "command": step.command,
                "risk": step.risk,
                **_hashed("command", step.command),
                **_hashed("output", step.output),
                **({"original_command": step.original_command} if step.original_command else {}),
            },
        )


_COMMAND_OUTCOMES = (StepStatus.SUCCEEDED, StepStatus.FAILED)


def _observe_approval_wait(session: Session, record: StepRecord, decided_at: str) -> None:
    """Approval wait: from the step's latest "awaiting approval" event to the approval."""
    asked = session.exec(
        select(func.max(ExecutionEventRow.at)).where(
            ExecutionEventRow.execution_id == record.execution_id,
            ExecutionEventRow.step_id == record.step_id,
            ExecutionEventRow.type == "step.awaiting_approval",
        )
    ).one()
    if asked is not None:
        waited = (datetime.fromisoformat(decided_at) - asked).total_seconds()
        metrics.APPROVAL_WAIT.observe(max(0.0, waited))


def _hashed(name: str, value: str | None) -> dict[str, str]:
    """`{name}_sha256` for the audit: proves which text ran (or came out) without keeping
    outputs in the trail."""
    return {f"{name}_sha256": hashlib.sha256(value.encode()).hexdigest()} if value else {}


def list_executions(
    session: Session,
    *,
    tenant_id: str,
    status: ExecutionStatus | None = None,
    runbook_id: str | None = None,
    limit: int = 100,
) -> list[ExecutionSummary]:
    query = select(Execution).where(Execution.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Execution.status == status.value)
    if runbook_id is not None:
        query = query.where(Execution.runbook_id == runbook_id)
    rows = session.exec(query.order_by(col(Execution.created_at).desc()).limit(limit))
    return [_summary(row) for row in rows]


def _summary(execution: Execution) -> ExecutionSummary:
    return ExecutionSummary(
        id=execution.id,
        workflow_id=execution.id,
        status=ExecutionStatus(execution.status),
        mode=ExecutionMode(execution.mode),
        runbook_id=execution.runbook_id,
        runbook_version=execution.runbook_version,
        incident_id=execution.incident_id,
        environment=execution.environment,
        started_by=execution.started_by,
        created_at=execution.created_at,
        finished_at=execution.finished_at,
        current_step=execution.current_step,
    )


def summary(session: Session, *, tenant_id: str, execution_id: str) -> ExecutionSummary:
    return _summary(_get(session, tenant_id=tenant_id, execution_id=execution_id))


def trail(session: Session, *, tenant_id: str, execution_id: str) -> ExecutionView:
    """The execution with its steps as recorded (the workflow's live state is `live.view`)."""
    execution = _get(session, tenant_id=tenant_id, execution_id=execution_id)
    steps = session.exec(
        select(ExecutionStep)
        .where(ExecutionStep.execution_id == execution_id, ExecutionStep.tenant_id == tenant_id)
        .order_by(col(ExecutionStep.position))
    ).all()
    return ExecutionView(**dict(_summary(execution)), steps=[_step(step) for step in steps])


def view(session: Session, *, tenant_id: str, execution_id: str) -> dict[str, Any]:
    """The trail as a plain dict: the form activities/slack.py still reads (`trail` is the
    typed one)."""
    found = trail(session, tenant_id=tenant_id, execution_id=execution_id)
    return found.model_dump(exclude_unset=True)


def _step(step: ExecutionStep) -> StepView:
    return StepView(
        id=step.step_id,
        kind=step.kind,
        text=step.text,
        status=StepStatus(step.status),
        command=step.command,
        risk=RiskClass(step.risk) if step.risk else None,
        exit_code=step.exit_code,
        output=step.output,
        output_truncated=step.output_truncated,
        detail=step.detail,
        started_at=step.started_at,
        finished_at=step.finished_at,
        undoes=step.undoes,
        edited_by=step.edited_by,
        original_command=step.original_command,
        duration_seconds=_seconds(step.started_at, step.finished_at),
        decisions=[DecisionView.model_validate(d) for d in step.decisions],
        awaiting=AwaitingView.model_validate(step.awaiting) if step.awaiting else None,
        parallel=step.parallel,
    )


def get(session: Session, *, tenant_id: str, execution_id: str) -> Execution:
    """The execution's row; ExecutionNotFound when this tenant has none by that id."""
    return _get(session, tenant_id=tenant_id, execution_id=execution_id)


def _get(session: Session, *, tenant_id: str, execution_id: str) -> Execution:
    execution = session.exec(
        select(Execution).where(Execution.id == execution_id, Execution.tenant_id == tenant_id)
    ).first()
    if execution is None:
        raise ExecutionNotFound(f"execution {execution_id} not found")
    return execution


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def tenant_of_workflow(engine: Any, workflow_id: str) -> str | None:
    """The tenant a workflow belongs to, by its id: an execution, its Slack sync, a tenant's
    self-check or diagnostic (for the payload codec, which learns only the workflow id)."""
    column, table, key = "tenant_id", "executions", workflow_id
    checked = tenant_of_self_check(workflow_id) or tenant_of_diagnostic(workflow_id)
    if checked is not None:
        column, table, key = "id", "tenants", checked
    elif workflow_id.startswith("slack-incident-"):
        table, key = "incidents", workflow_id.removeprefix("slack-incident-")
    elif workflow_id.startswith("slack-"):
        key = workflow_id.removeprefix("slack-")
    with engine.connect() as conn:
        found = conn.execute(
            text(f"SELECT {column} FROM {table} WHERE id = :id"), {"id": key}
        ).scalar()
    return str(found) if found is not None else None


def server_codec(keys_file: Any, engine: Any) -> Any:
    """The control plane's payload codec (every tenant's keys), or None when encryption is off."""
    if keys_file is None:
        return None
    from functools import partial

    from ddoc.contracts import codec

    return codec.EncryptionCodec(
        codec.load_keys(keys_file), codec.cached(partial(tenant_of_workflow, engine))
    )
