"""`ddoc incident list|show|pick`: incidents and their matches; pick a runbook for one (the pick
is learned for alerts like it)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ddoc.cli.client import ApiClient


def add_parser(sub: Any) -> None:
    incident = sub.add_parser("incident", help="list incidents, pick a runbook for one")
    incident.set_defaults(func=lambda args, settings: _run(args))
    actions = incident.add_subparsers(dest="incident_command", required=True, metavar="ACTION")

    lst = actions.add_parser("list", help="incidents, newest first")
    lst.add_argument("--status", choices=["open", "resolved"])
    lst.add_argument(
        "--match-status", choices=["attached", "suggested", "unmatched", "limit_reached"]
    )
    lst.set_defaults(action=cmd_list)

    show = actions.add_parser("show", help="an incident with its match and alerts")
    show.add_argument("incident_id")
    show.set_defaults(action=cmd_show)

    pick = actions.add_parser(
        "pick", help="run a runbook for an incident; alerts like it get that runbook from now on"
    )
    pick.add_argument("incident_id")
    pick.add_argument("runbook_id")
    pick.set_defaults(action=cmd_pick)


def _run(args: argparse.Namespace) -> int:
    from ddoc.cli.client import run_command  # httpx: not on the agent's light install

    result: int = run_command(args.action, args)
    return result


def cmd_list(args: argparse.Namespace, client: ApiClient) -> int:
    from ddoc.alerts.views import IncidentSummary

    params = {k: v for k, v in (("status", args.status), ("match_status", args.match_status)) if v}
    for found in client.request("GET", "/incidents", params=params):
        incident = IncidentSummary.model_validate(found)
        print(
            f"{incident.id}  {incident.status:<8} {incident.match_status:<9} "
            f"{incident.source:<12} {incident.title}"
            + (f"  -> {incident.runbook_id}" if incident.runbook_id else "")
        )
    return 0


def cmd_show(args: argparse.Namespace, client: ApiClient) -> int:
    from ddoc.alerts.views import IncidentView

    incident = IncidentView.model_validate(client.request("GET", f"/incidents/{args.incident_id}"))
    # As the API answered it.
    print(json.dumps(incident.model_dump(mode="json", exclude_unset=True), indent=2))
    return 0


def cmd_pick(args: argparse.Namespace, client: ApiClient) -> int:
    from ddoc.execution.views import ExecutionView

    execution = ExecutionView.model_validate(
        client.request(
            "POST", f"/incidents/{args.incident_id}/runbook", json={"runbook_id": args.runbook_id}
        )
    )
    print(f"{execution.id}  {execution.status}  mode {execution.mode}")
    return 0
