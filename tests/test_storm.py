"""An alert storm: 2,000 concurrent deliveries over 50 dedup keys start exactly 50 executions,
and every repeat is counted on its incident."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import Engine, text

from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually

RUNBOOK = """---
title: Storm check
alerts: [StormAlert]
---
# Storm check

1. Note the pod: `echo "$POD"`
"""

KEYS = 50
DELIVERIES = 2000


async def test_storm_starts_one_execution_per_dedup_key(stack: Stack, engine: Engine) -> None:
    created = await stack.http.post(
        "/runbooks", json={"content": RUNBOOK}, headers=stack.api_headers()
    )
    assert created.status_code == 201
    # Under the default blast-radius limits most of these would be held (docs/LIMITS.md): this
    # test is about one execution per key under concurrency, so the limits are lifted.
    lifted = await stack.http.patch(
        "/settings",
        json={
            "blast_radius": {
                "max_concurrent_per_runbook": 1000,
                "max_runs_per_hour": {"copilot": 1000},
            }
        },
        headers=stack.api_headers(),
    )
    assert lifted.status_code == 200
    # No service label: these are 50 distinct problems, not one service's correlated alerts.
    bodies = [
        alertmanager_v4(
            am_alert("StormAlert", fingerprint=f"storm{i % KEYS:011d}", pod=f"p{i % KEYS}")
        )
        for i in range(DELIVERIES)
    ]
    random.Random(7).shuffle(bodies)
    gate = asyncio.Semaphore(200)

    async def deliver(body: object) -> int:
        async with gate:
            response = await stack.http.post(
                "/webhooks/alertmanager", json=body, headers=stack.webhook_headers()
            )
            return response.status_code

    codes = await asyncio.gather(*(deliver(b) for b in bodies))
    assert sorted(set(codes)) == [202]

    with engine.connect() as conn:
        incidents = conn.execute(
            text("SELECT dedup_key, alert_count, execution_id FROM incidents ORDER BY dedup_key")
        ).all()
        executions = conn.execute(text("SELECT count(*) FROM executions")).scalar_one()
        alerts = conn.execute(text("SELECT count(*) FROM alerts")).scalar_one()
    assert len(incidents) == KEYS
    assert {row.alert_count for row in incidents} == {DELIVERIES // KEYS}
    assert executions == KEYS
    assert alerts == DELIVERIES
    assert len({row.execution_id for row in incidents}) == KEYS

    async def workflows() -> int:
        result = await stack.client.count_workflows(f'TenantId = "{stack.settings.tenant}"')
        return result.count if result.count == KEYS else 0

    assert await eventually(workflows, within=60) == KEYS
