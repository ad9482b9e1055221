"""Paging through the PagerDuty Events API v2: trigger and resolve alerts.

When an execution needs a human, a Temporal activity pages the next escalation level by sending
a `trigger` event to the integration (routing) key of that level's PagerDuty service, and
`resolve`s it once the step is handled. Events are deduplicated by PagerDuty on `dedup_key`, so
sending the same page again (an activity retry) updates the open alert instead of paging twice.

The client makes exactly one request per call and does not retry: the activity's retry policy
does. `PagingError.retryable` says whether retrying can help (429, 5xx, network errors) or not
(the event is invalid, the key is refused). The routing key is a secret: error messages only
ever show it masked.

Only httpx and the standard library are used, so it runs wherever the worker runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
CLIENT_NAME = "dd0c/run"
MAX_SUMMARY = 1024  # PagerDuty's limit on payload.summary, in characters
PD_SEVERITIES = ("critical", "error", "warning", "info")

# Our alert severities (lower-cased) -> PagerDuty's; anything else is "info".
_SEVERITY_MAP = {
    "critical": "critical",
    "high": "error",
    "error": "error",
    "warning": "warning",
    "medium": "warning",
    "low": "info",
    "info": "info",
}
# How much of an unexpected (non-JSON) response body goes into an error message.
_BODY_EXCERPT = 200


def pd_severity(sev: str | None) -> str:
    """PagerDuty's severity for one of our alert severities (case-insensitive).

    critical -> critical, high -> error, warning/medium -> warning, low/info/unknown -> info.
    PagerDuty's own values map to themselves.
    """
    return _SEVERITY_MAP.get((sev or "").strip().lower(), "info")


def mask_key(key: str) -> str:
    """A routing key safe to show: only its last 4 characters."""
    return "****" + key[-4:] if len(key) > 8 else "****"


def truncate_summary(summary: str, limit: int = MAX_SUMMARY) -> str:
    """`summary` cut to at most `limit` characters, ending with an ellipsis if it was cut."""
    return summary if len(summary) <= limit else summary[: limit - 1] + "…"


@dataclass
class Page:
    """One page to an escalation level (the payload of a `trigger` event)."""

    routing_key: str  # the integration key of the level's PagerDuty service (a secret)
    dedup_key: str  # e.g. "ddoc:<execution_id>:<step_id>"; PagerDuty dedups on it
    summary: str  # truncated to 1024 characters when sent
    source: str  # e.g. "dd0c/run"
    severity: str  # critical|error|warning|info; see `pd_severity`
    custom_details: dict[str, Any] = field(default_factory=dict)
    links: list[dict[str, str]] = field(default_factory=list)  # [{"href": ..., "text": ...}]
    component: str | None = None
    group: str | None = None
    client_url: str | None = None  # shown by PagerDuty next to "dd0c/run" (e.g. the execution)


@dataclass
class PageResult:
    status: str  # "success"
    dedup_key: str  # as PagerDuty answered it
    message: str  # e.g. "Event processed"


class PagingError(Exception):
    """A page could not be sent; `retryable` says whether sending it again can help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status  # the HTTP status, None for network errors


def trigger_body(page: Page) -> dict[str, Any]:
    """The Events API v2 body of a `trigger` event for `page` (optional keys left out)."""
    payload: dict[str, Any] = {
        "summary": truncate_summary(page.summary),
        "source": page.source,
        "severity": page.severity,
    }
    if page.component is not None:
        payload["component"] = page.component
    if page.group is not None:
        payload["group"] = page.group
    if page.custom_details:
        payload["custom_details"] = page.custom_details
    body: dict[str, Any] = {
        "routing_key": page.routing_key,
        "event_action": "trigger",
        "dedup_key": page.dedup_key,
        "payload": payload,
    }
    if page.links:
        body["links"] = page.links
    body["client"] = CLIENT_NAME
    if page.client_url is not None:
        body["client_url"] = page.client_url
    return body


def resolve_body(routing_key: str, dedup_key: str) -> dict[str, Any]:
    """The Events API v2 body of a `resolve` event."""
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}


class PagerDutyEvents:
    """A synchronous Events API v2 client (the activity runs it in a thread pool).

    Pass `client` to share an httpx.Client (it is not closed here); otherwise one is created
    and `close()` (or using this as a context manager) releases it.
    """

    def __init__(
        self,
        *,
        url: str = EVENTS_URL,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> PagerDutyEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trigger(self, page: Page) -> PageResult:
        """Open (or, with the same dedup_key, update) an alert on the level's service."""
        return self._send(trigger_body(page), what="trigger")

    def resolve(self, routing_key: str, dedup_key: str) -> PageResult:
        """Resolve the alert opened with `dedup_key` (PagerDuty accepts it if none is open)."""
        return self._send(resolve_body(routing_key, dedup_key), what="resolve")

    def _send(self, body: dict[str, Any], *, what: str) -> PageResult:
        key = str(body["routing_key"])
        dedup_key = str(body["dedup_key"])
        # default=str: custom details may hold datetimes, UUIDs... that json cannot encode.
        content = json.dumps(body, default=str).encode()
        context = f"PagerDuty {what} of {dedup_key!r} (routing key {mask_key(key)})"
        try:
            response = self._client.post(
                self.url,
                content=content,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except httpx.TransportError as exc:
            detail = _scrub(f"{type(exc).__name__}: {exc}", key)
            raise PagingError(
                f"{context}: PagerDuty could not be reached ({detail})", retryable=True
            ) from None

        status = response.status_code
        answer = _json_object(response)
        if 200 <= status < 300:
            if answer is None or answer.get("status") != "success":
                excerpt = _scrub(response.text[:_BODY_EXCERPT], key)
                raise PagingError(
                    f"{context}: unexpected answer (HTTP {status}): {excerpt!r}; "
                    f"is {self.url} the Events API v2 enqueue URL?",
                    retryable=False,
                    status=status,
                )
            return PageResult(
                status=str(answer["status"]),
                dedup_key=str(answer.get("dedup_key") or dedup_key),
                message=str(answer.get("message", "")),
            )

        detail = _scrub(_describe(answer, response), key)
        if status == 400:
            problem, retryable = "PagerDuty rejected the event as invalid", False
        elif status in (401, 403):
            problem, retryable = "PagerDuty refused the routing key", False
        elif status == 429:
            problem, retryable = "PagerDuty is rate limiting events for this key", True
        elif status >= 500:
            problem, retryable = "PagerDuty had a server error", True
        else:
            problem, retryable = "PagerDuty answered unexpectedly", False
        raise PagingError(
            f"{context}: {problem} (HTTP {status}): {detail}", retryable=retryable, status=status
        )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _describe(answer: dict[str, Any] | None, response: httpx.Response) -> str:
    """PagerDuty's explanation: its status, message and errors, or an excerpt of the body."""
    if answer is None:
        return repr(response.text[:_BODY_EXCERPT]) if response.text else "(empty body)"
    parts = [str(answer[k]) for k in ("status", "message") if answer.get(k)]
    errors = answer.get("errors")
    if isinstance(errors, list) and errors:
        parts.append("errors: " + "; ".join(str(e) for e in errors))
    return " - ".join(parts) or repr(response.text[:_BODY_EXCERPT])


def _scrub(text: str, key: str) -> str:
    """`text` with any occurrence of the routing key masked."""
    return text.replace(key, mask_key(key)) if key else text
