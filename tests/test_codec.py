"""Payload encryption end to end on the dev server: a command's output is not readable in the raw
history Temporal keeps, and is readable through the codec endpoint with the tenant's API key
(never with another tenant's). Keys rotate by key id."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agent_worker.main import build_agent
from ddoc.contracts import codec
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.settings import Settings
from ddoc.execution.store import server_codec
from ddoc.platform import tenancy
from tests.conftest import Credentials, eventually, serve_api
from worker.main import ACTIVITY_THREADS, build_worker

SECRET_OUTPUT = "tenant-secret-canary-7f3a"
RUNBOOK = f"""# Print the canary

1. Print it: `echo {SECRET_OUTPUT}`
"""


def keyfile(path: Path, entries: dict[str, dict[str, Any]]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


async def test_outputs_are_ciphertext_in_history_and_plain_through_the_codec(
    settings: Settings,
    engine: Engine,
    credentials: Credentials,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    tenant = settings.tenant
    old_key, new_key = codec.new_key(), codec.new_key()
    all_keys = keyfile(
        tmp_path / "keys.json",
        {
            tenant: {"active": "k2", "keys": {"k1": old_key, "k2": new_key}},
            "*": {"active": "d1", "keys": {"d1": codec.new_key()}},
            "other": {"active": "o1", "keys": {"o1": codec.new_key()}},
        },
    )
    agent_keys = keyfile(
        tmp_path / "agent-keys.json", {tenant: {"active": "k2", "keys": {"k2": new_key}}}
    )
    settings = settings.replace(
        codec_keys_file=all_keys, codec_cors_origins=("http://temporal-ui.example:8233",)
    )
    config = temporal_env.client.service_client.config
    temporal = settings.temporal
    control_client = await temporal_conn.connect(
        temporal, codec=server_codec(all_keys, engine), identity="test-worker"
    )
    agent_client = await temporal_conn.connect(
        temporal,
        codec=codec.EncryptionCodec(
            codec.load_keys(agent_keys), codec.fixed_tenant(tenant), require_fallback=False
        ),
        identity="test-agent",
    )
    raw_client = await Client.connect(config.target_host, namespace=temporal.namespace)
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        async with (
            build_worker(
                control_client, engine, task_queue=settings.control_task_queue, executor=executor
            ),
            build_agent(agent_client, tenant_id=tenant, environment=settings.environment),
            serve_api(settings) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            headers = {"Authorization": f"Bearer {credentials.api_key}"}
            runbook = await http.post("/runbooks", json={"content": RUNBOOK}, headers=headers)
            started = await http.post(
                "/executions", json={"runbook_id": runbook.json()["id"]}, headers=headers
            )
            assert started.status_code == 201, started.text
            execution_id = started.json()["id"]

            async def succeeded() -> dict[str, Any] | None:
                body: dict[str, Any] = (
                    await http.get(f"/executions/{execution_id}", headers=headers)
                ).json()
                return body if body["status"] == "succeeded" else None

            done = await eventually(succeeded)
            assert done["steps"][0]["output"] == f"{SECRET_OUTPUT}\n"  # the product sees it

            # The history as the server stores it: no canary anywhere, payloads encrypted.
            history = await raw_client.get_workflow_handle(execution_id).fetch_history()
            raw = history.to_json()
            assert SECRET_OUTPUT not in raw
            assert base64.b64encode(b"binary/encrypted").decode() in raw
            payloads = [
                p
                for event in history.events
                if event.HasField("activity_task_completed_event_attributes")
                for p in event.activity_task_completed_event_attributes.result.payloads
            ]
            assert payloads and all(p.metadata["encoding"] == b"binary/encrypted" for p in payloads)
            # The agent's results (its command's output among them) are under the tenant's key.
            agent_results = [
                p for p in payloads if p.metadata["encryption-key-id"] == f"{tenant}/k2".encode()
            ]

            # The codec endpoint: the tenant's key decrypts; no key, or another tenant's, not.
            body = {
                "payloads": [
                    {"metadata": {k: b64(v) for k, v in p.metadata.items()}, "data": b64(p.data)}
                    for p in agent_results
                ]
            }
            decoded = await http.post("/codec/decode", json=body, headers=headers)
            assert decoded.status_code == 200, decoded.text
            plain = [base64.b64decode(p["data"]).decode() for p in decoded.json()["payloads"]]
            assert any(SECRET_OUTPUT in text for text in plain)
            assert (await http.post("/codec/decode", json=body)).status_code == 401
            other_key = f"ddoc_test_o_{uuid.uuid4().hex}"
            tenancy.bootstrap(engine, tenant_id="other", api_key=other_key)
            refused = await http.post(
                "/codec/decode", json=body, headers={"Authorization": f"Bearer {other_key}"}
            )
            assert refused.status_code == 403 and "another tenant" in refused.json()["detail"]

            # CORS for the Temporal UI's origin only; the browser sends the /ui cookie.
            preflight = await http.options(
                "/ui/codec/decode",
                headers={
                    "Origin": "http://localhost:8233",
                    "Access-Control-Request-Method": "POST",
                },
            )
            assert preflight.status_code == 403  # not configured for this origin
            allowed = await http.options(
                "/ui/codec/decode",
                headers={
                    "Origin": "http://temporal-ui.example:8233",
                    "Access-Control-Request-Method": "POST",
                },
            )
            assert allowed.status_code == 204
            assert allowed.headers["access-control-allow-origin"] == (
                "http://temporal-ui.example:8233"
            )
            assert allowed.headers["access-control-allow-credentials"] == "true"
            http.cookies.set("ddoc_ui_key", credentials.api_key)  # as /ui/login leaves it
            ui = await http.post("/ui/codec/decode", json=body)
            assert ui.status_code == 200 and ui.json() == decoded.json()

    # Rotation: payloads under the old key id still decode once k1 is no longer active.
    sealed = codec.encrypt(
        Payload(metadata={"encoding": b"json/plain"}, data=b'"old"'),
        codec.load_keys({tenant: {"active": "k1", "keys": {"k1": old_key}}})[tenant].keys["k1"],
        f"{tenant}/k1",
    )
    rotated = codec.EncryptionCodec(codec.load_keys(all_keys), codec.fixed_tenant(tenant))
    assert (await rotated.decode([sealed]))[0].data == b'"old"'
    (fresh,) = await rotated.for_tenant(tenant).encode([Payload(data=b"x")])
    assert fresh.metadata["encryption-key-id"] == f"{tenant}/k2".encode()


def test_bad_key_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    short = base64.b64encode(b"0" * 16).decode()
    for entries, reason in (
        ({"t": {"active": "a", "keys": {"a": short}}}, "32 bytes"),
        ({"t": {"active": "b", "keys": {"a": codec.new_key()}}}, "active key"),
        ({"t": {"active": "a", "keys": {"a": "not base64!"}}}, "not base64"),
    ):
        with pytest.raises(codec.CodecError, match=reason):
            codec.load_keys(keyfile(tmp_path / "k.json", entries))
    with pytest.raises(codec.CodecError, match='"\\*" entry'):
        codec.EncryptionCodec(
            codec.load_keys({"t": {"active": "a", "keys": {"a": codec.new_key()}}}),
            codec.fixed_tenant("t"),
        )
