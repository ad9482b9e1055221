"""The `ddoc` command line.

Server-side subcommands import their dependencies lazily, so `ddoc agent` works on the light
agent install (temporalio + PyYAML only).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import NoReturn

from ddoc.contracts.settings import ConfigError, Settings
from ddoc.platform import logs

_SERVICES = {"api", "worker", "agent", "migrate"}
ServeFn = Callable[[Settings, asyncio.Event], Awaitable[None]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddoc", description="dd0c/run: AI-assisted runbook automation for on-call teams."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole system locally on embedded components")
    up.add_argument(
        "--data-dir", type=Path, help="where state lives (default: $DDOC_DATA_DIR or ./.ddoc)"
    )
    up.add_argument("--api-port", type=_port, default=8080, help="API port (default 8080)")
    up.add_argument(
        "--temporal-port", type=_port, default=7233, help="Temporal gRPC port (default 7233)"
    )
    up.add_argument(
        "--ui-port", type=_port, default=8233, help="Temporal Web UI port (default 8233)"
    )
    up.set_defaults(func=_cmd_up)

    api = sub.add_parser("api", help="run the API server (needs DDOC_DATABASE_URL)")
    api.add_argument("--host", help="bind address (default: $DDOC_API_HOST or 127.0.0.1)")
    api.add_argument("--port", type=_port, help="port (default: $DDOC_API_PORT or 8080)")
    api.add_argument(
        "--workers",
        type=int,
        help="worker processes (default: $DDOC_API_WORKERS or 1); each loads the embedding model",
    )
    api.set_defaults(func=_cmd_api)

    worker = sub.add_parser("worker", help="run the control-plane worker (needs DDOC_DATABASE_URL)")
    worker.set_defaults(func=_cmd_worker)

    agent = sub.add_parser("agent", help="run an agent worker inside your network")
    agent.add_argument("--tenant", help="tenant id (default: $DDOC_TENANT or 'default')")
    agent.add_argument("--environment", help="environment (default: $DDOC_ENVIRONMENT or 'local')")
    agent.set_defaults(func=_cmd_agent)

    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(func=_cmd_migrate)

    codec_cmd = sub.add_parser("codec", help="payload encryption keys")
    codec_actions = codec_cmd.add_subparsers(dest="codec_command", required=True, metavar="ACTION")
    codec_actions.add_parser(
        "new-key", help="print a new random AES-256 key (base64) for DDOC_CODEC_KEYS_FILE"
    ).set_defaults(func=_cmd_codec_new_key)

    secrets_cmd = sub.add_parser("secrets", help="tenant secrets encrypted at rest (operators)")
    secrets_actions = secrets_cmd.add_subparsers(
        dest="secrets_command", required=True, metavar="ACTION"
    )
    secrets_actions.add_parser(
        "new-key", help="print a new random master key (base64) for DDOC_SECRETS_KEY(_FILE)"
    ).set_defaults(func=_cmd_secrets_new_key)
    secrets_actions.add_parser(
        "rotate",
        help="re-wrap every secret's data key with the current (first) master key, and encrypt "
        "secrets an older release left in tenant settings (DB URL)",
    ).set_defaults(func=_cmd_secrets_rotate)

    tenant = sub.add_parser(
        "tenant", help="create a tenant with an admin key and a webhook token (operators; DB URL)"
    )
    tenant_actions = tenant.add_subparsers(dest="tenant_command", required=True, metavar="ACTION")
    create = tenant_actions.add_parser("create", help="create a tenant (no-op if it exists)")
    create.add_argument("tenant_id", help="letters, digits, - and _; at most 64")
    create.add_argument("--name")
    create.set_defaults(func=_cmd_tenant_create)

    from ddoc.cli import alerts as cli_alerts
    from ddoc.cli import audit as cli_audit
    from ddoc.cli import drafts as cli_drafts
    from ddoc.cli import executions as cli_exec
    from ddoc.cli import incidents as cli_incidents
    from ddoc.cli import runbooks as cli_runbooks
    from ddoc.cli import users as cli_users

    cli_runbooks.add_parser(sub)
    cli_drafts.add_watch_parser(sub)
    cli_alerts.add_parsers(sub)
    cli_incidents.add_parser(sub)
    cli_exec.add_parser(sub)
    cli_users.add_parser(sub)
    cli_audit.add_parser(sub)
    mcp = sub.add_parser(
        "mcp",
        help="serve MCP over stdio for AI assistants (Claude Desktop, Claude Code): a bridge to "
        "the API's /mcp with DDOC_API_URL and DDOC_API_KEY",
    )
    mcp.set_defaults(func=_cmd_mcp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"ddoc: {err}", file=sys.stderr)
        return 2
    # Services log; commands a person runs (`ddoc up`, runbook, match, …) print results and
    # keep library chatter out of the way.
    logs.configure(
        settings.log_level if args.command in _SERVICES else "WARNING",
        settings.log_format if args.command in _SERVICES else "text",
    )
    try:
        result: int = args.func(args, settings)
    except ConfigError as err:
        print(f"ddoc: {err}", file=sys.stderr)
        return 2
    return result


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return port


def _cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from ddoc.cli.up import Supervisor, UpOptions

    options = UpOptions(
        data_dir=args.data_dir or settings.data_dir,
        api_port=args.api_port,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
    )
    return Supervisor(options, settings).run()


def _cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    settings.require_database_url()
    workers = args.workers or settings.api_workers
    # Served by name (nothing imports `api/`): uvicorn imports the app factory, in this process
    # or in each of several, and the factory reads the same DDOC_* settings from the env.
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        workers=workers if workers > 1 else None,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    _exit_now(0)


def _cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the MCP SDK (and pydantic) stay out of the agent's process.
    from ddoc.cli import mcp

    return mcp.run(args, settings)


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.main import run_worker

    settings.require_database_url()
    return _serve(run_worker, settings)


def _cmd_agent(args: argparse.Namespace, settings: Settings) -> int:
    from agent_worker.main import run_agent

    settings = settings.replace(
        tenant=args.tenant or settings.tenant,
        environment=args.environment or settings.environment,
    )
    return _serve(run_agent, settings)


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from ddoc.platform import db

    engine = db.make_engine(settings.require_database_url(), pool_size=1)
    try:
        applied = db.migrate(engine)
    except (db.MigrationChanged, db.MigrationsPending) as err:
        print(f"ddoc: {err}", file=sys.stderr)  # what the operator has to do, without a traceback
        return 1
    finally:
        engine.dispose()
    print(f"applied migrations: {applied}" if applied else "schema is up to date")
    return 0


def _cmd_codec_new_key(args: argparse.Namespace, settings: Settings) -> int:
    from ddoc.contracts import codec

    print(codec.new_key())
    return 0


def _cmd_secrets_new_key(args: argparse.Namespace, settings: Settings) -> int:
    from ddoc.platform import secrets

    print(secrets.new_key())
    return 0


def _cmd_secrets_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import OperationalError

    from ddoc.platform import db, secrets, tenancy

    try:
        keyring = secrets.keyring_from_env()
        key_id, _ = keyring.current
    except secrets.SecretsError as err:
        print(f"ddoc: {err}", file=sys.stderr)
        return 2
    engine = db.make_engine(settings.require_database_url(), pool_size=1)
    try:
        rewrapped, sealed = tenancy.rotate_secrets(engine, keyring=keyring)
    except secrets.SecretsError as err:
        print(f"ddoc: {err}", file=sys.stderr)
        return 1
    except OperationalError as err:
        print(f"ddoc: cannot reach the database: {err.orig}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"re-wrapped {rewrapped} secret(s) with master key {key_id}")
    if sealed:
        print(f"encrypted the plaintext secrets of {sealed} tenant(s)' settings")
    print("the other master keys are no longer needed by the database")
    return 0


def _cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import OperationalError
    from sqlmodel import Session

    from ddoc.platform import db, tenancy

    if not tenancy.TENANT_ID.fullmatch(args.tenant_id):
        print("ddoc: a tenant id is 1-64 letters, digits, - or _", file=sys.stderr)
        return 2
    engine = db.make_engine(settings.require_database_url(), pool_size=1)
    try:
        with Session(engine) as session:
            tenancy.ensure_tenant(session, tenant_id=args.tenant_id, name=args.name)
            session.commit()
        created = tenancy.bootstrap(engine, tenant_id=args.tenant_id)
    except OperationalError as err:
        print(f"ddoc: cannot reach the database: {err.orig}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if created.api_key is None:
        print(f"tenant {args.tenant_id} exists already; its credentials are unchanged")
        return 0
    print(f"tenant {args.tenant_id} created (credentials shown once)")
    print(f"DDOC_API_KEY={created.api_key}")
    print(f"DDOC_WEBHOOK_TOKEN={created.webhook_token}")
    return 0


def _serve(fn: ServeFn, settings: Settings) -> int:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await fn(settings, stop)

    code = 0
    try:
        asyncio.run(runner())
    except ConnectionError as err:
        logging.getLogger("ddoc").error("%s", err)
        code = 1
    except Exception:
        logging.getLogger("ddoc").exception("stopped by an unexpected error")
        code = 1
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    # The Temporal SDK's native runtime can crash during interpreter finalisation (sdk-python
    # issue 300). Everything was shut down explicitly by now: flush and leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
