"""`ddoc match FILE` (which runbook would this alert get, and why) and `ddoc alert fire`
(send a test alert through the webhook path)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ddoc.cli.client import ApiClient

SOURCES = ["alertmanager", "pagerduty", "opsgenie", "grafana", "generic"]


def add_parsers(sub: Any) -> None:
    match = sub.add_parser("match", help="rank runbooks for a webhook body; starts nothing")
    match.add_argument("file", type=Path, help="a webhook body (JSON); - for standard input")
    match.add_argument("--source", choices=SOURCES, default="alertmanager")
    match.add_argument("--json", action="store_true")
    match.set_defaults(func=lambda args, settings: _run(cmd_match, args))

    alert = sub.add_parser("alert", help="send alerts")
    actions = alert.add_subparsers(dest="alert_command", required=True, metavar="ACTION")
    fire = actions.add_parser("fire", help="send a test alert (generic webhook format)")
    fire.add_argument("--title", required=True)
    fire.add_argument("--alertname", help="sets the alertname label (explicit triggers)")
    fire.add_argument("--description")
    fire.add_argument("--service")
    fire.add_argument("--severity", default="warning")
    fire.add_argument("--environment")
    fire.add_argument("--dedup-key")
    fire.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    fire.add_argument("--resolve", action="store_true", help="send it as resolved")
    fire.set_defaults(func=lambda args, settings: _run(cmd_fire, args))


def _run(action: Any, args: argparse.Namespace) -> int:
    from ddoc.cli.client import ApiClient, run_command, webhook_client

    factory = webhook_client if action is cmd_fire else ApiClient.from_env
    result: int = run_command(action, args, client_factory=factory)
    return result


def cmd_match(args: argparse.Namespace, client: ApiClient) -> int:
    raw = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{args.file}: not JSON ({err})") from None
    result = client.request("POST", f"/match/{args.source}", json=body)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for alert in result["alerts"]:
        attached = alert["attached"]
        verdict = (
            f"attach {attached['source_path'] or attached['runbook_id']} ({attached['score']:.2f})"
            if attached
            else {"suggested": "suggest only", "unmatched": "no runbook"}.get(alert["status"], "")
        )
        print(f"{alert['dedup_key']}: {verdict}")
        for candidate in alert["candidates"]:
            print(f"  {candidate['score']:.2f}  {candidate['title']}  [{candidate['source_path']}]")
            for reason in candidate["reasons"]:
                print(f"        - {reason}")
    return 0


def cmd_fire(args: argparse.Namespace, client: ApiClient) -> int:
    labels = {}
    for pair in args.label:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--label wants KEY=VALUE, got {pair!r}")
        labels[key] = value
    if args.alertname:
        labels["alertname"] = args.alertname
    body: dict[str, Any] = {
        "title": args.title,
        "severity": args.severity,
        "labels": labels,
        "status": "resolved" if args.resolve else "firing",
    }
    for field in ("description", "service", "environment", "dedup_key"):
        if getattr(args, field):
            body[field] = getattr(args, field)
    result = client.request("POST", "/webhooks/generic", json=body)
    for outcome in result["alerts"]:
        print(
            f"{outcome['status']}: incident {outcome['incident_id']}"
            + (f", execution {outcome['execution_id']}" if outcome["execution_id"] else "")
        )
    return 0
