"""`ddoc audit verify`: check a tenant's hash chain in the database (exit 1 when broken)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="check the audit trail")
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify", help="verify the hash chain (needs DDOC_DATABASE_URL); exit 1 when broken"
    )
    verify.add_argument("--tenant", help="default: DDOC_TENANT")
    verify.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace, settings: Any) -> int:
    from sqlmodel import Session

    from ddoc.platform import audit, db

    engine = db.make_engine(settings.require_database_url(), pool_size=1)
    tenant_id = args.tenant or settings.tenant
    try:
        with Session(engine) as session:
            result = audit.verify(session, tenant_id=tenant_id)
    finally:
        engine.dispose()
    if result.ok:
        print(f"audit trail of {tenant_id}: {result.checked} events, chain intact")
        return 0
    print(
        f"audit trail of {tenant_id} is BROKEN at event {result.broken_seq}: {result.reason} "
        f"({result.checked} events before it are intact)",
        file=sys.stderr,
    )
    return 1
