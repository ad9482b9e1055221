"""Self-check runs and each runbook's results: drift, and the views that show them.

A result is `passed` (no failing finding), else `failed` or `drifted`: drifted when the failing
streak it belongs to began after a passed result (the runbook worked and rotted), failed when it
did not (it never passed, or it was never checked). `failing_since` is the first failing run of
the streak, carried on every failing result until one passes. The previous result is read under
a per-runbook advisory lock, so two runs recording the same runbook at once cannot both miss it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import Session, col, select

from ddoc.contracts.selfcheck import (
    CheckStatus,
    Finding,
    SelfCheckRecorded,
    SelfCheckSummary,
)
from ddoc.platform.ids import derived_id
from ddoc.platform.tables import Runbook, SelfCheckResult, SelfCheckRun

FLAG_FAILED = "self_check_failed"
FLAG_DRIFTED = "drifted"
DIGEST_CLAIMED = "posting"
DIGEST_LIST = 10  # failing runbooks named in the weekly digest


def run_id_for(workflow_id: str, temporal_run_id: str) -> str:
    """The run's row id: one per workflow run, the same on every retry of its plan."""
    return derived_id("sc", workflow_id, temporal_run_id)


def start_run(
    session: Session,
    *,
    run_id: str,
    tenant_id: str,
    workflow_id: str,
    trigger: str,
    environment: str,
    run_read_only: bool,
    started_at: datetime,
) -> None:
    session.execute(
        text(
            "INSERT INTO self_check_runs (id, tenant_id, workflow_id, trigger, environment,"
            " run_read_only, started_at) VALUES (:id, :tenant, :workflow, :trigger, :env,"
            " :read_only, :started) ON CONFLICT (id) DO NOTHING"
        ),
        {
            "id": run_id,
            "tenant": tenant_id,
            "workflow": workflow_id,
            "trigger": trigger,
            "env": environment,
            "read_only": run_read_only,
            "started": started_at,
        },
    )


def week_start(at: datetime, time_zone: str) -> datetime:
    """Monday 00:00 of `at`'s week in the tenant's time zone."""
    local = at.astimezone(ZoneInfo(time_zone))
    monday = (local - timedelta(days=local.weekday())).date()
    return datetime(monday.year, monday.month, monday.day, tzinfo=local.tzinfo)


def digest_due(session: Session, *, tenant_id: str, run_id: str, at: datetime, zone: str) -> bool:
    """No other run of the tenant's week has taken the weekly digest."""
    taken = session.execute(
        text(
            "SELECT 1 FROM self_check_runs WHERE tenant_id = :tenant AND id <> :run"
            " AND started_at >= :since AND digest IS NOT NULL LIMIT 1"
        ),
        {"tenant": tenant_id, "run": run_id, "since": week_start(at, zone)},
    ).first()
    return taken is None


def claim_digest(session: Session, *, tenant_id: str, run_id: str, zone: str) -> bool:
    """Take the week's digest for this run (once per week and tenant, under a lock); False when
    another run of the week took it. A run that took it already (a retry) takes it again."""
    _lock(session, f"self-check-digest:{tenant_id}")
    run = session.get(SelfCheckRun, run_id)
    if run is None:
        return False
    if run.digest is not None:
        return run.digest == DIGEST_CLAIMED
    if not digest_due(session, tenant_id=tenant_id, run_id=run_id, at=run.started_at, zone=zone):
        return False
    run.digest = DIGEST_CLAIMED
    session.add(run)
    return True


def set_digest(session: Session, *, run_id: str, detail: str) -> None:
    run = session.get(SelfCheckRun, run_id)
    if run is not None:
        run.digest = detail[:500]
        session.add(run)


def next_status(
    previous: SelfCheckResult | None, failing: bool, now: datetime
) -> tuple[CheckStatus, datetime | None]:
    """A result's status and failing_since from the runbook's previous result (pure)."""
    if not failing:
        return CheckStatus.PASSED, None
    if previous is None:
        return CheckStatus.FAILED, now
    if previous.status == CheckStatus.PASSED.value:
        return CheckStatus.DRIFTED, now
    return CheckStatus(previous.status), previous.failing_since or now


def record(
    session: Session,
    *,
    run_id: str,
    tenant_id: str,
    runbook_id: str,
    version: int,
    findings: Sequence[Finding],
    agent: str | None,
    now: datetime | None = None,
) -> SelfCheckRecorded:
    """Store a runbook's result in a run (a second call for the same run returns the first)."""
    _lock(session, f"self-check:{tenant_id}/{runbook_id}")
    existing = session.get(SelfCheckResult, (run_id, runbook_id))
    if existing is None:
        previous = session.exec(
            select(SelfCheckResult)
            .where(
                SelfCheckResult.tenant_id == tenant_id,
                SelfCheckResult.runbook_id == runbook_id,
                SelfCheckResult.run_id != run_id,
            )
            .order_by(col(SelfCheckResult.run_at).desc())
            .limit(1)
        ).first()
        now = now or datetime.now(UTC)
        status, since = next_status(previous, any(f.failing for f in findings), now)
        existing = SelfCheckResult(
            run_id=run_id,
            tenant_id=tenant_id,
            runbook_id=runbook_id,
            version=version,
            run_at=now,
            status=status.value,
            findings=[_finding(f) for f in findings],
            failing_since=since,
            agent=agent,
        )
        session.add(existing)
        session.flush()
    return SelfCheckRecorded(
        status=existing.status,
        failing_since=existing.failing_since.isoformat() if existing.failing_since else None,
    )


def finish(
    session: Session, *, run_id: str, tenant_id: str, findings: Sequence[Finding]
) -> SelfCheckSummary:
    counts = dict(
        session.execute(
            text(
                "SELECT status, count(*) FROM self_check_results WHERE run_id = :run"
                " AND tenant_id = :tenant GROUP BY status"
            ),
            {"run": run_id, "tenant": tenant_id},
        ).all()
    )
    run = session.get(SelfCheckRun, run_id)
    assert run is not None and run.tenant_id == tenant_id
    run.finished_at = run.finished_at or datetime.now(UTC)
    run.findings = [_finding(f) for f in findings]
    run.checked = sum(counts.values())
    run.failing = counts.get(CheckStatus.FAILED.value, 0)
    run.drifted = counts.get(CheckStatus.DRIFTED.value, 0)
    session.add(run)
    return SelfCheckSummary(
        run_id=run_id,
        checked=run.checked,
        failing=run.failing,
        drifted=run.drifted,
        findings=list(findings),
    )


# -- views ----------------------------------------------------------------------------------


def view(result: SelfCheckResult) -> dict[str, Any]:
    """A runbook's `self_check` in GET /runbooks/{id} (a contract with outside tools)."""
    return {
        "last_run": result.run_at,
        "status": result.status,
        "findings": list(result.findings),
        "failing_since": result.failing_since,
        "version": result.version,
        "run_id": result.run_id,
        "agent": result.agent,
    }


def latest(session: Session, *, tenant_id: str, runbook_id: str) -> dict[str, Any] | None:
    row = session.exec(
        select(SelfCheckResult)
        .where(SelfCheckResult.tenant_id == tenant_id, SelfCheckResult.runbook_id == runbook_id)
        .order_by(col(SelfCheckResult.run_at).desc())
        .limit(1)
    ).first()
    return view(row) if row is not None else None


def quality_flags(check: dict[str, Any] | None, version: int) -> list[dict[str, Any]]:
    """Quality flags from a runbook's latest self-check, for the version it checked: one per
    failing finding, `drifted` when the runbook passed before, else `self_check_failed`."""
    if check is None or check["version"] != version or check["status"] == "passed":
        return []
    code = FLAG_DRIFTED if check["status"] == CheckStatus.DRIFTED.value else FLAG_FAILED
    when = _day(check["failing_since"] or check["last_run"])
    prefix = f"self-check failing since {when}" if code == FLAG_DRIFTED else "self-check"
    return [
        {"code": code, "message": f"{prefix}: {f['message']}", "step_id": f.get("step_id")}
        for f in check["findings"]
        if f.get("failing")
    ]


def with_quality_flags(
    parsed: dict[str, Any] | None, check: dict[str, Any] | None, version: int
) -> dict[str, Any] | None:
    """The parsed runbook as shown: its stored flags and those of its latest self-check (a
    copy; what is stored is never changed)."""
    flags = quality_flags(check, version)
    if parsed is None or not flags:
        return parsed
    quality = dict(parsed.get("quality") or {})
    quality["flags"] = [*quality.get("flags", []), *flags]
    return {**parsed, "quality": quality}


def summary(session: Session, *, tenant_id: str) -> dict[str, Any] | None:
    """The tenant's last finished run, for the health report and the weekly digest."""
    run = session.exec(
        select(SelfCheckRun)
        .where(SelfCheckRun.tenant_id == tenant_id, col(SelfCheckRun.finished_at).is_not(None))
        .order_by(col(SelfCheckRun.started_at).desc())
        .limit(1)
    ).first()
    if run is None:
        return None
    return {
        "run_id": run.id,
        "environment": run.environment,
        "checked_at": run.started_at,
        "checked": run.checked,
        "failing": run.failing,
        "drifted": run.drifted,
        "findings": list(run.findings),
        "line": f"self-check: {run.checked} runbooks checked at {_clock(run.started_at)}, "
        f"{run.failing} failing, {run.drifted} drifted",
    }


def runs(session: Session, *, tenant_id: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.exec(
        select(SelfCheckRun)
        .where(SelfCheckRun.tenant_id == tenant_id)
        .order_by(col(SelfCheckRun.started_at).desc())
        .limit(limit)
    ).all()
    return [
        {
            "run_id": r.id,
            "workflow_id": r.workflow_id,
            "trigger": r.trigger,
            "environment": r.environment,
            "run_read_only": r.run_read_only,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "checked": r.checked,
            "failing": r.failing,
            "drifted": r.drifted,
            "findings": list(r.findings),
            "digest": r.digest,
        }
        for r in rows
    ]


def digest_text(session: Session, *, tenant_id: str, run_id: str) -> str:
    """The weekly digest: the run's line, then the runbooks failing in it."""
    run = session.get(SelfCheckRun, run_id)
    assert run is not None and run.tenant_id == tenant_id
    failing = session.execute(
        select(SelfCheckResult, Runbook.title)
        .join(Runbook, col(Runbook.id) == col(SelfCheckResult.runbook_id))
        .where(SelfCheckResult.run_id == run_id, SelfCheckResult.status != "passed")
        .order_by(col(SelfCheckResult.status).desc(), col(Runbook.title))
    ).all()
    lines = [
        f"*Weekly runbook self-check* ({run.environment}): {run.checked} runbooks checked at "
        f"{_clock(run.started_at)}, {run.failing} failing, {run.drifted} drifted"
    ]
    lines += [f"• {f['message']}" for f in run.findings]
    for result, title in failing[:DIGEST_LIST]:
        first = next((f for f in result.findings if f.get("failing")), None)
        since = f" since {_day(result.failing_since)}" if result.failing_since else ""
        lines.append(
            f"• {title} (`{result.runbook_id}` v{result.version}) {result.status}{since}"
            + (f": {first['message']}" if first else "")
        )
    if len(failing) > DIGEST_LIST:
        lines.append(f"… and {len(failing) - DIGEST_LIST} more")
    return "\n".join(lines)


def _finding(f: Finding) -> dict[str, Any]:
    return {"step_id": f.step_id, "kind": f.kind, "message": f.message, "failing": f.failing}


def _lock(session: Session, key: str) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(at: Any) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d") if isinstance(at, datetime) else str(at)
