"""`ddoc exec start|status|list`: run a runbook by hand and follow executions."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    exe = sub.add_parser("exec", help="start and follow executions")
    exe.set_defaults(func=lambda args, settings: _run(args))
    actions = exe.add_subparsers(dest="exec_command", required=True, metavar="ACTION")

    start = actions.add_parser("start", help="start a runbook by hand")
    start.add_argument("runbook_id")
    start.add_argument("--mode", help="default: the runbook's trust level")
    start.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    start.set_defaults(action=cmd_start)

    status = actions.add_parser("status", help="an execution's steps, outputs and exit codes")
    status.add_argument("execution_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(action=cmd_status)

    lst = actions.add_parser("list", help="executions, newest first")
    lst.add_argument("--status")
    lst.set_defaults(action=cmd_list)


def _run(args: argparse.Namespace) -> int:
    from ddoc.client import run_command  # httpx: not on the agent's light install

    return run_command(args.action, args)


def cmd_start(args: argparse.Namespace, client: Any) -> int:
    variables = {}
    for pair in args.var:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--var wants NAME=VALUE, got {pair!r}")
        variables[name] = value
    body: dict[str, Any] = {"runbook_id": args.runbook_id, "variables": variables}
    if args.mode:
        body["mode"] = args.mode
    execution = client.request("POST", "/executions", json=body)
    print(f"{execution['id']}  {execution['status']}  mode {execution['mode']}")
    return 0


def cmd_status(args: argparse.Namespace, client: Any) -> int:
    execution = client.request("GET", f"/executions/{args.execution_id}")
    if args.json:
        print(json.dumps(execution, indent=2, default=str))
        return 0
    print(f"{execution['id']}  {execution['status']}  mode {execution['mode']}")
    for step in execution["steps"]:
        code = "" if step["exit_code"] is None else f" exit {step['exit_code']}"
        risk = step["risk"] or "-"
        print(f"{step['id']:>4} [{risk:^6}] {step['status']:<17}{code}  {step['text'][:80]}")
        if step.get("detail"):
            print(f"{'':>6}{step['detail']}")
        for line in (step.get("output") or "").splitlines()[:20]:
            print(f"{'':>6}| {line}")
    return 0


def cmd_list(args: argparse.Namespace, client: Any) -> int:
    params = {"status": args.status} if args.status else None
    for execution in client.request("GET", "/executions", params=params):
        print(
            f"{execution['id']}  {execution['status']:<15} {execution['mode']:<10} "
            f"{execution['runbook_id']}  {execution['created_at']}"
        )
    return 0
