"""Build and run an agent worker (`ddoc agent --tenant T --environment E`)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from agent_worker.commands import CommandActivities
from agent_worker.policy import AgentPolicy, PolicyError, load_policy
from agent_worker.selfcheck import SelfCheckProbes, agent_name
from ddoc.contracts import codec
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.settings import Settings, agent_task_queue

log = logging.getLogger(__name__)

MAX_CONCURRENT_COMMANDS = 10
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
POLICY_ENV_VAR = "DDOC_AGENT_POLICY"


def build_agent(
    client: Client, *, tenant_id: str, environment: str, commands: CommandActivities | None = None
) -> Worker:
    commands = commands or CommandActivities()
    queue = agent_task_queue(tenant_id, environment)
    # The self-check probe shares the command activity's policy, runner and redaction.
    probes = SelfCheckProbes(commands, agent=agent_name(queue))
    return Worker(
        client,
        task_queue=queue,
        activities=[commands.run_command, probes.probe],
        max_concurrent_activities=MAX_CONCURRENT_COMMANDS,
        # A command in flight gets this long to finish before it is cancelled (its process
        # group killed) when the agent stops.
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


def load_agent_policy(environ: Mapping[str, str] | None = None) -> AgentPolicy | None:
    """The local policy named by DDOC_AGENT_POLICY; None (with a warning) when it is unset."""
    environ = os.environ if environ is None else environ
    path = environ.get(POLICY_ENV_VAR)
    if not path:
        log.warning(
            "%s is not set: commands are unrestricted (no allow/deny rules, no local secrets)",
            POLICY_ENV_VAR,
        )
        return None
    policy = load_policy(Path(path), environ)
    log.info(
        "agent policy %s: %d allow and %d deny patterns, max timeout %ss, %d secrets",
        path,
        len(policy.allow),
        len(policy.deny),
        policy.max_timeout_seconds,
        len(policy.secrets),
    )
    return policy


async def run_agent(settings: Settings, stop: asyncio.Event) -> None:
    try:
        policy = load_agent_policy()
    except PolicyError as err:
        # Before connecting: a clear message and exit code 2, not a traceback.
        log.error("the agent will not start: %s", err)
        raise SystemExit(2) from None
    payload_codec = None
    if settings.codec_keys_file:
        # The agent holds its own tenant's keys only: it encrypts with them what it sends back.
        try:
            payload_codec = codec.EncryptionCodec(
                codec.load_keys(settings.codec_keys_file),
                codec.fixed_tenant(settings.tenant),
                require_fallback=False,
            )
        except (OSError, ValueError) as err:
            log.error("the agent will not start: DDOC_CODEC_KEYS_FILE: %s", err)
            raise SystemExit(2) from None
    client = await temporal_conn.connect_with_retry(
        settings.temporal,
        identity=f"ddoc-agent:{settings.tenant}.{settings.environment}@{socket.gethostname()}",
        codec=payload_codec,
    )
    worker = build_agent(
        client,
        tenant_id=settings.tenant,
        environment=settings.environment,
        commands=CommandActivities(policy=policy),
    )
    async with worker:
        log.info("agent polling %s", agent_task_queue(settings.tenant, settings.environment))
        await stop.wait()
