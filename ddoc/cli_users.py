"""`ddoc user add|list`: register the people who decide on steps (admin key)."""

from __future__ import annotations

import argparse
from typing import Any

ROLES = ("viewer", "responder", "approver", "admin")


def add_parser(sub: Any) -> None:
    user = sub.add_parser("user", help="register responders and their roles")
    user.set_defaults(func=lambda args, settings: _run(args))
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="register a responder")
    add.add_argument("email")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument(
        "--role", action="append", required=True, choices=ROLES, help="repeat for several"
    )
    add.add_argument("--slack-user-id", help="else found by e-mail through Slack's users.info")
    add.set_defaults(action=cmd_add)

    lst = actions.add_parser("list", help="registered responders")
    lst.set_defaults(action=cmd_list)


def _run(args: argparse.Namespace) -> int:
    from ddoc.client import run_command  # httpx: not on the agent's light install

    return run_command(args.action, args)


def cmd_add(args: argparse.Namespace, client: Any) -> int:
    body: dict[str, Any] = {"email": args.email, "display_name": args.name, "roles": args.role}
    if args.slack_user_id:
        body["slack_user_id"] = args.slack_user_id
    user = client.request("POST", "/users", json=body)
    print(f"{user['id']}  {user['email']}  {','.join(user['roles'])}")
    return 0


def cmd_list(args: argparse.Namespace, client: Any) -> int:
    for user in client.request("GET", "/users"):
        slack = user["slack_user_id"] or "-"
        print(f"{user['id']}  {user['email']:<32} {','.join(user['roles']):<24} slack {slack}")
    return 0
