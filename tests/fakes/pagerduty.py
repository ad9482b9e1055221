"""A fake PagerDuty Events API v2 as a real HTTP server on 127.0.0.1 (an ephemeral port).

Real HTTP, not an httpx transport, because the code under test may run in a Temporal activity
in another thread or process. It serves `POST /v2/enqueue` only (404 elsewhere) and:

- records every JSON body it receives in `events` (including the ones answered with an error;
  bodies that are not a JSON object are answered 400 and not recorded);
- answers queued errors first (`fail_next(429)`, `fail_next(500, times=2)`...), with PD-like
  bodies;
- validates like PagerDuty: 400 `{"status": "invalid event", "message": "Event object is
  invalid", "errors": [...]}` if `routing_key` is missing or not 32 characters, `event_action`
  is not trigger/acknowledge/resolve, a trigger lacks `payload.summary`/`source`/`severity` or
  has a severity other than critical/error/warning/info, or an acknowledge/resolve lacks
  `dedup_key`;
- otherwise answers 202 `{"status": "success", "message": "Event processed", "dedup_key": ...}`,
  generating a dedup_key when the event has none.

It does not keep alert state (a resolve of an unknown dedup_key succeeds, as it does on PD).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.server import FakeHTTPServer, ServedFake

ENQUEUE_PATH = "/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")
_INJECTED: dict[int, dict[str, Any]] = {
    400: {"status": "invalid event", "message": "Event object is invalid", "errors": ["injected"]},
    429: {"status": "throttle event", "message": "Requests for this service are arriving too fast"},
}


def validate(event: dict[str, Any]) -> list[str]:
    """PagerDuty's complaints about `event` (empty if it is valid)."""
    errors: list[str] = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is missing or invalid")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or blank")
        else:
            for name in ("summary", "source", "severity"):
                if not isinstance(payload.get(name), str) or not payload[name]:
                    errors.append(f"'payload.{name}' is missing or blank")
            severity = payload.get("severity")
            if isinstance(severity, str) and severity and severity not in SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be " + "/".join(SEVERITIES) + ")"
                )
    elif action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append("'dedup_key' is missing or blank")
    return errors


class _Server(FakeHTTPServer):
    fake: FakePagerDuty


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5.0  # a client that stalls mid-request cannot hold up stop()

    def do_POST(self) -> None:
        if self.path != ENQUEUE_PATH:
            self._answer(404, {"status": "not found", "message": "Not found"})
            return
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._answer(400, _invalid(["Event object is not valid JSON"]))
            return
        self._answer(*self.server.fake.handle(event))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


def _invalid(errors: list[str]) -> dict[str, Any]:
    return {"status": "invalid event", "message": "Event object is invalid", "errors": errors}


class FakePagerDuty(ServedFake):
    """`with FakePagerDuty() as pd:` posts go to `pd.url`; what arrived is in `pd.events`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: list[dict[str, Any]] = []
        self._errors: deque[int] = deque()
        port = self._serve(_Handler, _Server, "fake-pagerduty")
        self.url = f"http://127.0.0.1:{port}{ENQUEUE_PATH}"

    @property
    def events(self) -> list[dict[str, Any]]:
        """A copy of the bodies received so far, in arrival order."""
        with self._cond:
            return list(self._events)

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` events with `status` (after recording them)."""
        with self._cond:
            self._errors.extend([status] * times)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least `n` events arrived and return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._events) >= n, timeout):
                raise AssertionError(
                    f"expected {n} PagerDuty event(s) within {timeout}s, "
                    f"got {len(self._events)}: {self._events!r}"
                )
            return list(self._events)

    def handle(self, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Record `event` and decide the answer (status, JSON body)."""
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()
            injected = self._errors.popleft() if self._errors else None
        if injected is not None:
            body = _INJECTED.get(injected, {"status": "error", "message": "injected"})
            return injected, body
        errors = validate(event)
        if errors:
            return 400, _invalid(errors)
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
