"""The self-check probe agents run: one runbook's steps, checked where they would run.

For each step of a `RunbookProbe` (ddoc/contracts/selfcheck.py), in order:

1. the agent's local policy: a step it would deny is a finding (the runbook would fail there);
2. each program the step uses must be on the PATH its commands get (`command -v`);
3. `run`, set by the control plane from the risk classifier, says what may run. Only two values
   run anything: `command` (a read-only step: the command itself) and `dry_run` (the step's
   side-effect-free form, which this agent derives again from the command with the same
   function and runs only when the two agree). Anything else (`none`, a value this agent does
   not know) runs nothing. What runs goes through the command activity's own code path
   (CommandActivities.execute): policy, bounded and redacted output, a timeout, the process
   group killed at the end.

Stdlib + temporalio only, like the rest of the agent.
"""

from __future__ import annotations

import os
import shutil

from temporalio import activity

from agent_worker.commands import DEFAULT_PATH, CommandActivities
from ddoc.contracts import names
from ddoc.contracts.dryrun import dry_run_form
from ddoc.contracts.execution import CommandRequest
from ddoc.contracts.selfcheck import Finding, FindingKind, ProbeReport, ProbeRun, RunbookProbe

MAX_STEPS = 100  # of one runbook; more are not checked (docs/LIMITS.md)
MAX_TIMEOUT_SECONDS = 300  # a probe's own timeout is capped here (and by the local policy)
FIRST_LINE_CHARS = 300  # of a failed command's output, in its finding


class SelfCheckProbes:
    def __init__(self, commands: CommandActivities, *, agent: str) -> None:
        self._commands = commands
        self._agent = agent

    @activity.defn(name=names.SELF_CHECK_PROBE)
    async def probe(self, probe: RunbookProbe) -> ProbeReport:
        report = ProbeReport(agent=self._agent)
        timeout = max(1, min(probe.timeout_seconds, MAX_TIMEOUT_SECONDS))
        for step in probe.steps[:MAX_STEPS]:
            activity.heartbeat(step.step_id)
            request = CommandRequest(
                execution_id=probe.run_id,
                step_id=step.step_id,
                command=step.command,
                env=dict(step.env),
                timeout_seconds=timeout,
            )
            findings, ran = await self._check(
                request, step.programs, step.run, step.dry_run_command
            )
            report.findings.extend(findings)
            if ran:
                report.ran.append(step.step_id)
        return report

    async def _check(
        self, request: CommandRequest, programs: list[str], run: str, dry_run_command: str | None
    ) -> tuple[list[Finding], bool]:
        """The step's findings, and whether its command or dry run ran."""
        step_id = request.step_id
        refusal = self._commands.refusal(request.command, request.env)
        if refusal is not None:
            return [
                Finding(
                    FindingKind.POLICY_DENIED.value,
                    f"the agent's local policy on {self._agent} would deny it: {refusal}",
                    step_id,
                )
            ], False
        path = self._commands.command_env(request).get("PATH") or DEFAULT_PATH
        missing = [p for p in dict.fromkeys(programs) if shutil.which(p, path=path) is None]
        findings = [
            Finding(
                FindingKind.PROGRAM_MISSING.value,
                f"`{program}` not found on agent {self._agent}",
                step_id,
            )
            for program in missing
        ]
        if missing:
            return findings, False  # running it would only fail the same way
        if run == ProbeRun.COMMAND.value:
            dry = False
        elif run == ProbeRun.DRY_RUN.value:
            # Never trust the form sent: derive it here and run only when both agree, so a
            # mistake (or a tampered probe) upstream cannot turn a dry run into a change.
            if not dry_run_command or dry_run_form(request.command) != dry_run_command:
                return [
                    Finding(
                        FindingKind.DRY_RUN_NOT_CONFIRMED.value,
                        "the dry-run form sent is not the one this agent derives from the "
                        "command: nothing ran",
                        step_id,
                    )
                ], False
            refusal = self._commands.refusal(dry_run_command, request.env)
            if refusal is not None:
                return [
                    Finding(
                        FindingKind.POLICY_DENIED.value,
                        f"the agent's local policy on {self._agent} would deny its dry run: "
                        f"{refusal}",
                        step_id,
                    )
                ], False
            request.command, dry = dry_run_command, True
        else:
            return [], False  # `none`, or a value this agent does not know: nothing runs
        result = await self._commands.execute(request)
        what = "dry run" if dry else "command"
        if result.timed_out:
            return [
                Finding(
                    FindingKind.TIMED_OUT.value,
                    f"the {what} did not finish within {request.timeout_seconds}s",
                    step_id,
                )
            ], True
        if result.exit_code != 0:
            kind = FindingKind.DRY_RUN_FAILED if dry else FindingKind.COMMAND_FAILED
            line = first_line(result.output) or "(no output)"
            return [Finding(kind.value, f"{what} exited {result.exit_code}: {line}", step_id)], True
        return [], True


def first_line(output: str) -> str:
    for line in output.splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= FIRST_LINE_CHARS else text[: FIRST_LINE_CHARS - 1] + "…"
    return ""


def agent_name(queue: str) -> str:
    return f"{os.uname().nodename} ({queue})"
