"""Schema-driven fuzzing of the real API: every operation of its own OpenAPI document gets
schemathesis-generated requests (valid and invalid per the schema) over real HTTP, and no answer
may be a 5xx.

The stack (API, control worker, agent, Temporal, PostgreSQL) is the `stack` fixture's; requests
carry the admin API key, or the webhook token for `/webhooks/*`. `/slack/*` needs Slack
signatures and is covered by the Slack tests. Path parameters are whatever schemathesis
generates, so most ids are unknown (404 is a fine answer). Operations that change tenant
settings run last so that a generated signing secret cannot starve the webhook operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NotSet

from ddoc.contracts.settings import Settings
from tests.conftest import Stack

# Per operation: valid-per-schema and invalid-per-schema cases. Overall wall-clock budget; the
# operations share it, so a slow route cannot push the test past it.
POSITIVE_EXAMPLES = int(os.environ.get("DDOC_SCHEMATHESIS_POSITIVE", "15"))
NEGATIVE_EXAMPLES = int(os.environ.get("DDOC_SCHEMATHESIS_NEGATIVE", "10"))
BUDGET_SECONDS = float(os.environ.get("DDOC_SCHEMATHESIS_BUDGET", "90"))
REQUEST_TIMEOUT = 30
SKIPPED_PATHS = ("/slack/",)
# Changing these can make later requests fail authentication or change classification.
LAST = ("/settings", "/api-keys")


def _order(operation: Any) -> tuple[int, str, str]:
    return (int(operation.path.startswith(LAST)), operation.path, operation.method)


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _rebase(node: Any, base: str) -> Any:
    if isinstance(node, dict):
        return {
            key: base + value.removeprefix("#/$defs")
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
            else _rebase(value, base)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rebase(value, base) for value in node]
    return node


def dangling_refs(document: dict[str, Any]) -> list[str]:
    """`$ref`s of the document that do not resolve from its root (JSON pointers)."""
    found: list[str] = []

    def resolves(ref: str) -> bool:
        node: Any = document
        for raw in ref.removeprefix("#/").split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/") and not resolves(ref):
                found.append(f"{where}: {ref}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(document, "#")
    return found


def with_local_defs_resolved(document: dict[str, Any]) -> dict[str, Any]:
    """The document with request-body schemas' own `$defs` referenced by absolute pointers.

    Pydantic's `model_json_schema()` embedded as an `openapi_extra` request body refers to its
    `$defs` as `#/$defs/X`, which resolves from the OpenAPI document's root, where there is no
    `$defs` (see `test_openapi_refs_resolve`). Rebasing them lets schemathesis generate those
    bodies anyway, so the fuzzing covers the webhook routes whatever that test says.
    """
    document = copy.deepcopy(document)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            for media_type, entry in content.items():
                body_schema = entry.get("schema")
                if isinstance(body_schema, dict) and "$defs" in body_schema:
                    base = _pointer(
                        "paths", path, method, "requestBody", "content", media_type, "schema"
                    )
                    entry["schema"] = _rebase(body_schema, f"{base}/$defs")
    return document


def _describe(case: Any, response: Any) -> str:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    lines = [
        f"{case.method.upper()} {case.formatted_path} -> {response.status_code}",
        f"  path_parameters={case.path_parameters!r}",
        f"  query={case.query!r}",
        f"  headers={headers!r}",
        f"  media_type={case.media_type!r}",
        f"  body={case.body!r}"[:1500],
        f"  response={response.text[:300]!r}",
    ]
    return "\n".join(lines)


@dataclass
class Outcome:
    sent: int = 0
    with_body: int = 0  # positive cases that carried a request body
    server_errors: list[str] = field(default_factory=list)


def _send_cases(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    *,
    base_url: str,
    headers: dict[str, str],
    deadline: float,
    outcome: Outcome,
) -> None:
    """Send up to `examples` generated cases of `operation`, until `deadline`."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: CI time and results are stable
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT)
        outcome.sent += 1
        if mode is GenerationMode.POSITIVE and not isinstance(case.body, NotSet):
            outcome.with_body += 1
        if response.status_code >= 500:
            outcome.server_errors.append(_describe(case, response))

    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no parameters)
        send()


@contextlib.contextmanager
def _hypothesis_restored() -> Iterator[None]:
    """Undo, on the way out, the process-wide patches schemathesis applies to Hypothesis when it
    builds strategies (`schemathesis.generation.hypothesis.setup`: among others a printer that
    prints nothing, which blanks every later "Failing test case" report, and a larger buffer).
    Other tests of the session must keep Hypothesis as it is. Only a patch made here is undone:
    schemathesis's pytest plugin, when loaded, has patched Hypothesis before any test runs."""
    from hypothesis import core
    from hypothesis.internal import entropy
    from hypothesis.internal.conjecture import engine
    from hypothesis.strategies._internal import collections
    from hypothesis.strategies._internal import core as strategies_core

    saved = [
        (core, "RepresentationPrinter"),
        (core, "BUFFER_SIZE"),
        (engine, "BUFFER_SIZE"),
        (collections, "BUFFER_SIZE"),
        (strategies_core, "is_first_param_referenced_in_function"),
        (entropy, "register_random"),
    ]
    values = [(owner, name, owner.__dict__.get(name, _ABSENT)) for owner, name in saved]
    try:
        yield
    finally:
        for owner, name, value in values:
            if value is _ABSENT:
                owner.__dict__.pop(name, None)
            else:
                setattr(owner, name, value)
        from schemathesis.generation.hypothesis import setup

        setup._is_patched = False  # type: ignore[attr-defined]


_ABSENT = object()


def _fuzz(
    document: dict[str, Any],
    base_url: str,
    api_headers: dict[str, str],
    webhook_headers: dict[str, str],
) -> dict[str, Outcome]:
    schema = schemathesis.openapi.from_dict(with_local_defs_resolved(document))
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()  # an invalid operation in our own document is a failure
        if not operation.path.startswith(SKIPPED_PATHS):
            operations.append(operation)
    assert len(operations) > 30, [f"{o.method} {o.path}" for o in operations]
    operations.sort(key=_order)

    outcomes: dict[str, Outcome] = {}
    started = time.monotonic()
    for index, operation in enumerate(operations):
        # Each operation gets an equal share of what is left of the budget.
        left = BUDGET_SECONDS - (time.monotonic() - started)
        deadline = time.monotonic() + max(0.0, left) / (len(operations) - index)
        headers = webhook_headers if operation.path.startswith("/webhooks/") else api_headers
        outcome = outcomes[f"{operation.method.upper()} {operation.path}"] = Outcome()
        for mode, examples in (
            (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
            (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
        ):
            _send_cases(
                operation,
                mode,
                examples,
                base_url=base_url,
                headers=headers,
                deadline=deadline,
                outcome=outcome,
            )
    return outcomes


async def test_no_generated_request_gets_a_server_error(stack: Stack) -> None:
    response = await stack.http.get("/openapi.json")
    response.raise_for_status()
    document = response.json()
    with _hypothesis_restored():
        outcomes = await asyncio.to_thread(
            _fuzz, document, stack.base_url, stack.api_headers(), stack.webhook_headers()
        )
    # Every operation was exercised, and those with a required body got generated bodies
    # (a schema schemathesis cannot generate from would otherwise pass silently).
    assert all(o.sent for o in outcomes.values()), {k: o.sent for k, o in outcomes.items()}
    needs_body = {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("requestBody", {}).get("required") and not path.startswith(SKIPPED_PATHS)
    }
    assert not [k for k in needs_body if outcomes[k].with_body == 0]

    report = [
        f"{label}: {len(o.server_errors)} of {o.sent} requests got a 5xx; the shortest:\n"
        + min(o.server_errors, key=len)
        for label, o in outcomes.items()
        if o.server_errors
    ]
    assert not report, "server errors:\n\n" + "\n\n".join(report)


# Minimal forms of what the fuzzing above found: a NUL character (valid JSON: "\\u0000") in
# any string that reaches PostgreSQL, and non-finite numbers in generic alert labels. Each must
# be refused (4xx) or handled, never a 500.
MINIMAL: list[tuple[str, str, str, bytes]] = [
    # (method, path, credentials, JSON body)
    ("POST", "/webhooks/generic", "webhook", b'{"title": "x", "labels": {"a": NaN}}'),
    ("POST", "/webhooks/generic", "webhook", b'{"title": "x", "labels": {"a": Infinity}}'),
    ("POST", "/webhooks/generic", "webhook", b'{"title": "x\\u0000"}'),
    ("POST", "/webhooks/generic", "webhook", b'{"title": "x", "labels": {"a": "\\u0000"}}'),
    (
        "POST",
        "/webhooks/alertmanager",
        "webhook",
        b'{"alerts": [{"status": "firing", "labels": {"a": "\\u0000"}}]}',
    ),
    (
        "POST",
        "/webhooks/grafana",
        "webhook",
        b'{"alerts": [{"status": "firing", "labels": {"a": "\\u0000"}}]}',
    ),
    (
        "POST",
        "/webhooks/opsgenie",
        "webhook",
        b'{"action": "Create", "alert": {"alertId": "a", "message": "\\u0000"}}',
    ),
    (
        "POST",
        "/webhooks/pagerduty",
        "webhook",
        b'{"event": {"id": "e", "event_type": "incident.triggered", "data": {"id": "\\u0000"}}}',
    ),
    (
        "POST",
        "/match/alertmanager",
        "api",
        b'{"alerts": [{"status": "firing", "labels": {"a": "\\u0000"}}]}',
    ),
    ("POST", "/match/generic", "api", b'{"title": "x", "labels": {"a": "\\u0000"}}'),
    ("POST", "/runbooks", "api", b'{"content": "# x", "source_path": "a\\u0000"}'),
    (
        "POST",
        "/runbooks/import",
        "api",
        b'{"documents": [{"content": "# x", "source_path": "a\\u0000"}]}',
    ),
    ("POST", "/runbooks/archive-missing", "api", b'{"prefix": "a\\u0000", "present": []}'),
    ("POST", "/executions", "api", b'{"runbook_id": "rb\\u0000"}'),
    ("GET", "/runbooks/a%00", "api", b""),
    ("GET", "/incidents/a%00", "api", b""),
    ("GET", "/executions/a%00", "api", b""),
    (
        "POST",
        "/users",
        "api",
        b'{"email": "a@b.c", "display_name": "x\\u0000", "roles": ["viewer"]}',
    ),
    ("POST", "/api-keys", "api", b'{"name": "x\\u0000", "roles": ["viewer"]}'),
    ("PATCH", "/settings", "api", b'{"grafana_signing_secret": "a\\u0000"}'),
]


async def test_minimal_cases_found_by_fuzzing(stack: Stack) -> None:
    failures = []
    for method, path, credentials, body in MINIMAL:
        headers = stack.webhook_headers() if credentials == "webhook" else stack.api_headers()
        if body:
            headers["Content-Type"] = "application/json"
        response = await stack.http.request(method, path, content=body, headers=headers)
        # Each is input PostgreSQL cannot store (NUL) or JSON cannot carry (NaN): a clear 422.
        if response.status_code != 422:
            failures.append(f"{method} {path} {body.decode()} -> {response.status_code}")
    assert not failures, f"{len(failures)} of {len(MINIMAL)} not refused:\n" + "\n".join(failures)


def test_openapi_refs_resolve() -> None:
    """Every `$ref` of the API's OpenAPI document resolves: schema-driven clients (code
    generators, schemathesis, Swagger UI) cannot build those requests otherwise. (Building the
    document starts nothing: no lifespan, no database.)"""
    from api.app import create_app

    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/unused"))
    assert dangling_refs(app.openapi()) == []
