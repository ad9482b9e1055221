"""A fake Anthropic Messages API behind an ``httpx2.MockTransport``.

Tests drive the real ``anthropic`` SDK (which uses ``httpx2``) through it: the fake records each
request and answers with bodies shaped like the real API's (tool use, text, errors), or raises a
transport error such as ``httpx2.ReadTimeout``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import httpx2

BASE_URL = "http://anthropic.test"
_ids = itertools.count(1)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    text: str | None = None
    raise_error: Exception | None = None


class FakeAnthropicAPI:
    """Answers ``POST /v1/messages`` from a queue of replies; the last reply repeats."""

    def __init__(self, model_echo: str = "claude-sonnet-4-5") -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: list[_Reply] = []
        self._model_echo = model_echo
        self.transport = httpx2.MockTransport(self._handle)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=self.transport)

    # --- scripting the replies ---------------------------------------------------------
    def tool_use(
        self, tool_input: Any, *, name: str = "record_runbook", stop_reason: str = "tool_use"
    ) -> FakeAnthropicAPI:
        block = {"type": "tool_use", "id": f"toolu_{next(_ids):024d}", "name": name}
        block["input"] = tool_input
        self._replies.append(_Reply(body=self._message([block], stop_reason)))
        return self

    def text(self, text: str) -> FakeAnthropicAPI:
        block = {"type": "text", "text": text}
        self._replies.append(_Reply(body=self._message([block], "end_turn")))
        return self

    def error(self, status: int, error_type: str, message: str) -> FakeAnthropicAPI:
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        # The real API says when to retry; a millisecond keeps the SDK's one retry fast.
        headers = {"retry-after-ms": "1"} if status in (429, 500, 529) else {}
        self._replies.append(_Reply(status=status, body=body, headers=headers))
        return self

    def raw(self, status: int, text: str, content_type: str = "text/html") -> FakeAnthropicAPI:
        """A body that is not the API's (a proxy's error page, say)."""
        self._replies.append(
            _Reply(status=status, text=text, headers={"content-type": content_type})
        )
        return self

    def raise_(self, error: Exception) -> FakeAnthropicAPI:
        self._replies.append(_Reply(raise_error=error))
        return self

    # --- inspecting the requests -------------------------------------------------------
    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def sent_api_key(self, index: int = -1) -> str | None:
        """The key a request carried: ``x-api-key``, or the ``Bearer`` token newer SDKs send."""
        headers = self.requests[index].headers
        bearer = headers.get("authorization", "")
        return headers.get("x-api-key") or bearer.removeprefix("Bearer ") or None

    def user_text(self, index: int = -1) -> str:
        content = self.requests[index].body["messages"][0]["content"]
        return content if isinstance(content, str) else content[0]["text"]

    # --- the transport -----------------------------------------------------------------
    def _message(self, content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
        return {
            "id": f"msg_{next(_ids):024d}",
            "type": "message",
            "role": "assistant",
            "model": self._model_echo,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 812, "output_tokens": 344},
        }

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=json.loads(request.content or b"{}"),
            )
        )
        if request.method != "POST" or request.url.path != "/v1/messages":
            body = {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}}
            return httpx2.Response(404, json=body)
        if self.sent_api_key() is None:
            body = {"type": "error", "error": {"type": "authentication_error", "message": "no key"}}
            return httpx2.Response(401, json=body)
        if not self._replies:
            raise AssertionError("FakeAnthropicAPI has no reply scripted")
        reply = self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]
        if reply.raise_error is not None:
            raise reply.raise_error
        headers = {"request-id": f"req_{next(_ids):024d}", **(reply.headers or {})}
        if reply.text is not None:
            return httpx2.Response(reply.status, text=reply.text, headers=headers)
        return httpx2.Response(reply.status, json=reply.body, headers=headers)
