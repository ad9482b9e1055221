"""`runbook_url` links: the URLs that show a runbook (front-matter, its source's page, the git web
URL of its file), the tenant's rewrite rules, and how a URL match ranks against declared and
learned triggers. The real stack (API over HTTP, PostgreSQL, Temporal); URL forms on their own."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from ddoc.alerts import runbook_urls
from ddoc.contracts.settings import Settings
from ddoc.runbooks import urls
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack
from tests.test_cli import ddoc
from tests.test_webhooks import pagerduty_body


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # What attaches below is an explicit trigger, never text similarity.
    return settings.replace(match_attach=1.5, correlation_window_seconds=0)


# -- URL forms on their own ------------------------------------------------------------------


def test_urls_compare_without_scheme_case_slash_fragment_and_port() -> None:
    stored = urls.stored_key("https://Wiki.Example.com/Runbooks/Disk-Full/")
    assert stored == "wiki.example.com/runbooks/disk-full"
    for alert_url in (
        "http://wiki.example.com/runbooks/disk-full",
        "https://www.WIKI.example.com:443/runbooks//disk-full#steps",
        "https://wiki.example.com/runbooks/disk%2Dfull?from=alert",
    ):
        assert stored in urls.alert_keys(alert_url), alert_url
    # A runbook URL with a query only matches that query (Confluence's viewpage.action).
    viewpage = urls.stored_key("https://w.example/viewpage.action?pageId=42")
    assert viewpage in urls.alert_keys("https://w.example/viewpage.action?pageId=42")
    assert viewpage not in urls.alert_keys("https://w.example/viewpage.action?pageId=7")
    assert urls.alert_keys("ftp://x.example/a") == []
    assert urls.alert_keys("not a url") == []


def test_rewrite_rules_capture_and_capitalise() -> None:
    [rule] = runbook_urls.tenant_rules(
        {
            "runbook_url_rules": [
                {
                    "pattern": "https://runbooks.prometheus-operator.dev/runbooks/{group}/{name}",
                    "path": "content/runbooks/{group}/{Name}.md",
                }
            ]
        }
    )
    url = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping/"
    assert rule.apply(url) == "content/runbooks/kubernetes/Kubepodcrashlooping.md"
    assert rule.apply("HTTP://RUNBOOKS.prometheus-operator.dev/runbooks/node/NodeDown") == (
        "content/runbooks/node/NodeDown.md"
    )
    assert rule.apply("https://runbooks.prometheus-operator.dev/runbooks/a/b/c") is None
    assert runbook_urls.path_key("git:ops:./content//runbooks/X.md") == "content/runbooks/x.md"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"pattern": "x"}, "a list"),
        ([{"pattern": "https://x.example/{a}"}], 'exactly "pattern" and "path"'),
        ([{"pattern": "https://x.example/{a}", "path": "{b}.md"}], "does not capture"),
        ([{"pattern": "https://x.example/{a}/{A}", "path": "{a}"}], "twice"),
        ([{"pattern": "{host}/x", "path": "x.md"}], "start with a host"),
        ([{"pattern": "https://x.example/{a}", "path": "{a b}.md"}], "placeholders"),
        ([{"pattern": 1, "path": "x"}], "strings"),
    ],
)
def test_malformed_rules_are_refused(rules: Any, message: str) -> None:
    with pytest.raises(runbook_urls.RulesError, match=message):
        runbook_urls.validate_rules(rules)


# -- the stack -------------------------------------------------------------------------------


async def add(stack: Stack, content: str, path: str, urls: list[str] | None = None) -> str:
    body: dict[str, Any] = {"content": content, "source_path": path}
    if urls is not None:
        body["urls"] = urls
    response = await stack.http.post("/runbooks", json=body, headers=stack.api_headers())
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def runbook(title: str, front: str = "") -> str:
    head = f"---\n{front}---\n" if front else ""
    return f"{head}# {title}\n\nWhat to do.\n\n1. Look at the dashboard.\n"


def am(name: str, runbook_url: str | None, **labels: str) -> dict[str, Any]:
    alert = am_alert(name, fingerprint=uuid.uuid4().hex, **labels)
    if runbook_url:
        alert["annotations"]["runbook_url"] = runbook_url
    return alertmanager_v4(alert)


async def match(stack: Stack, source: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.http.post(f"/match/{source}", json=body, headers=stack.api_headers())
    assert response.status_code == 200, response.text
    [result] = response.json()["alerts"]
    return dict(result)


async def test_front_matter_url_attaches_and_the_reason_names_it(stack: Stack) -> None:
    disk = await add(
        stack,
        runbook("Disk full", "urls: [https://wiki.example.com/runbooks/disk-full]\n"),
        "disk.md",
    )
    await add(stack, runbook("Disk slow"), "slow.md")
    shown = await stack.http.get(f"/runbooks/{disk}", headers=stack.api_headers())
    assert shown.json()["urls"] == ["https://wiki.example.com/runbooks/disk-full"]

    url = "https://WIKI.example.com/runbooks/disk-full/#what-to-do"
    result = await match(stack, "alertmanager", am("SomethingElse", url))
    assert result["attached"]["runbook_id"] == disk
    assert result["candidates"][0]["reasons"] == [
        f"the alert's runbook_url {url} is a URL of this runbook"
    ]
    fired = await stack.http.post(
        "/webhooks/alertmanager", json=am("SomethingElse", url), headers=stack.webhook_headers()
    )
    assert fired.json()["alerts"][0]["status"] == "started"

    archived = await stack.http.post(f"/runbooks/{disk}/archive", headers=stack.api_headers())
    assert archived.status_code == 200
    result = await match(stack, "alertmanager", am("SomethingElse", url))
    assert result["attached"] is None


async def test_pagerduty_details_and_source_urls_of_an_import(stack: Stack) -> None:
    web = "https://git.example.com/ops/runbooks/-/blob/main/db/failover.md"
    imported = await stack.http.post(
        "/runbooks/import",
        json={
            "documents": [
                {"content": runbook("Fail over"), "source_path": "db/failover.md", "urls": [web]},
                {
                    "content": "<h1>Queue backlog</h1><ol><li>Look.</li></ol>",
                    "format": "html",
                    "source_path": "confluence:OPS:98765",
                },
            ]
        },
        headers=stack.api_headers(),
    )
    assert imported.status_code == 200, imported.text
    failover, backlog = (r["runbook_id"] for r in imported.json())

    body = pagerduty_body("incident.triggered", title="Primary down", key="pd-url-1")
    body["event"]["data"]["body"] = {"details": {"Runbook URL": web + "?ref=pd"}}
    result = await match(stack, "pagerduty", body)
    assert result["attached"]["runbook_id"] == failover

    # The same import again without URLs keeps them; other URLs replace them.
    again = await stack.http.post(
        "/runbooks/import",
        json={"documents": [{"content": runbook("Fail over"), "source_path": "db/failover.md"}]},
        headers=stack.api_headers(),
    )
    assert again.json()[0]["outcome"] == "unchanged"
    shown = await stack.http.get(f"/runbooks/{failover}", headers=stack.api_headers())
    assert shown.json()["urls"] == [web]

    # A Confluence page by its id, whatever form the URL takes.
    opsgenie = {
        "action": "Create",
        "alert": {
            "alertId": "og-1",
            "message": "Queue backlog growing",
            "details": {
                "runbook": "https://acme.atlassian.net/wiki/spaces/OPS/pages/98765/Queue+backlog"
            },
        },
    }
    result = await match(stack, "opsgenie", opsgenie)
    assert result["attached"]["runbook_id"] == backlog
    assert "is the Confluence page it came from" in result["candidates"][0]["reasons"][0]


async def test_tenant_rewrite_rule_maps_a_url_to_a_source_path(stack: Stack) -> None:
    folder = "git:runbooks:content/runbooks/kubernetes"
    crash = await add(stack, runbook("Pod crash looping"), f"{folder}/KubePodCrashLooping.md")
    await add(stack, runbook("Pod not ready"), f"{folder}/KubePodNotReady.md")
    url = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
    assert (await match(stack, "alertmanager", am("KubePodCrashLooping", url)))["attached"] is None

    rule = {
        "pattern": "https://runbooks.prometheus-operator.dev/runbooks/{group}/{name}",
        "path": "content/runbooks/{group}/{Name}.md",
    }
    bad = await stack.http.patch(
        "/settings",
        json={"runbook_url_rules": [{"pattern": rule["pattern"], "path": "{nope}.md"}]},
        headers=stack.api_headers(),
    )
    assert bad.status_code == 422 and "runbook_url_rules" in bad.json()["detail"]
    patched = await stack.http.patch(
        "/settings", json={"runbook_url_rules": [rule]}, headers=stack.api_headers()
    )
    assert patched.status_code == 200 and patched.json()["runbook_url_rules"] == [rule]

    result = await match(stack, "alertmanager", am("KubePodCrashLooping", url))
    assert result["attached"]["runbook_id"] == crash
    assert result["candidates"][0]["reasons"] == [
        f"the alert's runbook_url {url} maps to content/runbooks/kubernetes/Kubepodcrashlooping.md"
        f" (rule {rule['pattern']})"
    ]


async def test_precedence_between_url_declared_and_learned(stack: Stack) -> None:
    url = "https://wiki.example.com/queue-backlog"
    orders = await add(stack, runbook("Orders backlog", "alerts: [QueueBacklog]\n"), "orders.md")
    billing = await add(
        stack, runbook("Billing backlog", f"alerts: [QueueBacklog]\nurls: [{url}]\n"), "billing.md"
    )
    other = await add(stack, runbook("Other", "urls: [https://wiki.example.com/other]\n"), "o.md")

    # The URL picks one of two runbooks that declare the alert: attached.
    result = await match(stack, "alertmanager", am("QueueBacklog", url))
    assert result["attached"]["runbook_id"] == billing
    assert (
        "the only runbook declaring the alert that its runbook_url shows"
        in (result["candidates"][0]["reasons"])
    )

    # The URL shows a runbook that does not declare the alert: they disagree, a human picks.
    disagree = am("QueueBacklog", "https://wiki.example.com/other")
    result = await match(stack, "alertmanager", disagree)
    assert result["attached"] is None and result["status"] == "suggested"
    assert result["candidates"][0]["runbook_id"] == other
    assert {c["runbook_id"] for c in result["candidates"]} == {orders, billing, other}
    assert all("disagree" in c["reasons"][-1] for c in result["candidates"])

    # The human's pick for exactly this alert decides from then on.
    fired = await stack.http.post(
        "/webhooks/alertmanager", json=disagree, headers=stack.webhook_headers()
    )
    [outcome] = fired.json()["alerts"]
    assert outcome["status"] == "suggested"
    picked = await stack.http.post(
        f"/incidents/{outcome['incident_id']}/runbook",
        json={"runbook_id": orders},
        headers=stack.api_headers(),
    )
    assert picked.status_code == 201, picked.text
    result = await match(stack, "alertmanager", disagree)
    assert result["attached"]["runbook_id"] == orders
    assert result["candidates"][0]["reasons"][0].startswith("picked by bootstrap admin")


async def test_cli_import_with_web_url(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    (folder / "db").mkdir(parents=True)
    (folder / "db" / "disk.md").write_text(runbook("Disk"))
    base = "https://git.example.com/ops/runbooks/-/blob/main"
    code, _, err = await ddoc(stack, "runbook", "import", str(folder), "--web-url", base)
    assert code == 0, err
    code, out, err = await ddoc(stack, "runbook", "list")
    runbook_id = out.split()[0]
    code, out, err = await ddoc(stack, "runbook", "show", runbook_id)
    assert code == 0, err
    assert f"url: {base}/db/disk.md" in out
    body = json.loads(json.dumps(am("DiskFull", f"{base}/db/disk.md")))
    result = await match(stack, "alertmanager", body)
    assert result["attached"]["runbook_id"] == runbook_id
    code, _, err = await ddoc(stack, "runbook", "import", str(folder), "--web-url", "nope")
    assert code == 1 and "not an http(s) URL" in err
