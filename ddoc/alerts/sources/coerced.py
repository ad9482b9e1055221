"""The record of what was coerced: while one body is validated and normalised, the dotted names
of the fields that were read tolerantly (`recording_coercions`); the webhook route counts them
in `ddoc_webhook_coerced_total{source,field}` and `/match` lists them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The coercions of the body being validated, per context (each request's validation runs in its
# own context: a task, or a thread's copy), so concurrent deliveries never mix their notes.
_COERCED: ContextVar[set[str] | None] = ContextVar("ddoc_alert_coercions", default=None)


@contextmanager
def recording_coercions() -> Iterator[set[str]]:
    """Collect, while validating and normalising one body, the fields that were coerced: dotted
    names of the source's fields (`alerts.status`, `alert.priority`, …), each once."""
    found: set[str] = set()
    token = _COERCED.set(found)
    try:
        yield found
    finally:
        _COERCED.reset(token)


def _coerced(where: str) -> None:
    found = _COERCED.get()
    if found is not None:
        found.add(where)
