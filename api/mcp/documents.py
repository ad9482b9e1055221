"""What an assistant reads: runbooks as markdown with risk annotations, executions as live
documents, and a step explained. Presentation only, over the stored and live views."""

from __future__ import annotations

from typing import Any

from ddoc.execution.views import ExecutionView, StepView
from ddoc.platform.tables import Runbook, RunbookVersion
from ddoc.runbooks.risk import RuleSet, classify_command

MAX_OUTPUT_CHARS = 4000  # a step's or a diagnostic's output, as shown to the assistant
_BADGE = {"green": "🟢 green", "yellow": "🟡 yellow", "red": "🔴 red"}
_WHAT_HAPPENS = {
    "green": "read-only: runs by itself in copilot mode (and as a diagnostic)",
    "yellow": "changes something: waits for a responder's approval in copilot mode",
    "red": "dangerous: waits for an approver (or as many as the tenant's approval rules need)",
}


def clip(text: str | None, limit: int = MAX_OUTPUT_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return (
        text[: limit // 2]
        + f"\n[… {len(text) - limit} characters left out …]\n"
        + text[-limit // 2 :]
    )


def runbook_markdown(runbook: Runbook, version: RunbookVersion) -> str:
    parsed: dict[str, Any] = version.parsed or {}
    lines = [
        f"# {parsed.get('title') or runbook.title}",
        "",
        f"runbook `{runbook.id}` · version {version.version} · trust level "
        f"{runbook.trust_level}" + (" · archived" if runbook.archived_at else ""),
        "",
    ]
    if parsed.get("summary"):
        lines += [str(parsed["summary"]), ""]
    variables = parsed.get("variables") or []
    if variables:
        lines.append("Variables: " + ", ".join(f"`{v['name']}`" for v in variables))
        lines.append("")
    for prerequisite in parsed.get("prerequisites") or []:
        lines.append(f"- Prerequisite: {prerequisite['text']}")
    lines.append("## Steps")
    for number, step in enumerate(parsed.get("steps") or [], start=1):
        lines += ["", f"### {number}. `{step['id']}` {step['text']}".rstrip()]
        if step.get("command"):
            risk = str(step.get("risk") or "yellow")
            lines.append(f"Risk: {_BADGE.get(risk, risk)} ({step.get('risk_reason') or '-'})")
            lines += ["```", str(step["command"]), "```"]
        else:
            lines.append(f"({step.get('kind', 'manual')}: a human does or decides this)")
        rollback = step.get("rollback") or {}
        if rollback.get("command"):
            lines.append(f"Rollback ({rollback.get('origin')}): `{rollback['command']}`")
    return "\n".join(lines) + "\n"


def explain_step(
    runbook: Runbook, version: RunbookVersion, step_id: str, rules: RuleSet | None
) -> dict[str, Any] | None:
    parsed: dict[str, Any] = version.parsed or {}
    step = next((s for s in parsed.get("steps") or [] if s.get("id") == step_id), None)
    if step is None:
        return None
    found: dict[str, Any] = {
        "runbook_id": runbook.id,
        "version": version.version,
        "step_id": step_id,
        "text": step.get("text"),
        "kind": step.get("kind"),
        "command": step.get("command"),
    }
    if step.get("command"):
        now = classify_command(str(step["command"]), rules)
        risk = str(step.get("risk") or now.level.value)
        found |= {
            "risk": risk,
            "why": step.get("risk_reason") or now.reason,
            "risk_under_current_rules": {"risk": now.level.value, "why": now.reason},
            "what_happens_when_run": _WHAT_HAPPENS.get(risk, ""),
        }
    else:
        found["what_happens_when_run"] = "no command: the execution waits for a human to do it"
    rollback = step.get("rollback") or {}
    if rollback:
        found["rollback"] = {
            "command": rollback.get("command"),
            "text": rollback.get("text"),
            "origin": rollback.get("origin"),
            "risk": classify_command(str(rollback["command"]), rules).level.value
            if rollback.get("command")
            else None,
        }
    else:
        found["rollback"] = None
    return found


def step_summary(step: StepView) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": step.id,
        "kind": step.kind,
        "text": step.text,
        "status": step.status.value,
        "command": step.command,
        "risk": step.risk.value if step.risk else None,
        "exit_code": step.exit_code,
        "output": clip(step.output),
        "detail": step.detail,
    }
    if step.awaiting is not None:
        found["waiting_for"] = {
            "kind": step.awaiting.kind.value,
            "message": step.awaiting.message,
            "role": step.awaiting.role.value,
            "decisions": [d.value for d in step.awaiting.allowed],
            "approvals_needed": step.awaiting.approvals_needed,
        }
    return {k: v for k, v in found.items() if v is not None}


def execution_summary(view: ExecutionView) -> dict[str, Any]:
    waiting = [s for s in view.steps if s.awaiting is not None]
    return {
        "id": view.id,
        "status": view.status.value,
        "mode": view.mode.value,
        "runbook_id": view.runbook_id,
        "runbook_version": view.runbook_version,
        "incident_id": view.incident_id,
        "current_step": view.current_step,
        "waiting_for_humans": [
            f"{s.id}: {s.awaiting.message}" for s in waiting if s.awaiting is not None
        ],
        "steps": [step_summary(s) for s in view.steps],
    }


def execution_markdown(view: ExecutionView) -> str:
    lines = [
        f"# Execution `{view.id}` ({view.status.value})",
        "",
        f"runbook `{view.runbook_id}` v{view.runbook_version} · mode {view.mode.value}"
        + (f" · incident `{view.incident_id}`" if view.incident_id else ""),
        "",
    ]
    for step in view.steps:
        risk = _BADGE.get(step.risk.value, step.risk.value) if step.risk else "-"
        lines.append(f"## `{step.id}` {step.text} — {step.status.value} ({risk})")
        if step.command:
            lines += ["```", step.command, "```"]
        if step.exit_code is not None:
            lines.append(f"exit code {step.exit_code}")
        if step.output:
            lines += ["Output:", "```", clip(step.output) or "", "```"]
        if step.awaiting is not None:
            lines.append(
                f"**Waiting for a human** ({step.awaiting.kind.value}, role "
                f"{step.awaiting.role.value}): {step.awaiting.message}"
            )
        lines.append("")
    return "\n".join(lines)
