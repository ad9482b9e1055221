"""The web console's guards, over real HTTP against the real stack: sign-in, CSRF on every form,
roles (a viewer sees no decision buttons and cannot post one), tenants (another tenant's
execution is not found), who may approve (not one's own edit), bad input, escaping."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import Engine

from ddoc.platform import tenancy
from tests.conftest import Stack, eventually

RUNBOOK = """---
alerts: [ConsoleGuardTest]
---
# Rotate the <script>alert(1)</script> logs

1. Look first: `df -h /`
2. Rotate them: `touch {marker}`
3. Wipe the old ones: `rm -rf {spool}`
"""


async def _page(http: httpx.AsyncClient, path: str) -> tuple[httpx.Response, str]:
    """A page, and the CSRF token it carries for its forms."""
    response = await http.get(path)
    found = re.search(r'data-csrf="([0-9a-f]*)"', response.text)
    return response, found.group(1) if found else ""


def _browser(stack: Stack, key: str) -> httpx.AsyncClient:
    """A client signed in the way a browser is: the cookie /ui/login sets."""
    client = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
    client.cookies.set("ddoc_ui_key", key)
    return client


async def _key(stack: Stack, name: str, roles: list[str]) -> str:
    made = await stack.http.post(
        "/api-keys", json={"name": name, "roles": roles}, headers=stack.api_headers()
    )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


async def _awaiting_execution(stack: Stack, tmp_path: object) -> tuple[str, str]:
    content = RUNBOOK.format(marker=f"{tmp_path}/m", spool=f"{tmp_path}/s")
    added = await stack.http.post(
        "/runbooks",
        json={"content": content, "source_path": "guard.md"},
        headers=stack.api_headers(),
    )
    assert added.status_code == 201, added.text
    runbook_id = added.json()["id"]
    started = await stack.http.post(
        "/executions", json={"runbook_id": runbook_id}, headers=stack.api_headers()
    )
    assert started.status_code == 201, started.text
    execution_id = started.json()["id"]

    async def awaiting() -> bool:
        view = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        return view.json()["steps"][1]["status"] == "awaiting_approval"

    await eventually(awaiting)
    return runbook_id, execution_id


async def test_forms_need_the_csrf_token_and_this_site(stack: Stack, tmp_path: object) -> None:
    runbook_id, execution_id = await _awaiting_execution(stack, tmp_path)
    async with _browser(stack, stack.credentials.api_key) as browser:
        page, token = await _page(browser, f"/ui/executions/{execution_id}")
        assert page.status_code == 200 and len(token) == 64
        assert 'id="s2-approve"' in page.text
        approve = {"step_id": "s2", "decision": "approve"}
        forged = [
            ("/ui/executions/{e}/decide", approve),
            ("/ui/executions/{e}/stop", {"how": "abort"}),
            ("/ui/runbooks", {"content": "# x\n\n1. `uptime`\n"}),
            ("/ui/runbooks/preview", {"content": "# x\n\n1. `uptime`\n"}),
            ("/ui/runbooks/{r}/trust", {"level": "read_along", "reason": "forged"}),
            ("/ui/logout", {}),
        ]
        for path, form in forged:
            url = path.format(e=execution_id, r=runbook_id)
            missing = await browser.post(url, data=form)
            assert missing.status_code == 403, (url, missing.text)
            assert "CSRF" in missing.text and "text/html" in missing.headers["content-type"]
            wrong = await browser.post(url, data={**form, "csrf": "0" * 64})
            assert wrong.status_code == 403, url
        other_site = await browser.post(
            f"/ui/executions/{execution_id}/decide",
            data={**approve, "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert other_site.status_code == 403 and "evil.example" in other_site.text
        # Nothing of that reached the workflow, the runbook or the sign-in.
        view = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        assert view.json()["steps"][1]["status"] == "awaiting_approval"
        assert view.json()["steps"][1]["decisions"] == []
        trust = await stack.http.get(f"/runbooks/{runbook_id}/trust", headers=stack.api_headers())
        assert trust.json()["history"] == [] and trust.json()["trust_level"] == "copilot"
        assert (await browser.get("/ui/incidents")).status_code == 200  # still signed in

        # With the token, from this site: accepted, and the workflow hears it.
        done = await browser.post(
            f"/ui/executions/{execution_id}/decide",
            data={**approve, "csrf": token},
            headers={"Origin": stack.base_url},
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"].startswith(f"/ui/executions/{execution_id}?notice=")

        async def approved() -> bool:
            view = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
            step = view.json()["steps"][1]
            return step["status"] == "succeeded" and step["decisions"][0]["source"] == "console"

        await eventually(approved)
        logout = await browser.post("/ui/logout", data={"csrf": token})
        assert logout.status_code == 303 and "ddoc_ui_key" in logout.headers["set-cookie"]


async def test_a_viewer_watches_and_cannot_decide(stack: Stack, tmp_path: object) -> None:
    _, execution_id = await _awaiting_execution(stack, tmp_path)
    viewer_key = await _key(stack, "Vera Viewer", ["viewer"])
    async with _browser(stack, viewer_key) as viewer:
        page, token = await _page(viewer, f"/ui/executions/{execution_id}")
        assert page.status_code == 200
        steps = page.text[page.text.index('id="steps"') :]
        assert "<button" not in steps and 'id="stop-actions"' not in page.text
        assert "Viewers watch" in steps
        fragment = await viewer.get(f"/ui/executions/{execution_id}/live")
        assert fragment.status_code == 200 and "<button" not in fragment.text
        refused = await viewer.post(
            f"/ui/executions/{execution_id}/decide",
            data={"step_id": "s2", "decision": "approve", "csrf": token},
        )
        assert refused.status_code == 403 and "responder" in refused.text
        saved = await viewer.post(
            "/ui/runbooks", data={"content": "# x\n\n1. `uptime`\n", "csrf": token}
        )
        assert saved.status_code == 403
        paste, _ = await _page(viewer, "/ui/runbooks/new")
        assert 'id="save"' not in paste.text and "needs the responder role" in paste.text
        export = await viewer.get("/ui/audit/export")
        assert export.status_code == 403


async def test_another_tenants_execution_is_not_found(
    stack: Stack, engine: Engine, tmp_path: object
) -> None:
    runbook_id, execution_id = await _awaiting_execution(stack, tmp_path)
    other_key = f"ddoc_test_{uuid.uuid4().hex}"
    tenancy.bootstrap(engine, tenant_id=f"t{uuid.uuid4().hex[:10]}", api_key=other_key)
    async with _browser(stack, other_key) as other:
        mine, token = await _page(other, "/ui/incidents")
        assert mine.status_code == 200
        for path in (
            f"/ui/executions/{execution_id}",
            f"/ui/executions/{execution_id}/live",
            f"/ui/runbooks/{runbook_id}",
        ):
            response = await other.get(path)
            assert response.status_code == 404, path
            assert execution_id not in response.text or "not found" in response.text
        for path, form in (
            (f"/ui/executions/{execution_id}/decide", {"step_id": "s2", "decision": "approve"}),
            (f"/ui/executions/{execution_id}/stop", {"how": "abort"}),
            (f"/ui/runbooks/{runbook_id}/trust", {"level": "read_along", "reason": "x"}),
        ):
            response = await other.post(path, data={**form, "csrf": token})
            assert response.status_code == 404, (path, response.text)
    view = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
    assert view.json()["steps"][1]["status"] == "awaiting_approval"


async def test_no_approving_ones_own_edit(stack: Stack, tmp_path: object) -> None:
    _, execution_id = await _awaiting_execution(stack, tmp_path)
    editor_key = await _key(stack, "Eddie Editor", ["responder"])
    async with _browser(stack, editor_key) as editor:
        _, token = await _page(editor, f"/ui/executions/{execution_id}")
        edited = await editor.post(
            f"/ui/executions/{execution_id}/decide",
            data={
                "step_id": "s2",
                "decision": "edit",
                "command": f"touch {tmp_path}/edited",
                "csrf": token,
            },
        )
        assert edited.status_code == 303, edited.text

        async def edit_applied() -> str:
            page, _ = await _page(editor, f"/ui/executions/{execution_id}")
            return page.text if 'id="s2-why-not"' in page.text else ""

        page = await eventually(edit_applied)
        s2 = page[page.index('id="step-s2"') : page.index('id="step-s3"')]
        assert 'id="s2-approve"' not in s2 and "you edited it" in s2, s2
    async with _browser(stack, stack.credentials.api_key) as admin:
        page, _ = await _page(admin, f"/ui/executions/{execution_id}")
        assert 'id="s2-approve"' in page.text


async def test_sign_in_bad_input_and_escaping(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as anonymous:
        away = await anonymous.get("/ui/executions/ex_x?x=1")
        assert away.status_code == 303
        assert away.headers["location"] == "/ui/login?next=/ui/executions/ex_x%3Fx%3D1"
        login = await anonymous.get("/ui/login?next=https://evil.example/")
        assert 'value="/ui"' in login.text  # never a redirect off the console
        wrong = await anonymous.post("/ui/login", data={"api_key": "nope", "next": "/ui/audit"})
        assert wrong.status_code == 401 and "Unknown or revoked" in wrong.text
        right = await anonymous.post(
            "/ui/login", data={"api_key": stack.credentials.api_key, "next": "/ui/audit"}
        )
        assert right.status_code == 303 and right.headers["location"] == "/ui/audit"
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    async with _browser(stack, stack.credentials.api_key) as browser:
        _, token = await _page(browser, "/ui/runbooks/new")
        hostile = RUNBOOK.format(marker="/tmp/m", spool="/tmp/<img src=x onerror=alert(2)>")
        preview = await browser.post(
            "/ui/runbooks/preview", data={"content": hostile, "csrf": token}
        )
        assert preview.status_code == 200
        assert "<script>alert(1)" not in preview.text and "<img src=x" not in preview.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview.text
        assert preview.text.count('data-risk="red"') >= 1
        assert "script-src 'self'" in preview.headers["content-security-policy"]
        too_big = await browser.post(
            "/ui/runbooks/preview", data={"content": "x" * (1024 * 1024 + 1), "csrf": token}
        )
        assert too_big.status_code == 422 and "larger than" in too_big.text
        bad_format = await browser.post(
            "/ui/runbooks", data={"content": "# x", "format": "pdf", "csrf": token}
        )
        assert bad_format.status_code == 422 and "format must be one of" in bad_format.text
        empty = await browser.post("/ui/runbooks", data={"content": "  ", "csrf": token})
        assert empty.status_code == 422 and "empty" in empty.text
        upload = await browser.post(
            "/ui/runbooks",
            data={"csrf": token, "content": ""},
            files={"file": ("upload.md", b"# Uploaded\n\n1. Look: `uptime`\n", "text/markdown")},
        )
        assert upload.status_code == 303, upload.text
        shown = await browser.get(upload.headers["location"])
        assert "Uploaded" in shown.text and "upload.md" in shown.text
        missing = await browser.get("/ui/runbooks/rb_nope")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        bad_filter = await browser.get("/ui/audit?since=yesterday")
        assert bad_filter.status_code == 422 and "since" in bad_filter.text
        bad_limit = await browser.get("/ui/audit?limit=0")
        assert bad_limit.status_code == 422 and "text/html" in bad_limit.headers["content-type"]
        assert "limit" in bad_limit.text
    async with _browser(stack, "ddoc_revoked_or_expired") as stale:
        posted = await stale.post("/ui/executions/ex_x/decide", data={"decision": "approve"})
        assert posted.status_code == 303 and posted.headers["location"] == "/ui/login?next=/ui"
        fragment = await stale.get("/ui/executions/ex_x/live", headers={"X-Ddoc-Fragment": "1"})
        assert fragment.status_code == 401 and "sign-in expired" in fragment.text


async def test_trust_suggestions_versions_and_diff(stack: Stack, engine: Engine) -> None:
    from tests.test_learning import seed_runs

    content = (
        "# Drain a node\n\n1. Look: `kubectl get nodes`\n2. Ask in #infra first\n"
        "3. Drain: `kubectl drain node-1`\n"
    )
    added = await stack.http.post(
        "/runbooks",
        json={"content": content, "source_path": "drain.md"},
        headers=stack.api_headers(),
    )
    runbook_id = added.json()["id"]
    seed_runs(engine, stack, runbook_id, [{"s1": "succeeded", "s2": "skipped"}] * 3)
    made = await stack.http.post(f"/runbooks/{runbook_id}/suggestions", headers=stack.api_headers())
    suggestion = made.json()["suggestion"]
    assert suggestion is not None, made.text
    async with _browser(stack, stack.credentials.api_key) as admin:
        page, token = await _page(admin, f"/ui/runbooks/{runbook_id}")
        assert f'data-suggestion="{suggestion["id"]}"' in page.text
        assert f"/suggestions/{suggestion['id']}/accept" in page.text

        # Promotion guards hold in the console as in the API; a forced change is recorded.
        refused = await admin.post(
            f"/ui/runbooks/{runbook_id}/trust",
            data={"level": "autopilot", "reason": "it is fine", "csrf": token},
        )
        assert refused.status_code == 409 and 'id="trust-error"' in refused.text
        assert "✗" in refused.text
        no_reason = await admin.post(
            f"/ui/runbooks/{runbook_id}/trust",
            data={"level": "read_along", "reason": " ", "csrf": token},
        )
        assert no_reason.status_code == 422 and "reason" in no_reason.text
        demoted = await admin.post(
            f"/ui/runbooks/{runbook_id}/trust",
            data={"level": "read_along", "reason": "new on-call team", "csrf": token},
        )
        assert demoted.status_code == 303, demoted.text
        trust = await stack.http.get(f"/runbooks/{runbook_id}/trust", headers=stack.api_headers())
        assert trust.json()["trust_level"] == "read_along"
        assert trust.json()["history"][-1]["reason"] == "new on-call team"

        # Accept the suggested revision: version 2, and the diff shows the dead step gone.
        accepted = await admin.post(
            f"/ui/runbooks/{runbook_id}/suggestions/{suggestion['id']}/accept",
            data={"csrf": token},
        )
        assert accepted.status_code == 303, accepted.text
        assert "version%202" in accepted.headers["location"]
        again = await admin.post(
            f"/ui/runbooks/{runbook_id}/suggestions/{suggestion['id']}/dismiss",
            data={"csrf": token},
        )
        assert again.status_code == 409 and "accepted" in again.text
        diff = await admin.get(f"/ui/runbooks/{runbook_id}?from=1&to=2")
        assert diff.status_code == 200
        shown = diff.text[diff.text.index('id="diff"') :]
        assert re.search(r'class="del">-2\. Ask in #infra first', shown), shown[:2000]
        assert "history" not in diff.text or "new on-call team" in diff.text
        v1 = await admin.get(f"/ui/runbooks/{runbook_id}?version=1")
        assert "showing version 1 of 2" in v1.text and "Ask in #infra first" in v1.text
        no_such = await admin.get(f"/ui/runbooks/{runbook_id}?from=1&to=9")
        assert no_such.status_code == 422 and "versions 1 to 2" in no_such.text

    responder_key = await _key(stack, "Rita Responder", ["responder"])
    async with _browser(stack, responder_key) as responder:
        page, token = await _page(responder, f"/ui/runbooks/{runbook_id}")
        assert 'id="trust-form"' not in page.text and "needs the admin role" in page.text
        forbidden = await responder.post(
            f"/ui/runbooks/{runbook_id}/trust",
            data={"level": "copilot", "reason": "x", "csrf": token},
        )
        assert forbidden.status_code == 403


async def test_pick_a_runbook_for_an_incident_and_export_the_audit(stack: Stack) -> None:
    content = "# Clear the spool\n\n1. Look: `df -h /`\n"
    added = await stack.http.post(
        "/runbooks",
        json={"content": content, "source_path": "spool.md"},
        headers=stack.api_headers(),
    )
    runbook_id = added.json()["id"]
    from tests.alert_payloads import alertmanager_v4, am_alert

    name = f"NothingLikeIt{uuid.uuid4().hex[:6]}"
    posted = await stack.http.post(
        "/webhooks/alertmanager",
        json=alertmanager_v4(am_alert(name, fingerprint=uuid.uuid4().hex[:12])),
        headers=stack.webhook_headers(),
    )
    assert posted.status_code in (200, 202), posted.text
    incidents = await stack.http.get("/incidents", headers=stack.api_headers())
    incident = next(i for i in incidents.json() if name in i["title"])
    assert incident["execution_id"] is None
    async with _browser(stack, stack.credentials.api_key) as admin:
        listed, _ = await _page(admin, "/ui/incidents?status=open")
        assert name in listed.text
        page, token = await _page(admin, f"/ui/incidents/{incident['id']}")
        assert 'id="pick-form"' in page.text and runbook_id in page.text
        picked = await admin.post(
            f"/ui/incidents/{incident['id']}/pick", data={"runbook_id": runbook_id, "csrf": token}
        )
        assert picked.status_code == 303, picked.text
        assert picked.headers["location"].startswith("/ui/executions/ex_")
        after, _ = await _page(admin, f"/ui/incidents/{incident['id']}")
        assert 'id="pick-form"' not in after.text and "/ui/executions/ex_" in after.text

        audit_page, _ = await _page(admin, "/ui/audit?action=incident.")
        assert "incident.runbook_picked" in audit_page.text
        csv = await admin.get("/ui/audit/export?format=csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.splitlines()
        assert lines[0].startswith("tenant_id,seq,at,actor,action")
        assert any("incident.runbook_picked" in line for line in lines[1:])


async def test_the_execution_links_to_the_temporal_ui(stack: Stack, tmp_path: object) -> None:
    from tests.conftest import serve_api

    _, execution_id = await _awaiting_execution(stack, tmp_path)
    async with _browser(stack, stack.credentials.api_key) as plain:
        page, _ = await _page(plain, f"/ui/executions/{execution_id}")
        assert 'id="temporal-link"' not in page.text  # no Temporal UI configured
    settings = stack.settings.replace(temporal_ui_url="http://temporal-ui.example:8233")
    async with serve_api(settings) as base_url, httpx.AsyncClient(base_url=base_url) as other:
        other.cookies.set("ddoc_ui_key", stack.credentials.api_key)
        page, _ = await _page(other, f"/ui/executions/{execution_id}")
        namespace = stack.settings.temporal.namespace
        assert (
            f'href="http://temporal-ui.example:8233/namespaces/{namespace}/workflows/'
            f'{execution_id}"' in page.text
        )


async def test_without_the_script_and_a_new_version(stack: Stack) -> None:
    """The Preview button works without JavaScript; "Edit as a new version" stores version 2."""
    async with _browser(stack, stack.credentials.api_key) as browser:
        _, token = await _page(browser, "/ui/runbooks/new")
        text = "# Flush the cache\n\n1. Flush: `redis-cli FLUSHALL`\n"
        full = await browser.post(
            "/ui/runbooks/preview?full=1", data={"content": text, "csrf": token}
        )
        assert full.status_code == 200 and "<textarea" in full.text
        assert 'id="parsed-steps"' in full.text and 'data-risk="red"' in full.text
        checked = await browser.post(
            "/ui/runbooks/preview?full=1",
            data={
                "content": "# Restart\n\n1. Restart: `kubectl -n web rollout restart deploy/api`\n"
                "   verify: `kubectl -n web rollout status deploy/api` within 5m"
                ' expect "rolled out"\n',
                "csrf": token,
            },
        )
        assert (
            "Verify: <code>kubectl -n web rollout status deploy/api</code>, expects output "
            "containing “rolled out”, tried every 10 s for up to 300 s"
        ) in checked.text
        saved = await browser.post("/ui/runbooks", data={"content": text, "csrf": token})
        runbook_id = saved.headers["location"].split("/")[-1].split("?")[0]
        edit, _ = await _page(browser, f"/ui/runbooks/new?runbook={runbook_id}")
        assert f'name="runbook_id" value="{runbook_id}"' in edit.text
        assert "redis-cli FLUSHALL" in edit.text  # starts from the current text
        second = await browser.post(
            "/ui/runbooks",
            data={
                "content": text + "2. Check: `redis-cli DBSIZE`\n",
                "runbook_id": runbook_id,
                "csrf": token,
            },
        )
        assert second.status_code == 303 and "version%202" in second.headers["location"]
        same = await browser.post(
            "/ui/runbooks",
            data={
                "content": text + "2. Check: `redis-cli DBSIZE`\n",
                "runbook_id": runbook_id,
                "csrf": token,
            },
        )
        assert "Nothing%20changed" in same.headers["location"]
    versions = await stack.http.get(f"/runbooks/{runbook_id}/versions", headers=stack.api_headers())
    assert [v["version"] for v in versions.json()] == [1, 2]


async def test_pause_before_a_step_then_continue(stack: Stack, tmp_path: object) -> None:
    _, execution_id = await _awaiting_execution(stack, tmp_path)
    async with _browser(stack, stack.credentials.api_key) as browser:
        page, token = await _page(browser, f"/ui/executions/{execution_id}")
        # s3 has not started: it can be paused before; s1 (done) and s2 (waiting) cannot.
        assert 'id="s3-break"' in page.text
        assert 'id="s1-break"' not in page.text and 'id="s2-break"' not in page.text
        origin = {"Origin": stack.base_url}
        paused = await browser.post(
            f"/ui/executions/{execution_id}/breakpoint",
            data={"step_id": "s3", "csrf": token},
            headers=origin,
        )
        assert paused.status_code == 303, paused.text
        wrong = await browser.post(
            f"/ui/executions/{execution_id}/breakpoint",
            data={"step_id": "s9", "csrf": token},
            headers=origin,
        )
        assert wrong.status_code == 422 and "no step &#39;s9&#39;" in wrong.text
        await browser.post(
            f"/ui/executions/{execution_id}/decide",
            data={"step_id": "s2", "decision": "approve", "csrf": token},
            headers=origin,
        )

        async def at_breakpoint() -> str | None:
            page, _ = await _page(browser, f"/ui/executions/{execution_id}")
            return page.text if 'id="s3-continue"' in page.text else None

        shown = await eventually(at_breakpoint)
        assert "Paused at a breakpoint set by bootstrap admin" in shown
        assert 'id="s3-approve"' not in shown
        await browser.post(
            f"/ui/executions/{execution_id}/decide",
            data={"step_id": "s3", "decision": "continue", "csrf": token},
            headers=origin,
        )

        async def asks_approval() -> bool:
            view = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
            awaiting = view.json()["steps"][2].get("awaiting")
            return bool(awaiting) and awaiting["kind"] == "approval"

        await eventually(asks_approval)  # past the breakpoint, the red step still needs approval
