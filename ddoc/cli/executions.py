"""`ddoc exec start|status|wait|list|approve|reject|skip|done|edit|choose|provide|retry|continue|
break|replay|abort|rollback`: run a runbook by hand (or as a drill), follow executions, pause
them and decide on their steps."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic: not on the agent's light install
    from ddoc.execution.views import ExecutionView

# An execution in one of these needs nobody (finished) or needs a human (waiting): `wait` ends.
_FINISHED = frozenset({"succeeded", "failed", "rolled_back", "aborted"})
_WAITING = frozenset({"awaiting_human", "stalled"})
_POLL_SECONDS = 0.3
_DEFAULT_WAIT = 120.0


def add_parser(sub: Any) -> None:
    exe = sub.add_parser("exec", help="start and follow executions")
    exe.set_defaults(func=lambda args, settings: _run(args))
    actions = exe.add_subparsers(dest="exec_command", required=True, metavar="ACTION")

    start = actions.add_parser("start", help="start a runbook by hand")
    start.add_argument("runbook_id")
    start.add_argument("--mode", help="default: the runbook's trust level (drill: practice)")
    start.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    start.add_argument(
        "--break", dest="breakpoints", action="append", default=[], metavar="STEP",
        help="pause before this step, in any mode (repeat for more)",
    )  # fmt: skip
    start.add_argument("--team", help="with --mode drill: the team practising")
    start.add_argument("--sandbox", help='with --mode drill: its environment (default "sandbox")')
    start.set_defaults(action=cmd_start)

    pause = actions.add_parser("break", help="pause a running execution before a step")
    pause.add_argument("execution_id")
    pause.add_argument("step_id")
    pause.add_argument("--clear", action="store_true", help="clear the breakpoint instead")
    pause.set_defaults(action=cmd_break)

    replay = actions.add_parser(
        "replay",
        help="re-run an execution's recorded decisions against a runbook version in a sandbox",
    )
    replay.add_argument("execution_id")
    replay.add_argument("--version", type=int, help="default: the runbook's current version")
    replay.add_argument("--sandbox", help='its environment (default "sandbox")')
    replay.set_defaults(action=cmd_replay)

    status = actions.add_parser("status", help="an execution's steps, outputs and exit codes")
    status.add_argument("execution_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(action=cmd_status)

    wait = actions.add_parser(
        "wait",
        help="wait until the execution needs a human or has finished, then show it as status does",
    )
    wait.add_argument("execution_id")
    wait.add_argument("--json", action="store_true")
    _timeout_option(wait)
    wait.set_defaults(action=cmd_wait)

    save = actions.add_parser(
        "save-as-version",
        help="store what the responders did (edited commands, skipped steps) as the runbook's "
        "next version",
    )
    save.add_argument("execution_id")
    save.set_defaults(action=cmd_save_as_version)

    lst = actions.add_parser("list", help="executions, newest first")
    lst.add_argument("--status")
    lst.set_defaults(action=cmd_list)

    for name, help_text in (
        ("approve", "approve a step that awaits approval"),
        ("reject", "do not run a step, and stop the execution"),
        ("skip", "do not run a step, and go on"),
        ("done", "mark a manual (or read-along, or unknown-outcome) step done"),
        ("retry", "run again a step whose outcome is unknown"),
        ("continue", "go on past a breakpoint"),
    ):
        decide = actions.add_parser(name, help=help_text)
        decide.add_argument("execution_id")
        decide.add_argument("step_id")
        decide.add_argument("--comment")
        _wait_option(decide)
        decide.set_defaults(action=cmd_decide, decision=name)

    edit = actions.add_parser("edit", help="replace a step's command (it is approved again)")
    edit.add_argument("execution_id")
    edit.add_argument("step_id")
    edit.add_argument("--command", required=True)
    edit.add_argument("--comment")
    _wait_option(edit)
    edit.set_defaults(action=cmd_decide, decision="edit")

    choose = actions.add_parser("choose", help='choose a decision step\'s branch (or "neither")')
    choose.add_argument("execution_id")
    choose.add_argument("step_id")
    choose.add_argument("branch", help='the branch number, its condition, or "neither"')
    choose.add_argument("--comment")
    _wait_option(choose)
    choose.set_defaults(action=cmd_decide, decision="choose")

    provide = actions.add_parser("provide", help="give values the alert did not carry")
    provide.add_argument("execution_id")
    provide.add_argument("step_id")
    provide.add_argument("--var", action="append", required=True, metavar="NAME=VALUE")
    _wait_option(provide)
    provide.set_defaults(action=cmd_decide, decision="provide")

    abort = actions.add_parser("abort", help="stop the execution (--rollback: undo first)")
    abort.add_argument("execution_id")
    abort.add_argument("--rollback", action="store_true")
    abort.add_argument("--comment")
    abort.add_argument(
        "--wrong-runbook",
        action="store_true",
        help="the runbook is the wrong one for the incident (a learned trigger that attached it "
        "is forgotten)",
    )
    abort.set_defaults(action=cmd_abort)

    rollback = actions.add_parser("rollback", help="stop and undo the completed steps")
    rollback.add_argument("execution_id")
    rollback.add_argument("--comment")
    rollback.set_defaults(action=cmd_abort, rollback=True)


def _timeout_option(parser: Any) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=_DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"give up (exit 1) after this long (default {_DEFAULT_WAIT:.0f})",
    )


def _wait_option(parser: Any) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="then wait until the workflow has taken the decision and the execution needs a "
        "human again or has finished, and show it (as `ddoc exec wait` does)",
    )
    _timeout_option(parser)


def _run(args: argparse.Namespace) -> int:
    from ddoc.cli.client import run_command  # httpx: not on the agent's light install

    return run_command(args.action, args)


def _pairs(pairs: list[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--var wants NAME=VALUE, got {pair!r}")
        variables[name] = value
    return variables


_CLI = {"X-Ddoc-Client": "cli"}


def cmd_decide(args: argparse.Namespace, client: Any) -> int:
    waiting = getattr(args, "wait", False)
    before = _decisions(_get(client, args.execution_id), args.step_id) if waiting else 0
    body: dict[str, Any] = {"step_id": args.step_id, "decision": args.decision}
    if getattr(args, "comment", None):
        body["comment"] = args.comment
    if args.decision == "edit":
        body["command"] = args.command
    elif args.decision == "choose":
        body["branch"] = args.branch
    elif args.decision == "provide":
        body["values"] = _pairs(args.var)
    client.request("POST", f"/executions/{args.execution_id}/decisions", json=body, headers=_CLI)
    print(f"{args.decision} sent for step {args.step_id} of {args.execution_id}", flush=True)
    if not waiting:
        return 0
    # The API answers once the signal is delivered; the workflow takes it a moment later.
    deadline = time.monotonic() + args.timeout
    execution = _until(
        client,
        args.execution_id,
        lambda e: e.status in _FINISHED or _decisions(e, args.step_id) > before,
        deadline,
    )
    if execution is not None and execution.status not in _FINISHED:
        execution = _until(client, args.execution_id, _settled, deadline)
    return _show_settled(execution, args)


def cmd_wait(args: argparse.Namespace, client: Any) -> int:
    deadline = time.monotonic() + args.timeout
    return _show_settled(_until(client, args.execution_id, _settled, deadline), args)


def _settled(execution: ExecutionView) -> bool:
    return execution.status in _FINISHED or execution.status in _WAITING


def _get(client: Any, execution_id: str) -> ExecutionView:
    from ddoc.execution.views import ExecutionView

    return ExecutionView.model_validate(client.request("GET", f"/executions/{execution_id}"))


def _decisions(execution: ExecutionView, step_id: str) -> int:
    step = execution.step(step_id)
    return len(step.decisions) if step else 0


def _until(client: Any, execution_id: str, done: Any, deadline: float) -> ExecutionView | None:
    while True:
        execution = _get(client, execution_id)
        if done(execution):
            return execution
        if time.monotonic() >= deadline:
            return None
        time.sleep(_POLL_SECONDS)


def _show_settled(execution: ExecutionView | None, args: argparse.Namespace) -> int:
    if execution is None:
        print(
            f"ddoc: execution {args.execution_id} still runs after {args.timeout:.0f}s "
            f"(`ddoc exec status {args.execution_id}` shows where)",
            file=sys.stderr,
        )
        return 1
    _print(execution, as_json=getattr(args, "json", False))
    return 0


def cmd_abort(args: argparse.Namespace, client: Any) -> int:
    body: dict[str, Any] = {"rollback": bool(args.rollback)}
    if args.comment:
        body["comment"] = args.comment
    if getattr(args, "wrong_runbook", False):
        body["wrong_runbook"] = True
    from ddoc.execution.views import DecisionAccepted

    result = DecisionAccepted.model_validate(
        client.request("POST", f"/executions/{args.execution_id}/abort", json=body, headers=_CLI)
    )
    what = "rollback" if args.rollback else "abort"
    print(f"{what} sent for {args.execution_id}")
    if result.learned_trigger_removed:
        print(f"forgot learned trigger {result.learned_trigger_removed}")
    return 0


def cmd_start(args: argparse.Namespace, client: Any) -> int:
    variables = _pairs(args.var)
    body: dict[str, Any] = {"runbook_id": args.runbook_id, "variables": variables}
    if args.mode:
        body["mode"] = args.mode
    if args.breakpoints:
        body["breakpoints"] = args.breakpoints
    if args.team or args.sandbox:
        body["drill"] = {
            key: value
            for key, value in (("team", args.team), ("environment", args.sandbox))
            if value
        }
    from ddoc.execution.views import ExecutionView

    execution = ExecutionView.model_validate(client.request("POST", "/executions", json=body))
    print(f"{execution.id}  {execution.status}  mode {execution.mode}")
    return 0


def cmd_break(args: argparse.Namespace, client: Any) -> int:
    base = f"/executions/{args.execution_id}/breakpoints"
    if args.clear:
        client.request("DELETE", f"{base}/{args.step_id}")
        print(f"{args.execution_id}: breakpoint on {args.step_id} cleared")
    else:
        client.request("POST", base, json={"step_id": args.step_id})
        print(f"{args.execution_id}: pauses before {args.step_id} (ddoc exec continue to go on)")
    return 0


def cmd_replay(args: argparse.Namespace, client: Any) -> int:
    body: dict[str, Any] = {}
    if args.version:
        body["version"] = args.version
    if args.sandbox:
        body["environment"] = args.sandbox
    from ddoc.execution.views import ExecutionView

    found = client.request("POST", f"/executions/{args.execution_id}/replay", json=body)
    execution = ExecutionView.model_validate(found)
    print(
        f"{execution.id}  replays {args.execution_id} on v{execution.runbook_version} "
        f"in {execution.environment}  {execution.status}"
    )
    return 0


def cmd_status(args: argparse.Namespace, client: Any) -> int:
    _print(_get(client, args.execution_id), as_json=args.json)
    return 0


def _print(execution: ExecutionView, *, as_json: bool) -> None:
    if as_json:  # as the API answered it
        print(json.dumps(execution.model_dump(mode="json", exclude_unset=True), indent=2))
        return
    print(f"{execution.id}  {execution.status}  mode {execution.mode}")
    for step in execution.steps:
        code = "" if step.exit_code is None else f" exit {step.exit_code}"
        risk = step.risk or "-"
        print(f"{step.id:>4} [{risk:^6}] {step.status:<17}{code}  {step.text[:80]}")
        if step.detail:
            print(f"{'':>6}{step.detail}")
        awaiting = step.awaiting
        if awaiting:
            until = f" (until {awaiting.deadline})" if awaiting.deadline else ""
            print(f"{'':>6}awaits: {awaiting.message}{until}")
            print(f"{'':>6}answer with: {', '.join(awaiting.allowed)}")
        for decision in step.decisions:
            mark = "" if decision.accepted else f" REFUSED: {decision.reason}"
            print(f"{'':>6}{decision.decision} by {decision.display_name}{mark}")
        for line in (step.output or "").splitlines()[:20]:
            print(f"{'':>6}| {line}")


def cmd_list(args: argparse.Namespace, client: Any) -> int:
    from ddoc.execution.views import ExecutionSummary

    params = {"status": args.status} if args.status else None
    for found in client.request("GET", "/executions", params=params):
        execution = ExecutionSummary.model_validate(found)
        created_at = execution.model_dump(mode="json")["created_at"]  # as the API wrote it
        print(
            f"{execution.id}  {execution.status:<15} {execution.mode:<10} "
            f"{execution.runbook_id}  {created_at}"
        )
    return 0


def cmd_save_as_version(args: argparse.Namespace, client: Any) -> int:
    saved = client.request("POST", f"/executions/{args.execution_id}/save-as-version")
    print(f"{saved['runbook_id']}  version {saved['version']} saved from {args.execution_id}:")
    for change in saved["changes"]:
        if not change["applied"]:
            continue
        if change["kind"] == "skipped":
            print(f"  {change['step_id']}: removed (skipped): {change['text']}")
        else:
            print(f"  {change['step_id']}: {change['original']}  ->  {change['edited']}")
    return 0
