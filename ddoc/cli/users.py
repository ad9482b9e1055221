"""`ddoc user add|list`: register the people who decide on steps; `ddoc key create|list|rotate|
revoke`: the tenant's API keys (admin key for both)."""

from __future__ import annotations

import argparse
from typing import Any

from ddoc.contracts.roles import Role

ROLES = [role.value for role in Role]


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

    key = sub.add_parser("key", help="create, list, rotate and revoke the tenant's API keys")
    key.set_defaults(func=lambda args, settings: _run(args))
    keys = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    create = keys.add_parser("create", help="a new key (printed once)")
    create.add_argument("name")
    create.add_argument(
        "--role", action="append", required=True, choices=ROLES, help="repeat for several"
    )
    create.set_defaults(action=cmd_key_create)
    keys.add_parser("list", help="the keys (never the keys themselves)").set_defaults(
        action=cmd_key_list
    )
    rotate = keys.add_parser("rotate", help="replace a key; the old one ends after --grace")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=int, default=0, metavar="SECONDS")
    rotate.set_defaults(action=cmd_key_rotate)
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(action=cmd_key_revoke)


def _run(args: argparse.Namespace) -> int:
    from ddoc.cli.client import run_command  # httpx: not on the agent's light install

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


def cmd_key_create(args: argparse.Namespace, client: Any) -> int:
    made = client.request("POST", "/api-keys", json={"name": args.name, "roles": args.role})
    print(f"{made['id']}  {made['name']}  {','.join(made['roles'])}")
    print(f"key (shown once): {made['key']}")
    return 0


def cmd_key_list(args: argparse.Namespace, client: Any) -> int:
    for key in client.request("GET", "/api-keys"):
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        print(
            f"{key['id']}  {key['prefix']}…  {key['name']:<24} {','.join(key['roles']):<20} {state}"
        )
    return 0


def cmd_key_rotate(args: argparse.Namespace, client: Any) -> int:
    made = client.request(
        "POST", f"/api-keys/{args.key_id}/rotate", json={"grace_seconds": args.grace}
    )
    print(f"{made['id']} replaces {args.key_id} (which ends in {args.grace} s)")
    print(f"key (shown once): {made['key']}")
    return 0


def cmd_key_revoke(args: argparse.Namespace, client: Any) -> int:
    revoked = client.request("DELETE", f"/api-keys/{args.key_id}")
    print(f"{revoked['id']} revoked at {revoked['revoked_at']}")
    return 0
