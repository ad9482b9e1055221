"""Chaos scenarios: real processes killed with SIGKILL at a point chosen by a seeded RNG.

Every scenario logs its seed, each random choice it made and the exact command reproducing it
(`--chaos-seed`, default `DEFAULT_SEED`; the seed and the test's name make its RNG)."""

from __future__ import annotations

import logging
import random
import shlex
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.chaos.processes import TemporalServer
from tests.conftest import free_port
from tests.engine_harness import Harness

DEFAULT_SEED = 20261204
log = logging.getLogger("chaos")


@dataclass
class Chaos:
    """One scenario's seeded randomness, its working directory and what it did."""

    seed: int
    test: str
    rng: random.Random
    dir: Path
    sentinels: Path
    reproduce: str
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.notes.append(message)
        log.warning("[seed %s] %s", self.seed, message)

    def uniform(self, what: str, low: float, high: float) -> float:
        value = round(self.rng.uniform(low, high), 3)
        self.note(f"{what}: {value}")
        return value

    def randint(self, what: str, low: int, high: int) -> int:
        value = self.rng.randint(low, high)
        self.note(f"{what}: {value} (of {low}..{high})")
        return value

    def describe(self) -> str:
        return f"seed {self.seed}; {'; '.join(self.notes)}; reproduce: {self.reproduce}"


@pytest.fixture
def chaos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chaos]:
    option = request.config.getoption("--chaos-seed")
    seed = DEFAULT_SEED if option is None else int(option)
    test = request.node.nodeid
    sentinels = tmp_path / "sentinels"
    sentinels.mkdir()
    reproduce = f"pytest -p no:cacheprovider {shlex.quote(test)} --chaos-seed={seed}"
    chaos = Chaos(seed, test, random.Random(f"{seed}:{request.node.name}"), tmp_path, sentinels,
                  reproduce)  # fmt: skip
    chaos.note(f"scenario {test}; reproduce: {reproduce}")
    yield chaos


@pytest.fixture
def temporal_server(tmp_path: Path) -> Iterator[TemporalServer]:
    """A dev server of the scenario's own (the session's cannot be killed)."""
    server = TemporalServer(tmp_path / "temporal", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def temporal_client(temporal_server: TemporalServer) -> AsyncIterator[Client]:
    yield await Client.connect(temporal_server.address)


@pytest.fixture
def control_queue() -> str:
    return f"ddoc.control.{uuid.uuid4().hex[:8]}"


def process_env(
    *, database_url: str, temporal: TemporalServer, tenant_id: str, control_queue: str
) -> dict[str, str]:
    """The settings `ddoc api|worker|agent` read, pointing at the scenario's components."""
    return {
        "DDOC_DATABASE_URL": database_url,
        "DDOC_TEMPORAL_ADDRESS": temporal.address,
        "DDOC_TEMPORAL_NAMESPACE": "default",
        "DDOC_CONTROL_TASK_QUEUE": control_queue,
        "DDOC_TENANT": tenant_id,
        "DDOC_ENVIRONMENT": "chaos",
        "DDOC_COMMAND_TIMEOUT": "30",
        "DDOC_AGENT_OFFLINE_TIMEOUT": "120",
    }


def harness_env(
    harness: Harness, database_url: str, temporal: TemporalServer, pagerduty_url: str, env: str
) -> dict[str, str]:
    """The settings of a `ddoc worker|agent` serving an engine harness's tenant and queue."""
    return {
        **process_env(
            database_url=database_url,
            temporal=temporal,
            tenant_id=harness.tenant_id,
            control_queue=harness.control_queue,
        ),
        "DDOC_ENVIRONMENT": env,
        "DDOC_PAGERDUTY_EVENTS_URL": f"{pagerduty_url}/v2/enqueue",
    }


def fake_kubectl(chaos: Chaos) -> Path:
    """A `kubectl` for the agent's PATH: each call (a restart: yellow) appends to the once-only
    file of its last argument's basename (`deployment/pod-3` → `once.pod-3`)."""
    bin_dir = chaos.dir / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"
        f'echo "$*" >> "{chaos.sentinels}/once.$(basename "$last")"\n'
    )
    script.chmod(0o755)
    return bin_dir
