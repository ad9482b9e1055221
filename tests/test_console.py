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
        "/runbooks", json={"content": content, "source_path": "guard.md"},
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
        view = (await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers()))
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
