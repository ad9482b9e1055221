"""Runbook ingestion through the API: preview, versions, import batches, archive."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from tests.conftest import Stack

FIXTURES = Path(__file__).parent / "fixtures" / "foundation"
CRASHLOOP = (FIXTURES / "crashloop.md").read_text()


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


async def post(stack: Stack, path: str, body: dict[str, Any]) -> Any:
    return await stack.http.post(path, json=body, headers=stack.api_headers())


async def test_parse_preview_stores_nothing(stack: Stack, engine: Engine) -> None:
    response = await post(stack, "/runbooks/parse", {"content": CRASHLOOP})
    assert response.status_code == 200
    parsed = response.json()
    assert parsed["title"] == "Checkout pod crash-looping"
    assert [(s["id"], s["kind"], s["risk"]) for s in parsed["steps"]] == [
        ("s1", "command", "green"),
        ("s2", "command", "green"),
        ("s3", "command", "yellow"),
    ]
    assert (
        parsed["steps"][2]["command"] == "kubectl -n $NAMESPACE rollout restart deployment/checkout"
    )
    assert {v["name"]: v["source"] for v in parsed["variables"]} == {
        "pod": "label",
        "namespace": "label",
    }
    assert "score" in parsed["quality"]
    assert count(engine, "runbooks") == 0


async def test_bad_documents_get_clear_4xx_and_nothing_is_stored(
    stack: Stack, engine: Engine
) -> None:
    empty = await post(stack, "/runbooks", {"content": "   \n"})
    assert empty.status_code == 422
    assert "empty" in empty.json()["detail"]
    binary = await post(stack, "/runbooks", {"content": "\x00\x01\x02binary\x00" * 50})
    assert binary.status_code == 422
    assert "binary" in binary.json()["detail"]
    unknown = await post(stack, "/runbooks", {"content": "# x", "format": "docx"})
    assert unknown.status_code == 422
    huge = await stack.http.post(
        "/runbooks",
        content=b"# big\n" + b"x" * (10 * 1024 * 1024),
        headers={**stack.api_headers(), "Content-Type": "text/markdown"},
    )
    assert huge.status_code == 413
    no_steps = await post(stack, "/runbooks/parse", {"content": "# Notes\n\nJust some thoughts.\n"})
    assert no_steps.status_code == 200
    assert no_steps.json()["steps"] == []
    assert "no_actionable_step" in {f["code"] for f in no_steps.json()["quality"]["flags"]}
    assert count(engine, "runbooks") == 0 and count(engine, "runbook_versions") == 0


async def test_put_versions_and_history(stack: Stack) -> None:
    created = (await post(stack, "/runbooks", {"content": CRASHLOOP})).json()
    runbook_id = created["id"]
    same = await stack.http.put(
        f"/runbooks/{runbook_id}", json={"content": CRASHLOOP}, headers=stack.api_headers()
    )
    assert (same.json()["version"], same.json()["outcome"]) == (1, "unchanged")
    edited = CRASHLOOP.replace("df -P /", "df -P /var")
    updated = await stack.http.put(
        f"/runbooks/{runbook_id}", json={"content": edited}, headers=stack.api_headers()
    )
    assert (updated.json()["version"], updated.json()["outcome"]) == (2, "new_version")
    versions = await stack.http.get(f"/runbooks/{runbook_id}/versions", headers=stack.api_headers())
    assert [(v["version"], v["steps"]) for v in versions.json()] == [(1, 3), (2, 3)]
    v1 = await stack.http.get(f"/runbooks/{runbook_id}?version=1", headers=stack.api_headers())
    v2 = await stack.http.get(f"/runbooks/{runbook_id}", headers=stack.api_headers())
    assert v1.json()["parsed"]["steps"][1]["command"] == "df -P /"
    assert v2.json()["parsed"]["steps"][1]["command"] == "df -P /var"
    missing = await stack.http.put(
        "/runbooks/rb_missing", json={"content": CRASHLOOP}, headers=stack.api_headers()
    )
    assert missing.status_code == 404


async def test_import_batch_reports_each_document(stack: Stack, engine: Engine) -> None:
    documents = [
        {"content": CRASHLOOP, "source_path": "k8s/crashloop.md"},
        {"content": "", "source_path": "k8s/empty.md"},
        {"content": "1. Run `uptime`\n", "format": "text", "source_path": "hosts/load.txt"},
    ]
    first = await post(stack, "/runbooks/import", {"documents": documents})
    assert first.status_code == 200
    assert [(r["source_path"], r["outcome"]) for r in first.json()] == [
        ("k8s/crashloop.md", "created"),
        ("k8s/empty.md", "failed"),
        ("hosts/load.txt", "created"),
    ]
    assert first.json()[1]["error"] == "runbook is empty"
    again = await post(stack, "/runbooks/import", {"documents": documents})
    assert [r["outcome"] for r in again.json()] == ["unchanged", "failed", "unchanged"]
    assert count(engine, "runbook_versions") == 2

    gone = await post(
        stack, "/runbooks/archive-missing", {"prefix": "", "present": ["k8s/crashloop.md"]}
    )
    archived_id = first.json()[2]["runbook_id"]
    assert gone.json() == {"archived": [archived_id]}
    listed = await stack.http.get("/runbooks", headers=stack.api_headers())
    assert [r["source_path"] for r in listed.json()] == ["k8s/crashloop.md"]
    everything = await stack.http.get(
        "/runbooks?include_archived=true", headers=stack.api_headers()
    )
    assert sorted((r["source_path"], r["archived"]) for r in everything.json()) == [
        ("hosts/load.txt", True),
        ("k8s/crashloop.md", False),
    ]
    # Back at the source: the same content brings it back without a new version.
    back = await post(stack, "/runbooks/import", {"documents": documents[2:]})
    assert back.json()[0]["outcome"] == "unchanged"
    restored = await stack.http.get(f"/runbooks/{archived_id}", headers=stack.api_headers())
    assert restored.json()["archived"] is False


async def test_archived_runbooks_stop_matching(stack: Stack) -> None:
    created = (await post(stack, "/runbooks", {"content": CRASHLOOP})).json()
    archived = await stack.http.post(
        f"/runbooks/{created['id']}/archive", headers=stack.api_headers()
    )
    assert archived.json()["archived"] is True
    from tests.alert_payloads import alertmanager_v4, am_alert

    body = alertmanager_v4(am_alert("KubePodCrashLooping", fingerprint="ab12", pod="p"))
    fired = await stack.http.post(
        "/webhooks/alertmanager", json=body, headers=stack.webhook_headers()
    )
    assert fired.json()["alerts"][0]["status"] == "unmatched"


async def test_concurrent_first_imports_of_one_path_make_one_runbook(
    stack: Stack, engine: Engine
) -> None:
    body = {"content": CRASHLOOP, "source_path": "race.md"}
    responses = await asyncio.gather(*(post(stack, "/runbooks", body) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert count(engine, "runbooks") == 1 and count(engine, "runbook_versions") == 1


async def test_tenant_risk_rules_change_how_new_versions_classify(
    stack: Stack, engine: Engine
) -> None:
    content = "# Cache\n\n1. Restart the cache: `systemctl restart acme-cache`\n"
    before = (await post(stack, "/runbooks/parse", {"content": content})).json()
    assert before["steps"][0]["risk"] == "yellow"
    rules = (
        "rules:\n"
        "  - id: acme.cache-restart\n"
        '    match: "^systemctl restart acme-cache$"\n'
        "    risk: green\n"
        '    reason: "acme-cache is stateless; a restart is routine"\n'
    )
    yaml_headers = {**stack.api_headers(), "Content-Type": "application/yaml"}
    stored = await stack.http.put("/settings/risk-rules", content=rules, headers=yaml_headers)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"rules": ["acme.cache-restart"]}
    after = (await post(stack, "/runbooks/parse", {"content": content})).json()
    assert after["steps"][0]["risk"] == "green"
    assert "stateless" in after["steps"][0]["risk_reason"]
    shown = await stack.http.get("/settings/risk-rules", headers=stack.api_headers())
    assert shown.text == rules

    bad = rules.replace('    reason: "acme-cache is stateless; a restart is routine"\n', "")
    refused = await stack.http.put("/settings/risk-rules", content=bad, headers=yaml_headers)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("invalid risk rules: ")

    from sqlmodel import Session

    from ddoc.platform import tenancy

    with Session(engine) as session:
        _, viewer_key = tenancy.create_api_key(
            session, tenant_id=stack.settings.tenant, name="viewer", roles=["viewer"]
        )
        session.commit()
    forbidden = await stack.http.put(
        "/settings/risk-rules",
        content=rules,
        headers={"Authorization": f"Bearer {viewer_key}", "Content-Type": "application/yaml"},
    )
    assert forbidden.status_code == 403


async def test_a_messy_paste_parses_over_http_and_tenant_programs_count(stack: Stack) -> None:
    paste = (
        "Mei 01:42\n"
        "1) drain it first: kubectl drain <node> --ignore-daemonsets\n"
        "2) then shipit freeze --env prod, and page #payments\n"
        "to roll back: kubectl uncordon <node>\n"
    )
    headers = {**stack.api_headers(), "Content-Type": "text/plain"}
    first = await stack.http.post("/runbooks/parse", content=paste, headers=headers)
    assert first.status_code == 200, first.text
    steps = first.json()["steps"]
    assert [s["command"] for s in steps if s["command"]] == [
        "kubectl drain <node> --ignore-daemonsets"
    ]
    assert steps[0]["rollback"]["command"] == "kubectl uncordon <node>"
    yaml_headers = {**stack.api_headers(), "Content-Type": "application/yaml"}
    stored = await stack.http.put(
        "/settings/risk-rules", content="programs: [shipit]\n", headers=yaml_headers
    )
    assert stored.json() == {"rules": [], "programs": ["shipit"]}
    again = await stack.http.post("/runbooks/parse", content=paste, headers=headers)
    assert [s["command"] for s in again.json()["steps"] if s["command"]] == [
        "kubectl drain <node> --ignore-daemonsets",
        "shipit freeze --env prod",
    ]


async def test_pasted_log_output_and_deep_lists_get_a_bounded_answer(stack: Stack) -> None:
    headers = {**stack.api_headers(), "Content-Type": "text/plain"}
    log = "\n".join(
        f"2026-12-03T01:02:{i % 60:02d}Z api-{i} upstream reset; curl -s http://10.0.0.{i % 250}/x"
        for i in range(10_000)
    )
    response = await stack.http.post("/runbooks/parse", content=log, headers=headers)
    assert response.status_code == 200
    steps = response.json()["steps"]
    assert len(steps) == 10_000 and max(len(s["text"]) for s in steps) <= 4000
    nested = "".join("  " * depth + "- check `kubectl get pods -n x`\n" for depth in range(500))
    response = await post(stack, "/runbooks/parse", {"content": nested})
    assert response.status_code == 200
    assert response.json()["steps"][0]["command"] == "kubectl get pods -n x"
    five_mb = b"kubectl get pods -n x\n" * (5 * 1024 * 1024 // 22)
    response = await stack.http.post("/runbooks/parse", content=five_mb, headers=headers)
    assert response.status_code == 413
