"""Signature checks for alert sources that sign their deliveries, on the raw body.

PagerDuty v3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 of the body; several
signatures during secret rotation, any one matching is enough. Grafana: `X-Grafana-Alerting-
Signature: <hex>` over the body, or over `<timestamp>:<body>` when the contact point sends a
timestamp header (then the timestamp must be within five minutes: a replay is refused).
Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

TIMESTAMP_WINDOW_SECONDS = 300
GRAFANA_TIMESTAMP_HEADER = "x-grafana-alerting-timestamp"


class SignatureError(ValueError):
    """The delivery is not signed as the tenant's configuration requires; the message says how."""


def _digest(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify_pagerduty(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    header = headers.get("x-pagerduty-signature", "")
    if not header:
        raise SignatureError("missing X-PagerDuty-Signature header")
    offered = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    expected = [_digest(secret, body) for secret in secrets]
    if not any(hmac.compare_digest(o, e) for o in offered for e in expected):
        raise SignatureError("X-PagerDuty-Signature does not match the body")


def verify_grafana(
    body: bytes, headers: Mapping[str, str], secret: str, *, now: float | None = None
) -> None:
    signature = headers.get("x-grafana-alerting-signature", "")
    if not signature:
        raise SignatureError("missing X-Grafana-Alerting-Signature header")
    timestamp = headers.get(GRAFANA_TIMESTAMP_HEADER, "")
    payload = body
    if timestamp:
        try:
            sent = float(timestamp)
        except ValueError:
            raise SignatureError("X-Grafana-Alerting-Timestamp is not a Unix time") from None
        if abs((now if now is not None else time.time()) - sent) > TIMESTAMP_WINDOW_SECONDS:
            raise SignatureError(
                f"signature timestamp is more than {TIMESTAMP_WINDOW_SECONDS}s away: "
                "stale or replayed delivery"
            )
        payload = timestamp.encode() + b":" + body
    if not hmac.compare_digest(signature.strip().lower(), _digest(secret, payload)):
        raise SignatureError("X-Grafana-Alerting-Signature does not match the body")
