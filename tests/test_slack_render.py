"""Slack rendering of an execution: blocks, buttons, limits, escaping (pure functions)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ddoc.alerts.views import IncidentView
from ddoc.contracts.execution import AwaitKind, DecisionKind, StepStatus
from ddoc.execution.views import (
    AwaitingView,
    DecisionView,
    ExecutionEventView,
    ExecutionView,
    StepView,
)
from ddoc.slack import render
from ddoc.slack.inbound import ACTION_PREFIX

ENTITY = re.compile(r"&(?:amp|lt|gt);")


def step(step_id: str, **fields: Any) -> StepView:
    """A step as `ddoc.execution.live.merge` / `ddoc.execution.store.trail` return it."""
    return StepView.model_validate(
        {
            "id": step_id,
            "kind": "command",
            "text": f"Do {step_id}",
            "status": "pending",
            "command": f"echo {step_id}",
            "risk": "green",
            "exit_code": None,
            "output": None,
            "output_truncated": False,
            "detail": None,
            "started_at": None,
            "finished_at": None,
            "undoes": None,
            "edited_by": None,
            "dry_run": False,
            "decisions": [],
            "awaiting": None,
            **fields,
        }
    )


def awaiting(**fields: Any) -> AwaitingView:
    return AwaitingView.model_validate(
        {
            "kind": "approval",
            "allowed": ["approve", "reject", "skip", "edit"],
            "message": "red step: needs 2 approvals from an approver",
            "role": "approver",
            "approvals_needed": 2,
            "approved_by": ["ana"],
            "missing": [],
            "branches": [],
            "deadline": "2024-05-01T10:10:00+00:00",
            "escalation_level": 0,
            **fields,
        }
    )


def decision(kind: str, who: str, **fields: Any) -> DecisionView:
    return DecisionView.model_validate(
        {
            "decision": kind,
            "user_id": f"usr_{who.lower()}",
            "display_name": who,
            "source": "slack",
            "at": "2024-05-01T10:03:00+00:00",
            "accepted": True,
            "reason": None,
            "command": None,
            "branch": None,
            "comment": None,
            **fields,
        }
    )


def execution(steps: list[StepView], **fields: Any) -> ExecutionView:
    return ExecutionView.model_validate(
        {
            "id": "exe_01",
            "workflow_id": "exe_01",
            "status": "awaiting_human",
            "mode": "copilot",
            "runbook_id": "rb_disk",
            "runbook_version": 3,
            "incident_id": "inc_01",
            "environment": "prod",
            "started_by": "alert",
            "created_at": "2024-05-01T10:00:00+00:00",
            "finished_at": None,
            "current_step": None,
            "steps": steps,
            "alert_resolved": False,
            "incident_escalated": False,
            "escalations": [],
            "live": True,
            **fields,
        }
    )


def incident(**fields: Any) -> IncidentView:
    """An incident as `ddoc.alerts.incidents.incident_view` returns it."""
    return IncidentView.model_validate(
        {
            "id": "inc_01",
            "status": "open",
            "title": "DiskAlmostFull on web-3",
            "source": "alertmanager",
            "dedup_key": "dk_01",
            "service": None,
            "severity": None,
            "environment": None,
            "alert_count": 1,
            "match_status": "attached",
            "runbook_id": None,
            "runbook_version": None,
            "execution_id": None,
            "opened_at": "2024-05-01T10:00:00+00:00",
            "last_seen_at": "2024-05-01T10:00:00+00:00",
            "resolved_at": None,
            "labels": {},
            "annotations": {},
            "match": None,
            "fingerprint": None,
            "keys": [],
            "alerts": [],
            **fields,
        }
    )


def event(kind: str, step_id: str | None, data: dict[str, Any]) -> ExecutionEventView:
    """An execution event as `ddoc.execution.store.events` returns it."""
    return ExecutionEventView(
        id=1, at="2024-05-01T10:05:00+00:00", type=kind, step_id=step_id, data=data
    )


def waiting_execution() -> ExecutionView:
    return execution(
        [
            step("s1", status="succeeded", exit_code=0, output="usage 92%", risk="green"),
            step("s2", status="awaiting_approval", risk="red", awaiting=awaiting()),
            step("s3", risk="yellow"),
            step("s4", kind="manual", command=None, risk=None),
        ],
        current_step="s2",
    )


INCIDENT = incident(
    title="DiskAlmostFull on web-3",
    service="web",
    severity="critical",
    source="alertmanager",
    match_status="attached",
    match={
        "status": "attached",
        "candidates": [],
        "attached": {
            "runbook_id": "rb_disk",
            "title": "Disk almost full",
            "score": 0.93,
            "reasons": ["declares alert 'DiskAlmostFull' in its triggers"],
        },
    },
)


def changed(ex: ExecutionView, **fields: Any) -> ExecutionView:
    return ExecutionView.model_validate({**ex.model_dump(), **fields})


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def by_action(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {b["action_id"]: b for b in buttons(blocks)}


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> Iterator[str]:
    for block in blocks:
        if block["type"] == "section":
            yield block["text"]["text"]
        elif block["type"] == "context":
            yield from (e["text"] for e in block["elements"] if e["type"] == "mrkdwn")


def plain_texts(blocks: list[dict[str, Any]]) -> Iterator[str]:
    for block in blocks:
        if block["type"] == "header":
            yield block["text"]["text"]
    for button in buttons(blocks):
        yield button["text"]["text"]


def unescaped(text: str) -> bool:
    """Whether mrkdwn text holds a raw `&`, `<` or `>` (anything but Slack's three entities)."""
    return any(c in ENTITY.sub("", text) for c in "&<>")


def section_for(blocks: list[dict[str, Any]], step_id: str) -> str:
    return next(t for t in mrkdwn_texts(blocks) if re.search(rf"\b{step_id} ·", t))


# --- the incident message -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("risk", "badge"),
    [("green", "🟢"), ("yellow", "🟡"), ("red", "🔴"), (None, "⚪")],
)
def test_each_step_carries_its_risk_badge(risk: str | None, badge: str) -> None:
    _, blocks = render.incident_message(
        execution([step("s1", risk=risk)], status="running", current_step="s1")
    )
    assert badge in section_for(blocks, "s1")


def test_a_risk_outside_the_classes_never_reaches_the_renderer() -> None:
    with pytest.raises(ValidationError):
        step("s1", risk="bogus")


def test_header_context_and_alert() -> None:
    text, blocks = render.incident_message(
        waiting_execution(),
        incident=INCIDENT,
        runbook={"title": "Disk almost full on a web node", "prerequisites": []},
    )
    assert blocks[0]["type"] == "header"
    header = blocks[0]["text"]["text"]
    assert "Disk almost full on a web node" in header and "awaiting a human" in header
    context = blocks[1]["elements"][0]["text"]
    for word in ("exe_01", "copilot", "prod", "alert"):
        assert word in context
    alert = next(t for t in mrkdwn_texts(blocks) if "DiskAlmostFull on web-3" in t)
    for word in ("web", "critical", "alertmanager", "attached", "0.93", "in its triggers"):
        assert word in alert
    assert text == (
        "dd0c/run: Disk almost full on a web node — awaiting a human (step s2 awaits approval)"
    )


def test_the_title_falls_back_to_the_runbook_id() -> None:
    text, blocks = render.incident_message(waiting_execution())
    assert blocks[0]["text"]["text"].startswith("rb_disk")
    assert text.startswith("dd0c/run: rb_disk — awaiting a human")


def test_the_current_step_is_highlighted_and_steps_are_described() -> None:
    ex = waiting_execution()
    ex.steps[1].command = "rm -rf /var/cache/* && echo done > /tmp/x"
    ex.steps[0].detail = "took 3s"
    _, blocks = render.incident_message(ex)
    current = section_for(blocks, "s2")
    assert current.startswith("▶ 🔴 *s2 · awaiting approval*")
    assert "`rm -rf /var/cache/* &amp;&amp; echo done &gt; /tmp/x`" in current
    done = section_for(blocks, "s1")
    assert not done.startswith("▶") and "succeeded (exit 0)" in done and "took 3s" in done
    assert "pending" in section_for(blocks, "s3")
    assert "manual" in section_for(blocks, "s4")


def test_a_compensation_says_what_it_undoes() -> None:
    ex = execution(
        [
            step("s1", status="rolled_back", exit_code=0),
            step("s1-undo", status="running", undoes="s1", kind="compensation"),
        ],
        status="running",
        current_step="s1-undo",
    )
    _, blocks = render.incident_message(ex)
    assert "↩ undo s1" in section_for(blocks, "s1-undo")
    assert "rolled back" in section_for(blocks, "s1")


def test_step_text_and_command_are_truncated() -> None:
    ex = execution(
        [step("s1", text="t" * 5000, command="c" * 5000, detail="d" * 5000)],
        current_step="s1",
    )
    _, blocks = render.incident_message(ex)
    section = section_for(blocks, "s1")
    assert "t" * 300 not in section and "t" * 250 in section
    assert "c" * 501 not in section and "c" * 450 in section
    assert len(section) < 1500


def test_the_awaiting_step_has_its_buttons() -> None:
    _, blocks = render.incident_message(waiting_execution())
    found = by_action(blocks)
    assert {"ddoc_approve_s2", "ddoc_reject_s2", "ddoc_skip_s2", "ddoc_edit_s2"} <= set(found)
    assert found["ddoc_approve_s2"]["style"] == "primary"
    assert found["ddoc_reject_s2"]["style"] == "danger"
    assert found["ddoc_approve_s2"]["text"]["text"] == "Approve"
    for action_id, button in found.items():
        assert action_id.startswith(ACTION_PREFIX)
        value = json.loads(button["value"])
        assert value["e"] == "exe_01"
        if action_id.endswith("_s2"):
            decided = action_id.removeprefix(ACTION_PREFIX).removesuffix("_s2")
            assert (value["s"], value["d"]) == ("s2", decided)
    ids = [b["action_id"] for b in buttons(blocks)]
    assert len(ids) == len(set(ids))


def test_the_line_above_the_buttons() -> None:
    _, blocks = render.incident_message(waiting_execution())
    index = next(
        i
        for i, b in enumerate(blocks)
        if b["type"] == "actions" and "ddoc_approve_s2" in by_action([b])
    )
    line = blocks[index - 1]["elements"][0]["text"]
    assert "needs 2 approvals" in line and "1/2" in line and "ana" in line
    assert "2024-05-01 10:10 UTC" in line


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        (["done", "skip"], {"ddoc_done_s2": "Mark done", "ddoc_skip_s2": "Skip"}),
        (["retry", "done", "skip"], {"ddoc_retry_s2": "Retry", "ddoc_done_s2": "Mark done"}),
        (["skip"], {"ddoc_skip_s2": "Skip"}),
    ],
)
def test_buttons_follow_the_allowed_decisions(allowed: list[str], expected: dict[str, str]) -> None:
    ex = waiting_execution()
    ex.steps[1].awaiting = awaiting(kind="done", allowed=allowed, approvals_needed=0)
    _, blocks = render.incident_message(ex)
    step_buttons = {k: v for k, v in by_action(blocks).items() if k.endswith("_s2")}
    assert {k: v["text"]["text"] for k, v in step_buttons.items() if k in expected} == expected
    assert all(k.split("_")[1] in allowed for k in step_buttons)


def test_outcome_unknown_keeps_rollback_and_abort_execution_wide() -> None:
    ex = waiting_execution()
    ex.steps[1].awaiting = awaiting(
        kind="outcome", allowed=["retry", "done", "skip", "rollback", "abort"]
    )
    _, blocks = render.incident_message(ex)
    ids = [b["action_id"] for b in buttons(blocks)]
    assert ids.count("ddoc_rollback") == 1 and ids.count("ddoc_abort") == 1
    assert {"ddoc_retry_s2", "ddoc_done_s2", "ddoc_skip_s2"} <= set(ids)


def test_a_failed_verification_says_so_and_offers_the_rollback() -> None:
    ex = waiting_execution()
    ex.steps[1].status = "verification_failed"
    ex.steps[1].detail = "verify failed after 3 tries in 2 min: expected exit 0, got exit 1"
    ex.steps[1].awaiting = awaiting(
        kind="verification", allowed=["rollback", "retry", "done", "abort"], approvals_needed=0
    )
    _, blocks = render.incident_message(ex)
    ids = [b["action_id"] for b in buttons(blocks)]
    assert ids.count("ddoc_rollback") == 1 and {"ddoc_retry_s2", "ddoc_done_s2"} <= set(ids)
    text = json.dumps(blocks, ensure_ascii=False)
    assert "verification failed: roll back, or decide" in text
    assert "verify failed after 3 tries" in text


def test_branch_buttons() -> None:
    ex = waiting_execution()
    conditions = ["If the disk is still above 90%", "If it is below 80% " + "x" * 200]
    ex.steps[1] = step(
        "s2",
        kind="decision",
        command=None,
        risk=None,
        status="awaiting_approval",
        awaiting=awaiting(
            kind="choice",
            allowed=["choose", "skip"],
            branches=conditions,
            approvals_needed=0,
            approved_by=[],
        ),
    )
    _, blocks = render.incident_message(ex)
    found = by_action(blocks)
    first, second = found["ddoc_choose_s2_1"], found["ddoc_choose_s2_2"]
    assert first["text"]["text"] == conditions[0]
    assert len(second["text"]["text"]) <= 75 and second["text"]["text"].endswith("…")
    assert json.loads(first["value"]) == {"e": "exe_01", "d": "choose", "s": "s2", "b": "1"}
    assert json.loads(second["value"])["b"] == "2"
    neither = next(b for b in buttons(blocks) if b["text"]["text"] == "Neither")
    assert json.loads(neither["value"])["b"] == "neither"
    assert "ddoc_skip_s2" in found


def test_provide_has_no_button_but_says_how() -> None:
    ex = waiting_execution()
    ex.steps[1].awaiting = awaiting(
        kind="values",
        allowed=["provide", "skip", "edit"],
        missing=["pod", "namespace"],
        approvals_needed=0,
    )
    _, blocks = render.incident_message(ex)
    ids = set(by_action(blocks))
    assert not any(i.startswith("ddoc_provide") for i in ids)
    assert {"ddoc_skip_s2", "ddoc_edit_s2"} <= ids
    line = next(t for t in mrkdwn_texts(blocks) if "ddoc exec provide" in t)
    assert "pod, namespace" in line and "or the API" in line


def test_rollback_and_abort_while_running() -> None:
    _, blocks = render.incident_message(waiting_execution())
    controls = blocks[-1]
    assert controls["type"] == "actions"
    rollback, abort = controls["elements"]
    assert rollback["action_id"] == "ddoc_rollback" and rollback["style"] == "danger"
    assert json.loads(rollback["value"]) == {"e": "exe_01", "d": "rollback"}
    assert json.loads(abort["value"]) == {"e": "exe_01", "d": "abort"}
    for button in (rollback, abort):
        assert {"title", "text", "confirm", "deny"} <= set(button["confirm"])


@pytest.mark.parametrize("status", ["succeeded", "failed", "rolled_back", "aborted"])
def test_no_buttons_once_finished(status: str) -> None:
    ex = changed(
        waiting_execution(), status=status, finished_at="2024-05-01T10:20:00+00:00", live=False
    )
    text, blocks = render.incident_message(ex, incident=INCIDENT)
    assert buttons(blocks) == []
    assert status.replace("_", " ") in blocks[0]["text"]["text"]
    assert status.replace("_", " ") in text


def test_notes_on_resolution_and_escalations() -> None:
    ex = changed(
        waiting_execution(),
        alert_resolved=True,
        escalations=[
            {
                "level": 1,
                "name": "L1 platform on-call",
                "step_id": "s2",
                "reason": "waited 300s",
                "at": "2024-05-01T10:05:00+00:00",
                "paged": True,
                "detail": "PagerDuty accepted",
            }
        ],
    )
    _, blocks = render.incident_message(ex)
    notes = "\n".join(mrkdwn_texts(blocks))
    assert "alert has resolved" in notes and "L1 platform on-call" in notes


def test_prerequisites_checklist() -> None:
    runbook = {
        "title": "Disk",
        "prerequisites": [
            {"text": "VPN to <prod> & bastion", "kind": "vpn"},
            {"text": "kubectl access", "kind": "access"},
        ],
    }
    _, blocks = render.incident_message(waiting_execution(), runbook=runbook)
    checklist = next(t for t in mrkdwn_texts(blocks) if "☐" in t)
    assert "☐ VPN to &lt;prod&gt; &amp; bastion" in checklist
    assert "☐ kubectl access" in checklist


def test_suggested_runbooks_can_be_picked() -> None:
    suggested = incident(
        id="inc_02",
        title="HighLatency",
        match_status="suggested",
        match={
            "status": "suggested",
            "attached": None,
            "candidates": [
                {"runbook_id": "rb_lat", "title": "Latency", "score": 0.61, "reasons": ["x"]},
                {"runbook_id": "rb_db", "title": "DB slow", "score": 0.55, "reasons": []},
            ],
        },
    )
    text, blocks = render.incident_message(None, incident=suggested)
    alert = next(t for t in mrkdwn_texts(blocks) if "HighLatency" in t)
    assert "rb_lat" in alert and "0.61" in alert and "rb_db" in alert and "0.55" in alert
    found = by_action(blocks)
    assert set(found) == {"ddoc_pick_runbook_1", "ddoc_pick_runbook_2"}
    value = json.loads(found["ddoc_pick_runbook_2"]["value"])
    assert value == {"e": "", "d": "pick", "r": "rb_db", "i": "inc_02"}
    assert text.startswith("dd0c/run: HighLatency")


def test_the_incident_message_before_any_execution_is_the_same_from_a_dict() -> None:
    """activities/slack.py hands the incident as `incidents.view`'s dict, and a stub with no
    execution id for "no execution yet"."""
    stub = {"id": "", "status": "running", "steps": [], "runbook_id": "", "mode": "-"}
    as_dict = INCIDENT.model_dump(exclude_unset=True)
    assert render.incident_message(stub, incident=as_dict) == render.incident_message(
        None, incident=INCIDENT
    )
    text, blocks = render.incident_message(None, incident=INCIDENT)
    assert blocks[0]["text"]["text"] == "DiskAlmostFull on web-3 — ▶️ running"
    assert blocks[1]["elements"][0]["text"] == "-"
    assert text == "dd0c/run: DiskAlmostFull on web-3 — running"


def test_unmatched_says_so_plainly() -> None:
    unmatched = incident(id="inc_03", title="Weird", match_status="unmatched", match=None)
    _, blocks = render.incident_message(None, incident=unmatched)
    assert any("No runbook found" in t for t in mrkdwn_texts(blocks))
    assert buttons(blocks) == []


def test_match_rendering_tolerates_missing_keys() -> None:
    matches: list[dict[str, Any]] = [{}, {"confidence": 0.7}, {"status": "attached"}]
    for match in matches:
        attached = incident(title="A", match_status="attached", match=match)
        _, blocks = render.incident_message(waiting_execution(), incident=attached)
        assert any("Runbook match" in t for t in mrkdwn_texts(blocks))
    _, blocks = render.incident_message(waiting_execution(), incident=incident(title="bare"))
    assert any("bare" in t for t in mrkdwn_texts(blocks))
    for malformed in ({"candidates": None}, {"attached": {}}):  # refused before rendering
        with pytest.raises(ValidationError):
            incident(match=malformed)


def test_two_hundred_steps_fit_in_fifty_blocks() -> None:
    steps = [step(f"s{n}", status="succeeded", exit_code=0) for n in range(1, 121)]
    steps[5].status = StepStatus.FAILED
    steps.append(step("s121", status="awaiting_approval", risk="red", awaiting=awaiting()))
    steps += [step(f"s{n}") for n in range(122, 201)]
    ex = execution(steps, current_step="s121")
    _, blocks = render.incident_message(
        ex,
        incident=INCIDENT,
        runbook={"title": "Big", "prerequisites": [{"text": "VPN", "kind": "vpn"}]},
    )
    assert len(blocks) <= render.MAX_BLOCKS
    texts = list(mrkdwn_texts(blocks))
    assert any("120 finished steps" in t and "s6" in t for t in texts)  # the failure is named
    assert "ddoc_approve_s121" in by_action(blocks)
    assert any(t.startswith("▶") for t in texts)
    assert any("more steps not shown" in t for t in texts)
    assert blocks[-1]["elements"][0]["action_id"] == "ddoc_rollback"


def test_few_steps_are_never_collapsed() -> None:
    steps = [step(f"s{n}", status="succeeded") for n in range(1, 31)]
    _, blocks = render.incident_message(execution(steps, status="succeeded"))
    assert sum(1 for t in mrkdwn_texts(blocks) if re.match(r"🟢 s\d+ ·", t)) == 30


# --- limits and escaping, for any text ----------------------------------------------------------

PIECES = [*"ab &<>`*_~\n|!@", "<!channel>", "&amp;", "&lt", "```", "é", "🔥"]
NASTY = st.lists(st.sampled_from(PIECES), max_size=60).map(lambda p: "".join(p) * 3)
LONG = st.one_of(NASTY, st.text(max_size=40).map(lambda s: s * 200))
STATUS = st.sampled_from(list(StepStatus))


@st.composite
def hostile_executions(draw: st.DrawFn) -> tuple[ExecutionView, IncidentView]:
    count = draw(st.integers(min_value=1, max_value=60))
    steps = []
    for n in range(count):
        waits = draw(st.booleans()) if n < 3 else False
        steps.append(
            step(
                f"s{n + 1}",
                text=draw(LONG),
                command=draw(st.one_of(st.none(), LONG)),
                detail=draw(st.one_of(st.none(), NASTY)),
                status=draw(STATUS),
                risk=draw(st.sampled_from(["green", "yellow", "red", None])),
                edited_by=draw(st.one_of(st.none(), NASTY)),
                undoes=draw(st.one_of(st.none(), NASTY)),
                exit_code=draw(st.one_of(st.none(), st.integers(-1, 255))),
                output_truncated=draw(st.booleans()),
                decisions=[
                    decision(
                        draw(st.sampled_from(list(DecisionKind))),
                        draw(NASTY),
                        comment=draw(NASTY),
                        branch=draw(NASTY),
                    )
                    for _ in range(draw(st.integers(0, 2)))
                ],
                awaiting=awaiting(
                    kind=draw(st.sampled_from(list(AwaitKind))),
                    allowed=["choose", "approve", "reject", "skip", "edit", "done", "provide"],
                    message=draw(LONG),
                    branches=draw(st.lists(LONG, max_size=25)),
                    approved_by=draw(st.lists(NASTY, max_size=3)),
                    missing=draw(st.lists(NASTY, max_size=3)),
                )
                if waits
                else None,
            )
        )
    ex = execution(
        steps,
        status=draw(st.sampled_from(["running", "awaiting_human", "stalled", "succeeded"])),
        current_step=draw(st.sampled_from([s.id for s in steps])),
        environment=draw(NASTY),
        started_by=draw(NASTY),
        runbook_id=draw(NASTY),
        escalations=[
            {
                "level": 1,
                "name": draw(NASTY),
                "step_id": draw(st.one_of(st.none(), NASTY)),
                "reason": draw(NASTY),
                "at": "2024-05-01T10:05:00+00:00",
                "paged": False,
                "detail": draw(NASTY),
            }
        ],
    )
    hostile = incident(
        title=draw(LONG),
        service=draw(NASTY),
        severity=draw(NASTY),
        source=draw(NASTY),
        match_status=draw(st.sampled_from(["attached", "suggested", "unmatched"])),
        match={
            "candidates": [
                {"runbook_id": draw(NASTY) or "rb", "title": draw(LONG), "score": 0.5}
                for _ in range(draw(st.integers(0, 7)))
            ],
            "attached": {
                "runbook_id": draw(NASTY),
                "title": draw(LONG),
                "score": 0.9,
                "reasons": draw(st.lists(LONG, max_size=5)),
            },
        },
    )
    return ex, hostile


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_executions(), st.lists(LONG, max_size=25))
def test_limits_and_escaping_hold_for_any_text(
    drawn: tuple[ExecutionView, IncidentView], prerequisites: list[str]
) -> None:
    ex, hostile = drawn
    runbook = {"title": hostile.title, "prerequisites": [{"text": p} for p in prerequisites]}
    text, blocks = render.incident_message(ex, incident=hostile, runbook=runbook)
    assert len(blocks) <= render.MAX_BLOCKS
    assert not unescaped(text) and len(text) <= 3000
    for mrkdwn in mrkdwn_texts(blocks):
        assert 0 < len(mrkdwn) <= 3000
        assert not unescaped(mrkdwn), mrkdwn
    for block in blocks:
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"]) <= 150
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
    ids = [b["action_id"] for b in buttons(blocks)]
    assert len(ids) == len(set(ids))
    for button in buttons(blocks):
        assert 0 < len(button["text"]["text"]) <= 75
        assert len(button["value"]) <= 2000 and len(button["action_id"]) <= 255
        assert button["action_id"].startswith(ACTION_PREFIX)
        json.loads(button["value"])
    for s in ex.steps:
        reply = render.step_output_message(s.model_copy(update={"output": s.text}))
        assert len(reply) <= 3000 and not unescaped(reply)
    for kind in ("escalated", "stalled", "escalation_failed"):
        data = {"level": 2, "name": hostile.severity, "reason": hostile.title}
        notice = render.escalation_message(ex, event(kind, "s1", data))
        assert len(notice) <= 3000 and not unescaped(notice)
    handoff = render.handoff_message(ex)
    assert len(handoff) <= 3000 and not unescaped(handoff)


# --- thread replies --------------------------------------------------------------------------


def test_step_output_message_small() -> None:
    reply = render.step_output_message(
        step(
            "s1",
            status="succeeded",
            exit_code=0,
            command="grep x < in > out && cat out",
            output="<b>bold</b> & ```fenced```\n",
        )
    )
    assert "*s1*" in reply and "succeeded (exit 0)" in reply
    assert "`grep x &lt; in &gt; out &amp;&amp; cat out`" in reply
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in reply
    body = reply.split("```\n", 1)[1].rsplit("\n```", 1)[0]
    assert "```" not in body  # the output cannot close the code block
    assert not unescaped(reply)
    assert "truncated" not in reply


def test_step_output_message_keeps_head_and_tail() -> None:
    output = "FIRST LINE\n" + "".join(f"line {n} <&>\n" for n in range(5000)) + "LAST LINE"
    reply = render.step_output_message(
        step("s1", status="failed", exit_code=2, output=output, output_truncated=True)
    )
    assert len(reply) <= 3000
    assert "FIRST LINE" in reply and "LAST LINE" in reply
    assert "failed (exit 2)" in reply
    cut = re.search(r"… \[([\d,]+) characters, ([\d,]+) lines cut here\] …", reply)
    assert cut is not None
    assert 0 < int(cut.group(1).replace(",", "")) < len(output)
    assert "agent truncated" in reply
    assert "Output shortened for Slack" in reply
    assert not unescaped(reply)
    assert reply.count("```") == 2


def test_step_output_message_without_output() -> None:
    reply = render.step_output_message(step("s1", status="succeeded", output=""))
    assert "(no output)" in reply


# --- channel notices -----------------------------------------------------------------------------


def test_escalation_message() -> None:
    message = render.escalation_message(
        waiting_execution(),
        event(
            "escalated",
            "s2",
            {"level": 2, "name": "L2 platform", "paged": True, "detail": "accepted"},
        ),
    )
    assert "rb_disk" in message and "exe_01" in message
    assert "level 2" in message and "L2 platform" in message and "s2" in message
    assert "needs 2 approvals" in message  # why: what the step waits for
    assert "Paged" in message and "accepted" in message


def test_escalation_message_not_paged() -> None:
    message = render.escalation_message(
        waiting_execution(),
        event(
            "escalated",
            None,
            {"level": 1, "name": "L1", "paged": False, "detail": "the alert has resolved"},
        ),
    )
    assert "Not paged" in message and "the alert has resolved" in message


def test_stalled_message() -> None:
    message = render.escalation_message(
        waiting_execution(),
        event("stalled", "s2", {"reason": "agent offline: no <agent>"}),
    )
    assert "stalled" in message and "s2" in message
    assert "agent offline: no &lt;agent&gt;" in message


def test_escalation_failed_message() -> None:
    message = render.escalation_message(
        waiting_execution(),
        event("escalation_failed", "s2", {"level": 1, "detail": "503"}),
    )
    assert "failed" in message and "503" in message


def test_handoff_message() -> None:
    ex = execution(
        [
            step("s1", status="succeeded", exit_code=0),
            step(
                "s2",
                status="succeeded",
                exit_code=0,
                risk="red",
                decisions=[
                    decision("approve", "Ana"),
                    decision("approve", "Bob", accepted=False, reason="same person"),
                    decision("approve", "Chen"),
                ],
            ),
            step("s3", status="skipped", decisions=[decision("skip", "Dee", comment="not needed")]),
            step("s4", status="skipped", detail="branch not taken"),
            step("s5", status="failed", exit_code=1),
            step("s6", status="awaiting_approval", risk="red", awaiting=awaiting()),
            step("s7"),
            step("s8"),
        ],
        current_step="s6",
    )
    message = render.handoff_message(ex)
    ran = message.split("*Ran:*")[1].split("*Skipped:*")[0]
    skipped = message.split("*Skipped:*")[1].split("*Awaiting now:*")[0]
    now = message.split("*Awaiting now:*")[1].split("*Left:*")[0]
    left = message.split("*Left:*")[1]
    assert "`s1`" in ran and "ran by policy" in ran
    assert "approved by Ana" in ran and "approved by Chen" in ran and "Bob" not in ran
    assert "failed (exit 1)" in ran and "`s5`" in ran
    assert "skipped by Dee" in skipped and "not needed" in skipped
    assert "branch not taken" in skipped
    assert "`s6`" in now and "1/2" in now and "awaiting approval" in now
    assert "2 steps" in left and "`s7`" in left and "`s8`" in left
    assert "exe_01" in message and "rb_disk" in message


def test_handoff_of_a_finished_execution() -> None:
    ex = execution([step("s1", status="succeeded")], status="succeeded")
    message = render.handoff_message(ex)
    assert "succeeded" in message and "*Left:* nothing" in message
    assert "*Awaiting now:* none" in message


def test_trust_demoted_message() -> None:
    message = render.escalation_message(
        waiting_execution(),
        event(
            "trust_demoted",
            None,
            {
                "from": "autopilot",
                "to": "copilot",
                "reason": "autopilot execution exe_01 <b>failed</b>",
            },
        ),
    )
    assert "back in *copilot*" in message and "was autopilot" in message
    assert "exe_01 &lt;b&gt;failed&lt;/b&gt;" in message  # escaped for Slack mrkdwn
    assert "ask for approval" in message


def test_a_breakpoint_a_parallel_group_and_a_drill_are_said() -> None:
    paused = step(
        "s2",
        status="awaiting_approval",
        awaiting=awaiting(
            kind="breakpoint",
            allowed=["continue", "skip"],
            message="Paused at a breakpoint set by Rita: continue, or skip it.",
        ),
    )
    beside = [step("s3", status="running", parallel="p1"), step("s4", parallel="p1")]
    drill = execution([step("s1", status="succeeded"), paused, *beside], mode="drill")
    _, blocks = render.incident_message(drill)
    found = by_action(blocks)
    assert found["ddoc_continue_s2"]["text"]["text"] == "Continue"
    assert found["ddoc_continue_s2"]["style"] == "primary"
    assert "ddoc_approve_s2" not in found
    assert "paused at a breakpoint" in section_for(blocks, "s2")
    assert "∥ side by side (p1)" in section_for(blocks, "s3")
    assert "side by side" not in section_for(blocks, "s1")
    context = blocks[1]["elements"][0]["text"]
    assert "🧪 DRILL: nobody is paged" in context
