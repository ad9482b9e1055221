"""One id style: every execution id is `ex_` and 20 hex digits, whoever started it."""

from __future__ import annotations

import re

from ddoc.alerts.intake import execution_id_for
from ddoc.platform import ids

STYLE = re.compile(r"ex_[0-9a-f]{20}")


def test_executions_started_by_alerts_and_by_hand_look_alike() -> None:
    by_alert = execution_id_for("default", "5f1c2a9e8b7d6c40", "inc_0123456789abcdef0123")
    assert STYLE.fullmatch(by_alert) and STYLE.fullmatch(ids.new_id("ex"))
    # Derived: a retried delivery of the same alert names the same workflow...
    assert by_alert == execution_id_for("default", "5f1c2a9e8b7d6c40", "inc_0123456789abcdef0123")
    # ...and another incident, key or tenant another one.
    assert by_alert != execution_id_for("default", "5f1c2a9e8b7d6c40", "inc_ffffffffffffffffffff")
    assert by_alert != execution_id_for("acme", "5f1c2a9e8b7d6c40", "inc_0123456789abcdef0123")
    assert by_alert != execution_id_for("default", "other", "inc_0123456789abcdef0123")
