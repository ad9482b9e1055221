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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.testing import ActivityEnvironment

from agent_worker.commands import CommandActivities
from agent_worker.policy import AgentPolicy, load_policy
from agent_worker.selfcheck import SelfCheckProbes
from ddoc.contracts.selfcheck import (
    Finding,
    FindingKind,
    ProbeRun,
    RunbookProbe,
    SelfCheckTarget,
    StepProbe,
    manual_workflow_id,
    schedule_id,
    tenant_of_workflow_id,
    workflow_id,
)
from ddoc.platform import tenancy
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.parsing import parse_runbook
from ddoc.runbooks.risk import RuleSet, load_tenant_rules
from ddoc.selfcheck import config as self_check_config
from ddoc.selfcheck import probes
from ddoc.selfcheck import store as checks

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


def store_runbook(engine: Engine, tenant_id: str, content: str, path: str = "rb.md") -> str:
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant_id)
        session.commit()
    saved = runbooks.store(
        engine,
        tenant_id=tenant_id,
        content=content,
        fmt="markdown",
        parsed=parse_runbook(content, "markdown", source_path=path),
        source_path=path,
        actor="test",
    )
    return saved.runbook.id


def fake_kubectl(tmp_path: Path) -> tuple[Path, Path]:
    """A `kubectl` that only writes its arguments to a log."""
    bin_dir, log = tmp_path / "bin", tmp_path / "kubectl.log"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "kubectl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir, log
