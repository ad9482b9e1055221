"""The self-check's control-plane activities: plan the run, make each runbook's probe, record
what the agent found, finish the run, and post the weekly Slack digest.

Synchronous, like the store's: they run in the worker's thread pool. Each is safe to retry: the
run's row is derived from the workflow run, a runbook's result is keyed by (run, runbook), and
the digest is claimed once per tenant and week.
"""

from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, text
from sqlmodel import Session
from temporalio import activity

from ddoc.contracts import names
from ddoc.contracts.selfcheck import (
    DigestRequest,
    DigestResult,
    Finding,
    FindingKind,
    RunbookRef,
    SelfCheckFinish,
    SelfCheckPlan,
    SelfCheckPlanRequest,
    SelfCheckPrepare,
    SelfCheckRecord,
    SelfCheckRecorded,
    SelfCheckSummary,
    SelfCheckTarget,
    Trigger,
)
from ddoc.contracts.settings import agent_task_queue
from ddoc.platform import audit, tenancy
from ddoc.platform.tables import SelfCheckRun
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.risk import tenant as tenant_rules
from ddoc.selfcheck import probes
from ddoc.selfcheck import store as checks
from ddoc.selfcheck.config import config_of
from ddoc.slack import tenants
from ddoc.slack.tenants import SlackConfig

log = logging.getLogger(__name__)

MAX_RUNBOOKS_PER_RUN = 200  # the least recently checked first (docs/LIMITS.md)
PROBE_TIMEOUT_SECONDS = 30  # for each command or dry run an agent runs


class SelfCheckActivities:
    def __init__(self, engine: Engine, slack: SlackConfig | None = None) -> None:
        self._engine = engine
        self._slack = slack  # the default tenant's Slack (from the environment)

    @activity.defn(name=names.SELF_CHECK_PLAN)
    def plan(self, request: SelfCheckPlanRequest) -> SelfCheckPlan:
        tenant_id = request.tenant_id
        with Session(self._engine) as session:
            config = config_of(tenancy.settings(session, tenant_id))
            if config is None or (request.trigger == Trigger.SCHEDULE and not config.enabled):
                return SelfCheckPlan(
                    run_id="",
                    findings=[
                        Finding(
                            FindingKind.NOT_CONFIGURED.value,
                            "self-check is not configured for this tenant (settings self_check)"
                            if config is None
                            else "self-check is disabled (settings self_check.enabled)",
                        )
                    ],
                )
            run_id = checks.run_id_for(request.workflow_id, request.run_id)
            started = datetime.fromisoformat(request.started_at)
            books = runbooks.list_runbooks(session, tenant_id=tenant_id)
            last_checked = dict(
                session.execute(
                    text(
                        "SELECT runbook_id, max(run_at) FROM self_check_results"
                        " WHERE tenant_id = :tenant GROUP BY runbook_id"
                    ),
                    {"tenant": tenant_id},
                ).all()
            )
            # Over the limit, the least recently checked go first: every runbook gets its turn.
            books.sort(key=lambda b: (b.id in last_checked, last_checked.get(b.id) or started))
            findings = []
            if len(books) > MAX_RUNBOOKS_PER_RUN:
                findings.append(
                    Finding(
                        FindingKind.OVER_LIMIT.value,
                        f"{len(books) - MAX_RUNBOOKS_PER_RUN} of {len(books)} runbooks not "
                        f"checked in this run (at most {MAX_RUNBOOKS_PER_RUN} a run; the least "
                        "recently checked go first)",
                    )
                )
            checks.start_run(
                session,
                run_id=run_id,
                tenant_id=tenant_id,
                workflow_id=request.workflow_id,
                trigger=request.trigger,
                environment=config.environment,
                run_read_only=config.run_read_only,
                started_at=started,
            )
            due = checks.digest_due(
                session, tenant_id=tenant_id, run_id=run_id, at=started, zone=config.time_zone
            )
            refs = [
                RunbookRef(runbook_id=b.id, version=b.current_version, title=b.title)
                for b in books[:MAX_RUNBOOKS_PER_RUN]
            ]
            session.commit()
        return SelfCheckPlan(
            run_id=run_id,
            environment=config.environment,
            task_queue=agent_task_queue(tenant_id, config.environment),
            runbooks=refs,
            findings=findings,
            digest_due=due,
            probe_timeout_seconds=PROBE_TIMEOUT_SECONDS,
        )

    @activity.defn(name=names.SELF_CHECK_PREPARE)
    def prepare(self, request: SelfCheckPrepare) -> SelfCheckTarget:
        with Session(self._engine) as session:
            run = session.get(SelfCheckRun, request.run_id)
            assert run is not None and run.tenant_id == request.tenant_id
            config = config_of(tenancy.settings(session, request.tenant_id))
            version = runbooks.version(
                session,
                tenant_id=request.tenant_id,
                runbook_id=request.runbook_id,
                number=request.version,
            )
            rules = tenant_rules.risk_rules(session, request.tenant_id)
        return probes.target(
            ParsedRunbook.from_dict(version.parsed),
            run_id=request.run_id,
            runbook_id=request.runbook_id,
            version=request.version,
            values=config.values if config else {},
            rules=rules,
            # As the run started: a setting changed mid-run applies from the next run.
            run_read_only=run.run_read_only,
            timeout_seconds=PROBE_TIMEOUT_SECONDS,
        )

    @activity.defn(name=names.SELF_CHECK_RECORD)
    def record(self, request: SelfCheckRecord) -> SelfCheckRecorded:
        with Session(self._engine) as session:
            recorded = checks.record(
                session,
                run_id=request.run_id,
                tenant_id=request.tenant_id,
                runbook_id=request.runbook_id,
                version=request.version,
                findings=request.findings,
                agent=request.agent,
            )
            session.commit()
        return recorded

    @activity.defn(name=names.SELF_CHECK_FINISH)
    def finish(self, request: SelfCheckFinish) -> SelfCheckSummary:
        with Session(self._engine) as session:
            summary = checks.finish(
                session,
                run_id=request.run_id,
                tenant_id=request.tenant_id,
                findings=request.findings,
            )
            session.commit()
        return summary

    @activity.defn(name=names.SELF_CHECK_DIGEST)
    def digest(self, request: DigestRequest) -> DigestResult:
        """The weekly digest to the tenant's Slack channel, once per week (the week's first
        run takes it). Without Slack it is skipped; either way the run records what happened."""
        with Session(self._engine) as session:
            config = config_of(tenancy.settings(session, request.tenant_id))
            zone = config.time_zone if config else "UTC"
            if not checks.claim_digest(
                session, tenant_id=request.tenant_id, run_id=request.run_id, zone=zone
            ):
                session.commit()
                return DigestResult(posted=False, detail="another run posted this week's digest")
            slack = tenants.for_tenant(session, request.tenant_id, self._slack)
            if slack is None or not slack.can_post:
                detail = "skipped: Slack is not configured"
                checks.set_digest(session, run_id=request.run_id, detail=detail)
                session.commit()
                return DigestResult(posted=False, detail=detail)
            message = checks.digest_text(
                session, tenant_id=request.tenant_id, run_id=request.run_id
            )
            session.commit()
        try:
            slack.client().chat_postMessage(channel=slack.channel, text=message)
            posted, detail = True, f"posted to {slack.channel}"
        except SlackApiError as err:
            # The digest is a summary, not an alert: recorded and given up, never retried.
            code = err.response.get("error") if isinstance(err.response.data, dict) else None
            posted, detail = False, f"failed: Slack answered {code or err.response.status_code}"
            log.warning("weekly self-check digest of %s: %s", request.tenant_id, detail)
        with Session(self._engine) as session:
            checks.set_digest(session, run_id=request.run_id, detail=detail)
            audit.append(
                session,
                tenant_id=request.tenant_id,
                actor="self-check",
                action="self_check.digest",
                subject=request.run_id,
                data={"posted": posted, "detail": detail},
            )
            session.commit()
        return DigestResult(posted=posted, detail=detail)
