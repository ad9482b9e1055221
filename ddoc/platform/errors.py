"""What can go wrong in a service, by kind: the domain raises these, and each caller says it in
its own terms once (the API as an HTTP status with `{"detail": <message>}`, Slack as a reply,
the CLI as a `ddoc: …` line). The message is written for the person who asked."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain turns down; `str(error)` says why."""


class NotFound(DomainError, LookupError):
    """The tenant has no such thing (someone else's counts as none)."""


class Conflict(DomainError):
    """The thing exists, but its state forbids this now (finished, archived, already running)."""


class Forbidden(DomainError):
    """The caller's role or part in it does not allow this."""


class Invalid(DomainError, ValueError):
    """The request itself is malformed, whatever the state."""


class Unavailable(DomainError):
    """A dependency (Temporal) did not answer; the same request may succeed later."""

    def __init__(self, message: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
