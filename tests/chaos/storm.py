"""A storm of webhook deliveries through `ddoc api`, from senders that retry what was not answered
2xx (as Alertmanager does), with a hook called once after the k-th 2xx answer: the kill."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from tests.alert_payloads import alertmanager_v4, am_alert

RUNBOOK = """---
title: Chaos service down
alerts: [ChaosServiceDown]
---
# Chaos service down

## Steps

1. Say which pod:

   ```bash
   echo "pod=$POD"
   ```

2. Restart it:

   ```bash
   kubectl -n $NAMESPACE rollout restart deployment/$POD
   ```
"""


async def add_runbook(base: str, api_key: str) -> None:
    """The storm's runbook, with the blast-radius limits lifted: every alert starts it."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        added = await http.post("/runbooks", json={"content": RUNBOOK, "source_path": "c.md"})
        assert added.status_code == 201, added.text
        most = 10_000
        lifted = await http.patch(
            "/settings",
            json={
                "blast_radius": {
                    "max_concurrent_per_runbook": most,
                    "max_concurrent_per_service": most,
                    "max_runs_per_hour": {"copilot": most, "autopilot": most},
                }
            },
        )
        assert lifted.status_code == 200, lifted.text


@dataclass
class Storm:
    accepted: list[str] = field(default_factory=list)  # fingerprints answered 2xx
    refused: list[str] = field(default_factory=list)  # "fingerprint: status or error", retried


async def deliver(
    base: str,
    token: str,
    fingerprints: list[str],
    *,
    senders: int,
    kill_after: int,
    kill: Callable[[int], Awaitable[None]],
    within: float = 100,
) -> Storm:
    """Deliver one alert per request; once `kill_after` were answered 2xx, await `kill(n)` (n:
    how many were) while the other senders go on."""
    storm = Storm()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for fingerprint in fingerprints:
        queue.put_nowait(fingerprint)
    hook = {"Authorization": f"Bearer {token}"}
    fired = False

    async def sender(http: httpx.AsyncClient) -> None:
        nonlocal fired
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not queue.empty():
            fingerprint = queue.get_nowait()
            body = alertmanager_v4(
                am_alert(
                    "ChaosServiceDown",
                    fingerprint=fingerprint,
                    namespace="chaos",
                    pod=f"pod-{fingerprint}",
                )
            )
            while True:
                try:
                    answer = await http.post("/webhooks/alertmanager", json=body, headers=hook)
                    if 200 <= answer.status_code < 300:
                        storm.accepted.append(fingerprint)
                        if len(storm.accepted) >= kill_after and not fired:
                            fired = True
                            await kill(len(storm.accepted))
                        break
                    storm.refused.append(f"{fingerprint}: {answer.status_code}")
                except httpx.HTTPError as err:
                    storm.refused.append(f"{fingerprint}: {type(err).__name__}")
                assert loop.time() < deadline, f"{fingerprint} never accepted: {storm.refused}"
                await asyncio.sleep(0.5)

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await asyncio.gather(*(sender(http) for _ in range(senders)))
    return storm
