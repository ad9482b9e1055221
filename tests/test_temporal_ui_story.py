"""The Temporal UI tells the same story as the product: activity and timer summaries name the
step and its command, the workflow's current details list the steps with their statuses, and
the static summary names the runbook and the mode (workflows/execution/story.py).

On the dev server with the real API, control-plane worker and agent; the rendering itself
without a server."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ddoc.contracts.execution import (
    Awaiting,
    AwaitKind,
    DecisionKind,
    EscalationLevel,
    ExecutionEvent,
    ExecutionStatus,
    ExecutionStatusUpdate,
    RiskClass,
    StepRecord,
    StepState,
    StepStatus,
    TrailOp,
)
from ddoc.platform import tenancy
from tests.conftest import Stack, eventually
from tests.engine_harness import RESPONDER, alert, cmd, policy, running
from tests.fakes.pagerduty import FakePagerDuty
from workflows.execution import story


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Commands are cut at 80 characters in the Temporal UI: the test's own stay shorter, however
    deep pytest's temporary directory is."""
    found = Path(tempfile.mkdtemp(prefix="ddoc-ui-"))
    yield found
    shutil.rmtree(found, ignore_errors=True)


RUNBOOK = """---
title: Restart the api
---
# Restart the api

1. Look at the pods: `echo pods are crash-looping`
2. Restart them: `touch {marker}`
"""

# -- what the Temporal UI shows of a real execution ------------------------------------------

LOCAL_ACTIVITY_MARKER = "core_local_activity"  # how the SDK records a local activity


async def summaries(client: Client, handle: WorkflowHandle[Any, Any]) -> dict[str, list[str]]:
    """Each kind of history event that carries a summary: its summaries, in order (decoded as
    the Temporal UI decodes them: the client's codec, then its payload converter)."""
    history = await handle.fetch_history()
    found: dict[str, list[str]] = {}
    for event in history.events:
        kind = _kind(event)
        if kind is None:
            continue
        found.setdefault(kind, [])
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
            found[kind].append(await _text(client, event.user_metadata.summary))
        else:
            found[kind].append("")  # a scheduled activity or timer without a summary
    return found


def _kind(event: HistoryEvent) -> str | None:
    if event.HasField("activity_task_scheduled_event_attributes"):
        return "activity_task_scheduled"
    if event.HasField("timer_started_event_attributes"):
        return "timer_started"
    if event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER:
        return "local_activity"  # a patch's marker is no activity: it has no summary
    return None


async def _text(client: Client, payload: Payload) -> str:
    converter = client.data_converter
    [text] = await converter.decode([payload], [str])
    assert isinstance(text, str)
    return text


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


def new_key(engine: Engine, tenant_id: str) -> dict[str, str]:
    with Session(engine) as session:
        _, key = tenancy.create_api_key(
            session, tenant_id=tenant_id, name="second", roles=["responder"]
        )
        session.commit()
    return {"Authorization": f"Bearer {key}"}


async def test_the_temporal_ui_tells_the_execution_s_story(
    stack: Stack, engine: Engine, short_dir: Path
) -> None:
    marker, edited = short_dir / "restarted", short_dir / "restarted-by-hand"
    headers = stack.api_headers()
    runbook = await stack.http.post(
        "/runbooks", json={"content": RUNBOOK.format(marker=marker)}, headers=headers
    )
    assert runbook.status_code == 201, runbook.text
    started = await stack.http.post(
        "/executions", json={"runbook_id": runbook.json()["id"]}, headers=headers
    )
    assert started.status_code == 201, started.text
    execution_id = started.json()["id"]
    url = f"/executions/{execution_id}"

    async def awaiting_with_deadline() -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(url, headers=headers)).json()
        steps = body["steps"]
        waits = steps[1].get("awaiting") if len(steps) > 1 else None
        return body if waits and waits.get("deadline") else None

    await eventually(awaiting_with_deadline)
    handle = stack.client.get_workflow_handle(execution_id)

    # The start: what the execution is, at a glance.
    described = await handle.describe()
    assert await described.static_summary() == "Restart the api · copilot · started by hand"
    assert "environment: test" in (await described.static_details() or "")

    # The walk so far: s1 ran by itself, s2 waits for an approval, with a timer that says so.
    seen = await summaries(stack.client, handle)
    assert seen["activity_task_scheduled"] == ["s1 · run: echo pods are crash-looping"]
    [timer] = seen["timer_started"]
    assert timer.startswith("s2 awaits approval (yellow) · ")
    assert " at " in timer and timer.endswith(" UTC")  # stalls or escalates at its deadline
    # The trail's writes (local activities, recorded as markers) say what they record.
    assert seen["local_activity"] == [
        "s1 · record: running, execution running",
        "s1 · record: succeeded",
        "s2 · record: awaiting_approval, execution awaiting_human",
    ]
    details = (await current_details(handle)).splitlines()
    assert details[0] == "**Restart the api** v1 · copilot · awaiting human"
    assert details[1] == "- `s1` ✓ succeeded · `echo pods are crash-looping`"
    assert details[2].startswith(f"- `s2` ⏸ awaiting approval (yellow) · `touch {marker}`")
    assert " · deadline " in details[2]

    # An edit is classified, then approved by someone else, then run.
    edit = await stack.http.post(
        f"{url}/decisions",
        json={"step_id": "s2", "decision": "edit", "command": f"touch {edited}"},
        headers=headers,
    )
    assert edit.status_code == 202, edit.text

    async def edited_awaits() -> bool:
        return f"`touch {edited}`" in await current_details(handle)

    await eventually(edited_awaits)
    approve = await stack.http.post(
        f"{url}/decisions",
        json={"step_id": "s2", "decision": "approve"},
        headers=new_key(engine, stack.settings.tenant),
    )
    assert approve.status_code == 202, approve.text
    await handle.result()
    assert edited.exists() and not marker.exists()

    seen = await summaries(stack.client, handle)
    assert seen["activity_task_scheduled"] == [
        "s1 · run: echo pods are crash-looping",
        f"classify edited command of s2: touch {edited}",
        f"s2 · run: touch {edited}",
    ]
    assert all(s.startswith("s2 awaits approval (yellow) · ") for s in seen["timer_started"])
    assert len(seen["timer_started"]) == 2  # before the edit, and after it
    assert seen["local_activity"] == [
        "s1 · record: running, execution running",
        "s1 · record: succeeded",
        "s2 · record: awaiting_approval, execution awaiting_human",
        "s2 · record: awaiting_approval",  # again, for the edited command
        "s2 · record: running, execution running",
        "s2 · record: succeeded",
        "record: execution succeeded",
        "after execution (succeeded): learning, trust demotion",
    ]
    assert await current_details(handle) == "\n".join(
        [
            "**Restart the api** v1 · copilot · succeeded",
            "- `s1` ✓ succeeded · `echo pods are crash-looping`",
            f"- `s2` ✓ succeeded · `touch {edited}`",
        ]
    )


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


async def test_escalation_and_incident_timers_say_what_they_wait_for(
    temporal_env: WorkflowEnvironment, engine: Engine, pagerduty: FakePagerDuty
) -> None:
    """A wait that runs out pages the next level: its timer said so, and the page names the
    step; the incident's watch says what it waits for too."""
    async with running(temporal_env.client, engine, pagerduty_url=pagerduty.url) as h:
        run = await h.start(
            cmd("s1", "echo looked", "green"),
            cmd("s2", "kubectl rollout restart deploy/api " + "-x " * 40, "yellow"),
            alert_context=alert(severity="critical"),
            execution_policy=policy(
                wait_seconds={"critical": 2},
                escalation_levels=[EscalationLevel("L2 platform")],
                incident_timeout_seconds=3600,
            ),
        )
        await run.until(lambda s: s.status == ExecutionStatus.STALLED, within=60)
        seen = await summaries(h.client, run.handle)
        assert seen["activity_task_scheduled"] == [
            "s1 · run: echo looked",
            "page escalation level 1 (L2 platform) for s2",
        ]
        incident, first, second = seen["timer_started"]
        assert incident.startswith(
            "incident “DiskFull on web-1” · pages level 1 (L2 platform) if not resolved by "
        )
        assert incident.endswith(" UTC (60 min)")
        assert first.startswith(
            "s2 awaits approval (yellow) · escalates to level 1 (L2 platform) at "
        )
        assert second.startswith("s2 awaits approval (yellow) · stalls at ")
        assert all(len(s) < 300 for summary in seen.values() for s in summary)
        details = await current_details(run.handle)
        assert "· stalled" in details.splitlines()[0]
        [waiting] = [line for line in details.splitlines() if line.startswith("- `s2`")]
        assert waiting.startswith(
            "- `s2` ⏸ awaiting approval (yellow) · `kubectl rollout restart deploy/api -x -x"
        )
        assert "…` · level 1 paged" in waiting  # the command cut short
        await run.decide("s2", DecisionKind.SKIP, RESPONDER)
        await run.until(lambda s: s.steps[1].status == StepStatus.SKIPPED)
        await run.handle.terminate("the test is over")


# -- the rendering, without a server ---------------------------------------------------------


def test_short_keeps_one_line_and_cuts_with_an_ellipsis() -> None:
    assert story.short("kubectl get pods\n  -n shop") == "kubectl get pods -n shop"
    long = "x" * 200
    assert story.short(long) == "x" * 79 + "…" and len(story.short(long)) == 80
    assert story.short(None) == ""


def test_activity_summaries_name_the_step_and_its_command() -> None:
    assert (
        story.command_summary("s3", "kubectl rollout restart deploy/api")
        == "s3 · run: kubectl rollout restart deploy/api"
    )
    assert story.command_summary("s3", "kubectl apply --dry-run=server", dry=True) == (
        "s3 · dry run: kubectl apply --dry-run=server"
    )
    assert story.command_summary("s3-undo", "kubectl rollout undo", undoes="s3") == (
        "s3-undo · undo s3: kubectl rollout undo"
    )
    cut = story.command_summary("s1", "echo " + "a" * 500)
    assert cut.endswith("…") and len(cut) < 100
    assert story.classify_summary("s3", "rm -rf /x") == "classify edited command of s3: rm -rf /x"
    assert story.escalation_summary(1, "L2 platform", "s3") == (
        "page escalation level 1 (L2 platform) for s3"
    )
    assert story.escalation_summary(1, "L2", None) == (
        "page escalation level 1 (L2) for the unresolved incident"
    )
    assert story.after_execution_summary(ExecutionStatus.FAILED) == (
        "after execution (failed): learning, trust demotion"
    )


def record(step_id: str, status: StepStatus, event: str | None = None) -> StepRecord:
    return StepRecord(execution_id="ex", tenant_id="t", step_id=step_id, status=status, event=event)


def test_a_trail_write_says_which_steps_and_transitions_it_records() -> None:
    update = ExecutionStatusUpdate("ex", "t", ExecutionStatus.AWAITING_HUMAN, "s3")
    awaiting = record("s3", StepStatus.AWAITING_APPROVAL, "step.awaiting_approval")
    assert story.trail_summary([TrailOp(step=awaiting)]) == "s3 · record: awaiting_approval"
    assert story.trail_summary([TrailOp(step=awaiting, status=update)]) == (
        "s3 · record: awaiting_approval, execution awaiting_human"
    )
    assert story.trail_summary(
        [
            TrailOp(step=record("s1", StepStatus.SUCCEEDED)),
            TrailOp(step=record("s2", StepStatus.RUNNING)),
        ]
    ) == ("record: s1 succeeded, s2 running")
    offline = record("s2", StepStatus.PENDING, "step.agent_offline")
    escalated = ExecutionEvent("ex", "t", "escalated", "s2")
    assert story.trail_summary([TrailOp(step=offline), TrailOp(event=escalated)]) == (
        "s2 · record: agent_offline, escalated"
    )
    running = ExecutionStatusUpdate("ex", "t", ExecutionStatus.RUNNING)
    assert story.trail_summary([TrailOp(status=running)]) == "record: execution running"
    # Many steps closed at once: as many as fit, then how many more.
    closed = [TrailOp(step=record(f"s{i}", StepStatus.SKIPPED)) for i in range(1, 60)]
    many = story.trail_summary(closed)
    assert many.startswith("record: s1 skipped, s2 skipped, ")
    assert many.endswith(" more") and len(many) <= story.SUMMARY_CHARS


def test_timers_say_what_they_wait_for_and_what_their_end_does() -> None:
    at = datetime(2026, 5, 1, 12, 5, tzinfo=UTC)
    approval = Awaiting(kind=AwaitKind.APPROVAL, allowed=["approve"], message="")
    assert (
        story.wait_summary(
            "s3", approval, RiskClass.YELLOW, deadline=at, level=1, level_name="L2 platform"
        )
        == "s3 awaits approval (yellow) · escalates to level 1 (L2 platform) at 12:05:00 UTC"
    )
    values = Awaiting(kind=AwaitKind.VALUES, allowed=[], message="", missing=["POD", "NS"])
    assert story.wait_summary("s2", values, None, deadline=at, level=3, level_name=None) == (
        "s2 awaits values: POD, NS · stalls at 12:05:00 UTC"
    )
    assert story.incident_summary("DiskFull", 3600, deadline=at, level_name="L2") == (
        "incident “DiskFull” · pages level 1 (L2) if not resolved by 12:05:00 UTC (60 min)"
    )


def step(step_id: str, status: StepStatus, **fields: Any) -> StepState:
    return StepState(
        **{"step_id": step_id, "kind": "command", "text": "", "status": status, **fields}
    )


def test_current_details_list_the_steps_with_their_statuses() -> None:
    waits = Awaiting(
        kind=AwaitKind.APPROVAL,
        allowed=["approve"],
        message="",
        approvals_needed=2,
        approved_by=["u_ana"],
        deadline="2026-05-01T12:05:00+00:00",
        escalation_level=1,
    )
    steps = [
        step("s1", StepStatus.SUCCEEDED, command="kubectl get pods", risk=RiskClass.GREEN),
        step("s2", StepStatus.FAILED, command="kubectl top pods", exit_code=1),
        step(
            "s3",
            StepStatus.AWAITING_APPROVAL,
            command="kubectl rollout restart deploy/api",
            risk=RiskClass.RED,
            awaiting=waits,
        ),
        step("s4", StepStatus.PENDING, kind="manual", text="Check the dashboard"),
        step("s5", StepStatus.SKIPPED, command="echo `date`", detail="skipped by Rita"),
        step("s6", StepStatus.SUCCEEDED, command="kubectl apply --dry-run=server", dry_run=True),
    ]
    shown = story.details(
        title="Restart api",
        version=3,
        mode="copilot",
        status=ExecutionStatus.AWAITING_HUMAN,
        steps=steps,
    )
    assert shown.splitlines() == [
        "**Restart api** v3 · copilot · awaiting human",
        "- `s1` ✓ succeeded · `kubectl get pods`",
        "- `s2` ✗ failed · `kubectl top pods` · exit 1",
        "- `s3` ⏸ awaiting approval (red) · `kubectl rollout restart deploy/api` · "
        "1 of 2 approvals · level 1 paged · deadline 12:05:00 UTC",
        "- `s4` ○ pending · Check the dashboard",
        "- `s5` ↷ skipped · echo `date` · skipped by Rita",
        "- `s6` ✓ succeeded (dry run) · `kubectl apply --dry-run=server`",
    ]
    unknown = step(
        "s7",
        StepStatus.UNKNOWN,
        command="kubectl delete pod x",
        risk=RiskClass.RED,
        awaiting=Awaiting(kind=AwaitKind.OUTCOME, allowed=[], message=""),
    )
    assert story.step_line(unknown) == (
        "- `s7` ⏸ outcome unknown, awaiting a human · `kubectl delete pod x`"
    )


def test_current_details_stay_bounded() -> None:
    steps = [step(f"s{i}", StepStatus.PENDING, command="echo " + "y" * 300) for i in range(500)]
    shown = story.details(
        title="Big", version=1, mode="copilot", status=ExecutionStatus.RUNNING, steps=steps
    )
    assert len(shown) <= story.DETAILS_CHARS
    assert shown.splitlines()[-1].endswith(" more steps")
