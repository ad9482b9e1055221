"""Drafts and templates end to end, over the real API, console and CLI: a shell history, a
postmortem and a recorded terminal session become drafts linked to an incident, with the
incident's labels as variables; a draft is reviewed and published in the console; templates are
listed, installed and offered for an alert nobody wrote a runbook for."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack

HISTORY = """#1764855000
kubectl get pods -n payments
#1764855012
kubectl describe deploy checkout -n payments
#1764855030
kubeclt rollout undo deploy/checkout -n payments
#1764855034
kubectl rollout undo deploy/checkout -n payments
#1764855050
ls
#1764855061
kubectl rollout status deploy/checkout -n payments
"""

POSTMORTEM = """# Postmortem: checkout 5xx after the 3.2 release (INC-2291)

## Summary

Checkout returned errors for 18 minutes after a bad release.

## Timeline

- 14:02 UTC: the CheckoutErrors alert fired, on-call paged
- 14:05 UTC: checked the pods with `kubectl get pods -n payments`
- 14:09 UTC: rolled back with `kubectl rollout undo deploy/checkout -n payments`
- 14:15 UTC: monitoring confirmed recovery

## Action items

- Add a canary stage to the checkout pipeline: `kubectl apply -f canary.yaml`
"""


async def _incident(stack: Stack, alert: str, **labels: str) -> dict[str, Any]:
    posted = await stack.http.post(
        "/webhooks/alertmanager",
        json=alertmanager_v4(am_alert(alert, fingerprint=uuid.uuid4().hex[:12], **labels)),
        headers=stack.webhook_headers(),
    )
    assert posted.status_code in (200, 202), posted.text
    listed = await stack.http.get("/incidents?status=open", headers=stack.api_headers())
    found: dict[str, Any] = next(i for i in listed.json() if alert in i["title"])
    return found


async def test_a_history_becomes_a_draft_for_the_incident(stack: Stack) -> None:
    alert = f"CheckoutErrors{uuid.uuid4().hex[:6]}"
    incident = await _incident(stack, alert, namespace="payments", deployment="checkout")
    headers = stack.api_headers()
    made = await stack.http.post(
        "/runbooks/drafts",
        json={"kind": "history", "content": HISTORY, "incident_id": incident["id"]},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    draft = made.json()
    assert draft["draft"] is True and draft["outcome"] == "drafted"
    assert draft["origin"]["incident_id"] == incident["id"]
    assert draft["alert_names"] == [alert]
    commands = [s["command"] for s in draft["parsed"]["steps"]]
    assert commands == [
        "kubectl get pods -n {{namespace}}",
        "kubectl describe deploy {{deployment}} -n {{namespace}}",
        "kubectl rollout undo deploy/{{deployment}} -n {{namespace}}",
        "kubectl rollout status deploy/{{deployment}} -n {{namespace}}",
    ]
    risks = [s["risk"] for s in draft["parsed"]["steps"]]
    assert risks[0] == "green" and risks[2] in ("yellow", "red")
    assert {v["name"]: v["source"] for v in draft["parsed"]["variables"]} == {
        "namespace": "label",
        "deployment": "label",
    }
    assert any("kubeclt" in why or "typo" in why for why in draft["left_out"])
    waiting = await stack.http.get("/runbooks/drafts", headers=headers)
    assert draft["id"] in [r["id"] for r in waiting.json()]

    # Reviewed and published in the console; the incident's alert now attaches it.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as browser:
        browser.cookies.set("ddoc_ui_key", stack.credentials.api_key)
        listed = await browser.get("/ui/runbooks")
        assert f'data-draft="{draft["id"]}"' in listed.text
        page = await browser.get(f"/ui/runbooks/{draft['id']}")
        assert 'id="draft-banner"' in page.text and 'id="publish-button"' in page.text
        token = re.search(r'data-csrf="([0-9a-f]+)"', page.text)
        assert token is not None
        published = await browser.post(
            f"/ui/runbooks/{draft['id']}/publish", data={"csrf": token.group(1)}
        )
        assert published.status_code == 303
        after = await browser.get(f"/ui/runbooks/{draft['id']}")
        assert 'id="draft-banner"' not in after.text
        linked = await browser.get(f"/ui/incidents/{incident['id']}")
        drafted = linked.text[linked.text.index('id="drafted"') :]
        assert f"/ui/runbooks/{draft['id']}" in drafted and "published" in drafted
    body = alertmanager_v4(am_alert(alert, fingerprint=uuid.uuid4().hex[:12]))
    matched = await stack.http.post("/match/alertmanager", json=body, headers=headers)
    assert matched.json()["alerts"][0]["attached"]["runbook_id"] == draft["id"]


async def test_a_postmortem_and_bad_input(stack: Stack) -> None:
    headers = stack.api_headers()
    made = await stack.http.post(
        "/runbooks/drafts",
        json={"kind": "postmortem", "content": POSTMORTEM, "format": "markdown"},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    steps = made.json()["parsed"]["steps"]
    assert [s["command"] for s in steps] == [
        "kubectl get pods -n payments",
        "kubectl rollout undo deploy/checkout -n payments",
    ]
    # The console's form: the same postmortem, linked to nothing; a bad one is shown again.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as browser:
        browser.cookies.set("ddoc_ui_key", stack.credentials.api_key)
        form = await browser.get("/ui/runbooks/drafts/new")
        token = re.search(r'data-csrf="([0-9a-f]+)"', form.text)
        assert form.status_code == 200 and token is not None
        drafted = await browser.post(
            "/ui/runbooks/drafts",
            data={"kind": "postmortem", "format": "markdown", "csrf": token.group(1)},
            files={"file": ("pm.md", POSTMORTEM.encode(), "text/markdown")},
        )
        assert drafted.status_code == 303, drafted.text
        page = await browser.get(drafted.headers["location"])
        assert 'id="draft-banner"' in page.text and "rollout undo" in page.text
        nothing = await browser.post(
            "/ui/runbooks/drafts",
            data={"kind": "history", "content": "ls\nclear\n", "csrf": token.group(1)},
        )
        assert nothing.status_code == 422 and "nothing to draft" in nothing.text
        assert "ls\nclear" in nothing.text  # what was pasted is still there
    junk = await stack.http.post(
        "/runbooks/drafts",
        json={"kind": "cast", "content": "\x01\x02 not a recording"},
        headers=headers,
    )
    assert junk.status_code == 422 and "line 1" in junk.json()["detail"]
    empty = await stack.http.post(
        "/runbooks/drafts",
        json={"kind": "history", "content": "ls\ncd /tmp\nclear\n"},
        headers=headers,
    )
    assert empty.status_code == 422 and "nothing to draft" in empty.json()["detail"]
    unknown = await stack.http.post(
        "/runbooks/drafts",
        json={"kind": "history", "content": HISTORY, "incident_id": "inc_nope"},
        headers=headers,
    )
    assert unknown.status_code == 404
    viewer = await stack.http.post(
        "/api-keys", json={"name": "v", "roles": ["viewer"]}, headers=headers
    )
    forbidden = await stack.http.post(
        "/runbooks/drafts",
        json={"kind": "history", "content": HISTORY},
        headers={"Authorization": f"Bearer {viewer.json()['key']}"},
    )
    assert forbidden.status_code == 403


async def test_templates_listed_installed_and_offered(stack: Stack) -> None:
    headers = stack.api_headers()
    listed = (await stack.http.get("/runbooks/templates", headers=headers)).json()
    assert len(listed) >= 15
    crash = next(t for t in listed if "KubePodCrashLooping" in t["alerts"])
    disk = next(t for t in listed if "NodeFilesystemSpaceFillingUp" in t["alerts"])
    first = await stack.http.post(f"/runbooks/templates/{crash['name']}", headers=headers)
    assert first.status_code == 201 and first.json()["outcome"] == "created"
    again = await stack.http.post(f"/runbooks/templates/{crash['name']}", headers=headers)
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
    assert again.json()["id"] == first.json()["id"]
    missing = await stack.http.post("/runbooks/templates/nope", headers=headers)
    assert missing.status_code == 404 and crash["name"] in missing.json()["detail"]

    # An alert with no runbook: its incident page offers the template for it.
    incident = await _incident(stack, "NodeFilesystemSpaceFillingUp", mountpoint="/var")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as browser:
        browser.cookies.set("ddoc_ui_key", stack.credentials.api_key)
        page = await browser.get(f"/ui/incidents/{incident['id']}")
        assert f"/ui/runbooks/templates/{disk['name']}" in page.text
        assert f"/ui/runbooks/drafts/new?incident={incident['id']}" in page.text
        library = await browser.get("/ui/runbooks/templates")
        assert f'data-template="{crash["name"]}"' in library.text and "installed" in library.text
        token = re.search(r'data-csrf="([0-9a-f]+)"', library.text)
        assert token is not None
        installed = await browser.post(
            f"/ui/runbooks/templates/{disk['name']}", data={"csrf": token.group(1)}
        )
        assert installed.status_code == 303 and "/ui/runbooks/rb_" in installed.headers["location"]


async def _ddoc(
    stack: Stack, *args: str, typed: tuple[str, ...] = (), cwd: Path | None = None
) -> tuple[int, str, str]:
    """`ddoc …` in a subprocess; `typed`: lines typed one by one, as a person does at a prompt
    (Enter is a carriage return, as a terminal sends it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ddoc.cli.main",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={
            **os.environ,
            "DDOC_API_URL": stack.base_url,
            "DDOC_API_KEY": stack.credentials.api_key,
            "DDOC_DATA_DIR": "/nonexistent",
            "PS1": "$ ",
        },
    )
    assert proc.stdin is not None
    for line in typed:
        await asyncio.sleep(0.5)  # the prompt is there before the typing starts
        proc.stdin.write(line.encode() + b"\r")
        await proc.stdin.drain()
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_drafts_a_history_and_records_a_session(stack: Stack, tmp_path: Path) -> None:
    alert = f"CheckoutErrors{uuid.uuid4().hex[:6]}"
    incident = await _incident(stack, alert, namespace="payments", deployment="checkout")
    history = tmp_path / "history.txt"
    history.write_text(HISTORY + "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz\n")
    code, out, err = await _ddoc(
        stack, "runbook", "draft", str(history), "--incident", incident["id"], "--yes"
    )
    assert code == 0, err
    assert "kubectl rollout undo deploy/{{deployment}} -n {{namespace}}" in out
    draft_id = re.search(r"(rb_[0-9a-f]+)\s+draft", out)
    assert draft_id is not None, out
    stored = await stack.http.get(f"/runbooks/{draft_id.group(1)}", headers=stack.api_headers())
    assert "wJalrXUtnFEMI" not in stored.text  # redacted before it left the machine

    # Without --yes, and no terminal to ask on: nothing is sent.
    code, out, err = await _ddoc(stack, "runbook", "draft", str(history))
    assert code == 0 and "Nothing left this machine" in err

    # `ddoc watch`: the shell runs on a pseudo-terminal, what was typed is recorded.
    recording = tmp_path / "session.cast"
    code, out, err = await _ddoc(
        stack,
        "watch",
        "--incident",
        incident["id"],
        "--shell",
        "/bin/sh",
        "--out",
        str(recording),
        "--yes",
        typed=("df -h /", "uptime", "exit"),
        cwd=tmp_path,
    )
    assert code == 0, err
    assert recording.stat().st_mode & 0o777 == 0o600
    assert "df -h /" in out and "uptime" in out
    assert re.search(r"rb_[0-9a-f]+\s+draft", out), out
