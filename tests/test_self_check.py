"""Nightly self-checks (issue 21 part 3, docs/decisions/0018-self-checks.md).

The agent's probe and the control plane's plan are tested directly (ActivityEnvironment, no
server); drift on the real database; the whole path (settings → Temporal Schedule → workflow →
agent → findings → GET /runbooks/{id}, the health report, the Slack digest) on the Temporal dev
server, because the time-skipping test server does not implement Schedules (CreateSchedule is
"unimplemented" in temporal-test-server 1.40.0): a schedule's calendar is set a few seconds
ahead, to the second, and the test waits for it.
"""

from __future__ import annotations

import os
import shlex
import stat
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from agent_worker.commands import CommandActivities
from agent_worker.main import build_agent
from agent_worker.policy import AgentPolicy, load_policy
from agent_worker.selfcheck import SelfCheckProbes
from ddoc.contracts import names
from ddoc.contracts.selfcheck import (
    Finding,
    FindingKind,
    ProbeRun,
    RunbookProbe,
    SelfCheckInput,
    SelfCheckSummary,
    SelfCheckTarget,
    StepProbe,
    Trigger,
    manual_workflow_id,
    schedule_id,
    tenant_of_workflow_id,
    workflow_id,
)
from ddoc.contracts.settings import Settings
from ddoc.platform import tenancy
from ddoc.platform.tables import SelfCheckResult
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.parsing import parse_runbook
from ddoc.runbooks.parsing.parser import default_classifier
from ddoc.runbooks.risk import RuleSet, load_tenant_rules
from ddoc.runbooks.risk.tenant import RISK_RULES_KEY
from ddoc.selfcheck import config as self_check_config
from ddoc.selfcheck import probes
from ddoc.selfcheck import schedules as self_check_schedules
from ddoc.selfcheck import store as checks
from ddoc.slack.tenants import SlackConfig
from tests.conftest import Stack, eventually
from tests.fakes.slack import FakeSlack
from worker.main import ACTIVITY_THREADS, build_worker

AGENT = "agent-test (ddoc.agent.t.test)"


def probe_of(*steps: StepProbe, timeout: int = 10) -> RunbookProbe:
    return RunbookProbe("sc_test", "rb_test", 1, steps=list(steps), timeout_seconds=timeout)


async def run_probe(probe: RunbookProbe, policy: AgentPolicy | None = None) -> Any:
    probes_ = SelfCheckProbes(CommandActivities(policy=policy), agent=AGENT)
    return await ActivityEnvironment().run(probes_.probe, probe)


# -- the agent's probe ------------------------------------------------------------------------


async def test_a_program_missing_from_the_path_is_a_finding_naming_the_agent() -> None:
    report = await run_probe(
        probe_of(
            StepProbe("s1", "patronictl-sc-missing list", programs=["patronictl-sc-missing"]),
            StepProbe("s2", "ls /", programs=["ls"]),
        )
    )
    assert [(f.kind, f.step_id, f.message) for f in report.findings] == [
        (
            FindingKind.PROGRAM_MISSING,
            "s1",
            f"`patronictl-sc-missing` not found on agent {AGENT}",
        )
    ]
    assert report.ran == [] and report.agent == AGENT


async def test_the_agent_runs_only_what_the_run_field_says(tmp_path: Path) -> None:
    """No `run` (or an unknown one) runs nothing, whatever the command; `command` runs it."""
    made = {name: tmp_path / name for name in ("none", "bogus", "green")}
    report = await run_probe(
        probe_of(
            StepProbe("s1", f"touch {made['none']}", programs=["touch"]),
            StepProbe("s2", f"touch {made['bogus']}", programs=["touch"], run="yes-please"),
            StepProbe("s3", f"touch {made['green']}", programs=["touch"], run="command"),
        )
    )
    assert report.findings == [] and report.ran == ["s3"]
    assert not made["none"].exists() and not made["bogus"].exists() and made["green"].exists()


async def test_a_failing_read_only_command_reports_its_first_line() -> None:
    report = await run_probe(
        probe_of(
            StepProbe(
                "s1",
                "echo; echo 'namespace `checkout` does not exist' >&2; echo more; exit 3",
                run=ProbeRun.COMMAND.value,
            ),
            StepProbe("s2", "sleep 5", run=ProbeRun.COMMAND.value),
            timeout=1,
        )
    )
    assert [(f.kind, f.message) for f in report.findings] == [
        (FindingKind.COMMAND_FAILED, "command exited 3: namespace `checkout` does not exist"),
        (FindingKind.TIMED_OUT, "the command did not finish within 1s"),
    ]
    assert report.ran == ["s1", "s2"]


async def test_a_dry_run_runs_only_when_the_agent_derives_the_same_form(tmp_path: Path) -> None:
    bin_dir, log = fake_kubectl(tmp_path)
    path = f"{bin_dir}:{os.environ['PATH']}"
    command = "kubectl scale deploy web --replicas=3"
    commands = CommandActivities(base_env={**os.environ, "PATH": path})
    probes_ = SelfCheckProbes(commands, agent=AGENT)
    report = await ActivityEnvironment().run(
        probes_.probe,
        probe_of(
            # A form that is not the dry-run form of the command: refused, nothing runs.
            StepProbe("s1", command, ["kubectl"], ProbeRun.DRY_RUN.value, f"touch {tmp_path}/x"),
            StepProbe("s2", command, ["kubectl"], ProbeRun.DRY_RUN.value, None),
            StepProbe(
                "s3", command, ["kubectl"], ProbeRun.DRY_RUN.value, command + " --dry-run=server"
            ),
        ),
    )
    assert [(f.kind, f.step_id) for f in report.findings] == [
        (FindingKind.DRY_RUN_NOT_CONFIRMED, "s1"),
        (FindingKind.DRY_RUN_NOT_CONFIRMED, "s2"),
    ]
    assert report.ran == ["s3"] and not (tmp_path / "x").exists()
    assert log.read_text().splitlines() == ["scale deploy web --replicas=3 --dry-run=server"]


async def test_the_agent_policy_is_applied_to_every_step(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('deny: ["^rm "]\nallow: ["^(ls|rm) "]\n')
    policy = load_policy(policy_file, {})
    report = await run_probe(
        probe_of(
            StepProbe("s1", "rm -rf /tmp/nothing", ["rm"]),
            StepProbe("s2", "ls /", ["ls"], ProbeRun.COMMAND.value),
            StepProbe("s3", "cat /etc/hostname", ["cat"], ProbeRun.COMMAND.value),
        ),
        policy,
    )
    assert [(f.kind, f.step_id) for f in report.findings] == [
        (FindingKind.POLICY_DENIED, "s1"),
        (FindingKind.POLICY_DENIED, "s3"),
    ]
    assert "matches deny pattern '^rm '" in report.findings[0].message
    assert report.ran == ["s2"]


# -- the control plane's plan -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("patronictl -c /etc/patroni.yml list", ["patronictl"]),
        ('sudo -u postgres psql -c "select 1" | grep -c 1', ["sudo", "psql", "grep"]),
        ('kubectl get pods -n "${DDOC_VAR_NS}" && echo ok', ["kubectl"]),
        ("FOO=1 env A=b timeout 5 curl -s http://x", ["env", "timeout", "curl"]),
        ("echo $(jq .a f); ./fix.sh; /usr/bin/test -e x", ["/usr/bin/test", "jq"]),
        ("for h in a b; do ssh $h uptime; done", ["ssh"]),
        ("$TOOL --version; <service>-ctl status", []),
    ],
)
def test_the_programs_of_a_command_line(command: str, expected: list[str]) -> None:
    assert probes.programs(command) == expected


RUNBOOK = """---
labels:
  service: checkout
---
# Checkout is slow

1. Look at the pods:

   ```
   kubectl get pods -n $NAMESPACE
   ```

2. Check the marker:

   ```
   ls {green}
   ```

3. Touch the sentinel:

   ```
   touch {yellow}
   ```

4. Remove the directory:

   ```
   rm -rf {red}
   ```

5. Scale up:

   ```
   kubectl scale deploy web --replicas=3 -n checkout
   ```
"""


def test_the_plan_runs_only_green_steps_and_dry_run_forms_and_only_when_allowed() -> None:
    parsed = parse_runbook(
        RUNBOOK.format(green="/tmp/g", yellow="/tmp/y", red="/tmp/r"), "markdown"
    )
    plan = {allowed: plan_of(parsed, run_read_only=allowed) for allowed in (True, False)}
    runs = {s.step_id: (s.run, s.dry_run_command) for s in plan[True].probe.steps}
    assert runs == {
        "s1": ("none", None),  # $NAMESPACE has no value to check with
        "s2": ("command", None),
        "s3": ("none", None),
        "s4": ("none", None),
        "s5": ("dry_run", "kubectl scale deploy web --replicas=3 -n checkout --dry-run=server"),
    }
    assert {s.run for s in plan[False].probe.steps} == {"none"}
    assert [(f.kind, f.step_id, f.message) for f in plan[True].findings] == [
        (
            FindingKind.VARIABLE_UNRESOLVED,
            "s1",
            "variable $NAMESPACE has no value to check with (set self_check.values.namespace, "
            "or a label selector on the runbook)",
        )
    ]
    programs = [s.programs for s in plan[True].probe.steps]
    assert programs == [["kubectl"], ["ls"], ["touch"], ["rm"], ["kubectl"]]
    # A value to check with: the step renders and runs (read-only), the value travels as env.
    valued = plan_of(parsed, values={"NAMESPACE": "checkout"})
    first = valued.probe.steps[0]
    assert valued.findings == [] and first.run == "command"
    assert first.command == 'kubectl get pods -n "${DDOC_VAR_NAMESPACE}"'
    assert first.env == {"DDOC_VAR_NAMESPACE": "checkout"}


def test_a_tenant_rule_that_makes_a_green_step_yellow_stops_it_running() -> None:
    parsed = parse_runbook(RUNBOOK.format(green="/tmp/g", yellow="/y", red="/r"), "markdown")
    rules = load_tenant_rules(
        "rules:\n  - {id: t.ls, match: '^ls ', risk: yellow, reason: our ls is not read-only}\n"
    )
    assert plan_of(parsed, rules=rules).probe.steps[1].run == "none"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"time": "25:00", "environment": "prod"}, 'time must be "HH:MM"'),
        ({"time": "3am", "environment": "prod"}, 'time must be "HH:MM"'),
        ({"time": "03:00"}, "environment is required"),
        ({"environment": "prod", "time_zone": "Mars/Olympus"}, "time_zone must be an IANA"),
        ({"environment": "prod", "enabled": "yes"}, "enabled must be true or false"),
        ({"environment": "prod", "when": "03:00"}, "unknown key(s) when"),
        ({"environment": "prod", "values": {"ns": 1}}, "values must map"),
    ],
)
def test_bad_self_check_settings_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(self_check_config.SelfCheckSettingsError, match=_literal(message)):
        self_check_config.validate(raw)


def test_self_check_workflow_ids_name_their_tenant() -> None:
    assert schedule_id("acme-eu") == "ddoc-self-check-acme-eu"
    assert tenant_of_workflow_id(workflow_id("acme-eu") + "-2026-12-07T03:00:00Z") == "acme-eu"
    assert tenant_of_workflow_id(manual_workflow_id("acme-eu", "ab12")) == "acme-eu"
    assert tenant_of_workflow_id(workflow_id("acme")) == "acme"
    assert tenant_of_workflow_id("ex_0123") is None


# -- drift, on the database -------------------------------------------------------------------


def test_drift_keeps_the_first_failing_date_until_the_runbook_passes(engine: Engine) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    runbook_id = store_runbook(engine, tenant, RUNBOOK.format(green="/g", yellow="/y", red="/r"))
    start = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    failing = [Finding(FindingKind.PROGRAM_MISSING.value, "`x` not found on agent a", "s1")]
    info = [Finding(FindingKind.VARIABLE_UNRESOLVED.value, "no value", "s1")]
    seen = []
    for day, findings in enumerate([failing, info, failing, failing, info, failing]):
        at = start + timedelta(days=day)
        with Session(engine) as session:
            run_id = f"sc_{day}"
            checks.start_run(
                session,
                run_id=run_id,
                tenant_id=tenant,
                workflow_id=f"w{day}",
                trigger="schedule",
                environment="test",
                run_read_only=False,
                started_at=at,
            )
            recorded = checks.record(
                session,
                run_id=run_id,
                tenant_id=tenant,
                runbook_id=runbook_id,
                version=1,
                findings=findings,
                agent="a",
                now=at,
            )
            session.commit()
        seen.append((recorded.status, recorded.failing_since and recorded.failing_since[:10]))
    assert seen == [
        ("failed", "2026-12-07"),  # never passed: failing, not drifted
        ("passed", None),  # an informational finding does not fail it
        ("drifted", "2026-12-09"),
        ("drifted", "2026-12-09"),  # still failing: the first failing date is kept
        ("passed", None),
        ("drifted", "2026-12-12"),
    ]
    with Session(engine) as session:
        again = checks.record(
            session,
            run_id="sc_5",
            tenant_id=tenant,
            runbook_id=runbook_id,
            version=1,
            findings=[],
            agent="a",
        )
        assert again.status == "drifted"  # a retried record returns what was recorded
        shown = checks.latest(session, tenant_id=tenant, runbook_id=runbook_id)
    assert shown is not None and shown["status"] == "drifted"
    assert checks.quality_flags(shown, version=1) == [
        {
            "code": "drifted",
            "message": "self-check failing since 2026-12-12: `x` not found on agent a",
            "step_id": "s1",
        }
    ]
    assert checks.quality_flags(shown, version=2) == []  # another version was not checked


# -- the whole path, on the Temporal dev server -----------------------------------------------

MISSING_TOOL = "sc-missing-tool-7f3a"
SCHEDULED_RUNBOOK = f"""# Patroni failover check

1. Look at the cluster:

   ```
   {MISSING_TOOL} -c /etc/patroni.yml list
   ```

2. Look at the disk:

   ```
   ls /
   ```
"""


async def test_the_schedule_fires_at_the_configured_time_and_a_missing_program_is_flagged(
    stack: Stack,
) -> None:
    """Settings → the tenant's Temporal Schedule → SelfCheck at the set second → the agent's
    PATH check → GET /runbooks/{id} (self_check, quality flags), /self-checks, the health report.
    On the dev server: the time-skipping test server does not implement Schedules."""
    http, headers, tenant = stack.http, stack.api_headers(), stack.settings.tenant
    created = await http.post(
        "/runbooks",
        json={"content": SCHEDULED_RUNBOOK, "source_path": "patroni.md"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    runbook_id = created.json()["id"]
    assert (await http.get(f"/runbooks/{runbook_id}", headers=headers)).json()["self_check"] is None
    refused = await http.post("/self-checks", headers=headers)
    assert refused.status_code == 409 and "not configured" in refused.json()["detail"]

    for bad, message in [
        ({"time": "25:00", "environment": "test"}, 'invalid self_check: time must be "HH:MM"'),
        ({"time": "03:00"}, "invalid self_check: environment is required"),
    ]:
        for method in ("POST", "PATCH"):
            answer = await http.request(
                method, "/settings", json={"self_check": bad}, headers=headers
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"].startswith(message)

    at = datetime.now(UTC) + timedelta(seconds=8)
    saved = await http.post(
        "/settings",
        json={"self_check": {"time": at.strftime("%H:%M:%S"), "environment": "test"}},
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["self_check"] == {
        "enabled": True,
        "time": at.strftime("%H:%M:%S"),
        "time_zone": "UTC",
        "environment": "test",
        "run_read_only": False,
        "values": {},
    }
    described = await stack.client.get_schedule_handle(schedule_id(tenant)).describe()
    [calendar] = described.schedule.spec.calendars
    assert [(r.start, r.end) for r in calendar.hour] == [(at.hour, at.hour)]
    assert [(r.start, r.end) for r in calendar.minute] == [(at.minute, at.minute)]
    assert [(r.start, r.end) for r in calendar.second] == [(at.second, at.second)]
    assert described.schedule.spec.time_zone_name == "UTC"

    async def checked() -> dict[str, Any] | None:
        shown = (await http.get(f"/runbooks/{runbook_id}", headers=headers)).json()
        return shown if shown["self_check"] else None

    shown = await eventually(checked, within=45)
    check = shown["self_check"]
    assert check["status"] == "failed" and check["version"] == 1
    assert datetime.fromisoformat(check["last_run"]) >= at - timedelta(seconds=1)
    assert check["failing_since"] == check["last_run"]
    assert [(f["step_id"], f["kind"], f["failing"]) for f in check["findings"]] == [
        ("s1", "program_missing", True)
    ]
    message = check["findings"][0]["message"]
    assert message.startswith(f"`{MISSING_TOOL}` not found on agent ")
    assert f"(ddoc.agent.{tenant}.test)" in message
    flags = [f for f in shown["parsed"]["quality"]["flags"] if f["code"] == "self_check_failed"]
    assert flags == [
        {"code": "self_check_failed", "message": f"self-check: {message}", "step_id": "s1"}
    ]

    async def finished() -> dict[str, Any] | None:
        # The runbook's result is recorded before the run finishes (and takes the digest).
        [run] = (await http.get("/self-checks", headers=headers)).json()
        return run if run["finished_at"] and run["digest"] else None

    run = await eventually(finished)
    assert run["trigger"] == "schedule" and run["workflow_id"].startswith(workflow_id(tenant) + "-")
    assert (run["checked"], run["failing"], run["drifted"]) == (1, 1, 0)
    assert run["digest"] == "skipped: Slack is not configured"  # the week's first run
    health = (await http.get("/reports/health", headers=headers)).json()["self_check"]
    started = datetime.fromisoformat(run["started_at"]).astimezone(UTC)
    assert health["line"] == (
        f"self-check: 1 runbooks checked at {started:%Y-%m-%d %H:%M} UTC, 1 failing, 0 drifted"
    )
    page = await http.get("/ui/health", headers=headers)
    assert page.status_code == 200 and health["line"] in page.text

    # Run now (an SRE trying it out): the same workflow, started at once.
    started = await http.post("/self-checks", headers=headers)
    assert started.status_code == 202, started.text
    assert started.json()["workflow_id"].startswith(workflow_id(tenant) + ".manual-")

    async def both() -> list[dict[str, Any]] | None:
        runs = (await http.get("/self-checks", headers=headers)).json()
        return runs if len(runs) == 2 and all(r["finished_at"] for r in runs) else None

    manual, scheduled = await eventually(both)
    assert (manual["trigger"], manual["checked"], manual["failing"]) == ("manual", 1, 1)
    assert manual["digest"] is None and scheduled["run_id"] == run["run_id"]

    # Turned off: the schedule is deleted.
    off = await http.patch(
        "/settings",
        json={"self_check": {"enabled": False, "environment": "test"}},
        headers=headers,
    )
    assert off.status_code == 200
    with pytest.raises(RPCError) as gone:
        await stack.client.get_schedule_handle(schedule_id(tenant)).describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND


async def test_a_worker_at_start_brings_the_schedules_in_line_with_the_settings(
    temporal_env: WorkflowEnvironment, engine: Engine, settings: Settings
) -> None:
    """For a settings change whose sync did not reach Temporal (the API answered 503)."""
    client, tenant = temporal_env.client, settings.tenant
    handle = client.get_schedule_handle(schedule_id(tenant))
    set_tenant(engine, tenant, environment="prod-eu")

    async def reconcile() -> dict[str, str]:
        return dict(
            await self_check_schedules.reconcile(
                client,
                engine,
                task_queue=settings.control_task_queue,
                agent_offline_timeout_seconds=5,
            )
        )

    assert await reconcile() == {tenant: "created"}
    described = await handle.describe()
    assert described.schedule.spec.time_zone_name == "UTC"
    assert [(r.start, r.end) for r in described.schedule.spec.calendars[0].hour] == [(3, 3)]
    assert await reconcile() == {tenant: "updated"}
    with Session(engine) as session:
        tenancy.update_settings(
            session,
            tenant_id=tenant,
            changes={"self_check": {**stored_check(engine, tenant), "enabled": False}},
            actor="test",
        )
        session.commit()
    assert await reconcile() == {tenant: "deleted"}
    assert await reconcile() == {tenant: "absent"}


def mixed_runbook(tmp_path: Path) -> str:
    return f"""# Mixed risks

1. Read-only, by the tenant's rule:

   ```bash
   sc-green-probe {tmp_path / "green-ran"}
   ```

2. A reversible change:

   ```
   touch {tmp_path / "yellow-ran"}
   ```

3. A destructive one:

   ```
   rm -rf {tmp_path / "keep"}
   ```

4. A change with a dry-run form:

   ```
   kubectl scale deploy web --replicas=3
   ```
"""


GREEN_PROBE_RULES = """rules:
  - id: test.green-probe
    match: "^sc-green-probe "
    risk: green
    reason: the test's read-only probe (it only leaves a sentinel)
"""


async def test_a_self_check_never_runs_a_yellow_or_red_command(
    temporal_env: WorkflowEnvironment, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """Yellow `touch` and red `rm -rf` never run; the green step runs only with run_read_only
    (its own sentinel), and the yellow kubectl step only in its dry-run form."""
    bin_dir, kubectl_log = fake_kubectl(tmp_path)
    probe_script = bin_dir / "sc-green-probe"
    probe_script.write_text('#!/bin/sh\ntouch "$1"\n')
    probe_script.chmod(0o755)
    (tmp_path / "keep").mkdir()
    rules = load_tenant_rules(GREEN_PROBE_RULES)
    runbook_id = store_runbook(engine, settings.tenant, mixed_runbook(tmp_path), rules=rules)
    parsed = runbooks_version(engine, settings.tenant, runbook_id)
    assert [s["risk"] for s in parsed["steps"]] == ["green", "yellow", "red", "yellow"]
    set_tenant(engine, settings.tenant, risk_rules=GREEN_PROBE_RULES, run_read_only=False)

    async with workers(temporal_env.client, engine, settings, path=bin_dir):
        off = await check_now(temporal_env.client, settings)
        assert (off.checked, off.failing, off.drifted, off.findings) == (1, 0, 0, [])
        assert not (tmp_path / "green-ran").exists() and not kubectl_log.exists()

        set_tenant(engine, settings.tenant, run_read_only=True)
        on = await check_now(temporal_env.client, settings)
        assert (on.checked, on.failing, on.drifted) == (1, 0, 0)
    assert (tmp_path / "green-ran").exists()
    ran = kubectl_log.read_text().splitlines()
    assert ran == ["scale deploy web --replicas=3 --dry-run=server"]
    assert not (tmp_path / "yellow-ran").exists()
    assert (tmp_path / "keep").is_dir()


async def test_a_runbook_that_passed_then_fails_is_drifted_until_it_passes_again(
    temporal_env: WorkflowEnvironment, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "namespace-checkout"
    marker.write_text("")
    runbook_id = store_runbook(
        engine, settings.tenant, f"# Checkout namespace\n\n1. Look: `ls {marker}`\n"
    )
    set_tenant(engine, settings.tenant, run_read_only=True)
    seen = []
    async with workers(temporal_env.client, engine, settings):
        for present in (True, False, False, True):
            if present:
                marker.write_text("")
            else:
                marker.unlink(missing_ok=True)
            summary = await check_now(temporal_env.client, settings)
            with Session(engine) as session:
                latest = checks.latest(session, tenant_id=settings.tenant, runbook_id=runbook_id)
            assert latest is not None
            seen.append(
                (summary.failing, summary.drifted, latest["status"], latest["failing_since"])
            )
    first_failure = seen[1][3]
    assert first_failure is not None
    assert seen == [
        (0, 0, "passed", None),
        (0, 1, "drifted", first_failure),
        (0, 1, "drifted", first_failure),  # the first failing date is kept
        (0, 0, "passed", None),
    ]
    second_run = checks_run_ids(engine, settings.tenant)[1]
    with Session(engine) as session:
        failed = session.get(SelfCheckResult, (second_run, runbook_id))
    assert failed is not None
    [finding] = failed.findings
    assert finding["kind"] == "command_failed" and finding["step_id"] == "s1"
    assert finding["message"].startswith("command exited 2: ls: cannot access")


async def test_an_offline_agent_is_a_finding_of_the_run_not_a_hang(
    temporal_env: WorkflowEnvironment, engine: Engine, settings: Settings
) -> None:
    store_runbook(engine, settings.tenant, "# Disk\n\n1. Look: `df -h`\n")
    set_tenant(engine, settings.tenant, environment="nowhere")
    async with workers(temporal_env.client, engine, settings):  # no agent polls "nowhere"
        summary = await check_now(temporal_env.client, settings, offline_seconds=2)
    assert summary.checked == 0
    assert [(f.kind, f.message.split(":")[0]) for f in summary.findings] == [
        ("agent_offline", "agent offline for environment nowhere")
    ]
    with Session(engine) as session:
        [run] = checks.runs(session, tenant_id=settings.tenant)
        line = checks.summary(session, tenant_id=settings.tenant)
    assert run["findings"][0]["kind"] == "agent_offline" and run["finished_at"] is not None
    assert line is not None and line["findings"] == run["findings"]


async def test_the_weekly_digest_goes_to_the_tenants_slack_once_a_week(
    temporal_env: WorkflowEnvironment, engine: Engine, settings: Settings
) -> None:
    tooling = f"# Tooling\n\n1. Look:\n\n   ```bash\n   {MISSING_TOOL} status\n   ```\n"
    store_runbook(engine, settings.tenant, tooling)
    set_tenant(engine, settings.tenant)
    with FakeSlack() as slack:
        config = SlackConfig(
            tenant_id=settings.tenant,
            bot_token=slack.bot_token,
            channel="C0SELFCHECK",
            api_url=slack.base_url,
        )
        async with workers(temporal_env.client, engine, settings, slack=config):
            first = await check_now(temporal_env.client, settings)
            second = await check_now(temporal_env.client, settings)
        posts = slack.calls_to("chat.postMessage")
    assert first.digest == "posted to C0SELFCHECK" and second.digest is None
    [post] = posts
    assert post["channel"] == "C0SELFCHECK"
    lines = post["text"].splitlines()
    assert lines[0].startswith("*Weekly runbook self-check* (test): 1 runbooks checked at ")
    assert lines[0].endswith(", 1 failing, 0 drifted")
    assert lines[1].startswith("• Tooling (") and f"`{MISSING_TOOL}` not found" in lines[1]


# -- helpers ----------------------------------------------------------------------------------


def plan_of(
    parsed: ParsedRunbook,
    *,
    values: dict[str, str] | None = None,
    rules: RuleSet | None = None,
    run_read_only: bool = True,
) -> SelfCheckTarget:
    return probes.target(
        parsed,
        run_id="sc_x",
        runbook_id="rb_x",
        version=1,
        values=values or {},
        rules=rules,
        run_read_only=run_read_only,
        timeout_seconds=30,
    )


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def store_runbook(
    engine: Engine,
    tenant_id: str,
    content: str,
    path: str = "rb.md",
    rules: RuleSet | None = None,
) -> str:
    """A runbook parsed (with the tenant's rules) and stored as the API would, not embedded."""
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant_id)
        session.commit()
    parsed = parse_runbook(
        content, "markdown", source_path=path, classify=default_classifier(rules)
    )
    saved = runbooks.store(
        engine,
        tenant_id=tenant_id,
        content=content,
        fmt="markdown",
        parsed=parsed,
        source_path=path,
        actor="test",
    )
    return saved.runbook.id


def runbooks_version(engine: Engine, tenant_id: str, runbook_id: str) -> dict[str, Any]:
    with Session(engine) as session:
        return dict(runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook_id).parsed)


def set_tenant(
    engine: Engine,
    tenant_id: str,
    *,
    environment: str = "test",
    run_read_only: bool = False,
    risk_rules: str | None = None,
) -> None:
    """The tenant's self_check setting (and risk rules), stored as the settings API does."""
    changes: dict[str, Any] = {
        "self_check": self_check_config.validate(
            {"environment": environment, "run_read_only": run_read_only}
        )
    }
    if risk_rules is not None:
        changes[RISK_RULES_KEY] = risk_rules
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant_id)
        tenancy.update_settings(session, tenant_id=tenant_id, changes=changes, actor="test")
        session.commit()


def stored_check(engine: Engine, tenant_id: str) -> dict[str, Any]:
    with Session(engine) as session:
        return dict(tenancy.settings(session, tenant_id)["self_check"])


def checks_run_ids(engine: Engine, tenant_id: str) -> list[str]:
    """The tenant's self-check runs, oldest first."""
    with Session(engine) as session:
        return [r["run_id"] for r in reversed(checks.runs(session, tenant_id=tenant_id))]


@asynccontextmanager
async def workers(
    client: Client,
    engine: Engine,
    settings: Settings,
    *,
    path: Path | None = None,
    slack: SlackConfig | None = None,
) -> AsyncIterator[None]:
    """The control-plane worker and the tenant's agent for environment `test` (with `path`
    first on its commands' PATH)."""
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = f"{path}:{env['PATH']}"
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        control = build_worker(
            client, engine, task_queue=settings.control_task_queue, executor=executor, slack=slack
        )
        agent = build_agent(
            client,
            tenant_id=settings.tenant,
            environment="test",
            commands=CommandActivities(base_env=env),
        )
        async with control, agent:
            yield


async def check_now(
    client: Client, settings: Settings, *, offline_seconds: int = 20
) -> SelfCheckSummary:
    """One self-check run, started by hand, to its end."""
    return await client.execute_workflow(
        names.SELF_CHECK_WORKFLOW,
        SelfCheckInput(settings.tenant, Trigger.MANUAL.value, offline_seconds),
        id=manual_workflow_id(settings.tenant, uuid.uuid4().hex[:12]),
        task_queue=settings.control_task_queue,
        result_type=SelfCheckSummary,
        execution_timeout=timedelta(minutes=2),
    )


def fake_kubectl(tmp_path: Path) -> tuple[Path, Path]:
    """A `kubectl` that only writes its arguments to a log."""
    bin_dir, log = tmp_path / "bin", tmp_path / "kubectl.log"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "kubectl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir, log
