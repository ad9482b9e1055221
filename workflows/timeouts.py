"""Timeouts and retry policies of the workflows' activities, named in one place."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Writes to our own database: retried without limit (a database blip must not fail an incident's
# execution), with a ceiling on the backoff so the trail catches up soon after recovery.
RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)

# Commands on agents. Read-only (green) steps may be retried when a worker is lost; nothing
# else is ever retried automatically (at-most-once for state changes).
COMMAND_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
COMMAND_START_TO_CLOSE_MARGIN = timedelta(seconds=30)
GREEN_COMMAND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=["PolicyDenied"],
)
STATE_CHANGE_COMMAND_RETRY = RetryPolicy(maximum_attempts=1)

# Pages to the next escalation level: a few quick retries; a page that still fails is recorded
# and shown, and the wait goes on (the next deadline escalates again).
ESCALATION_TIMEOUT = timedelta(seconds=30)
ESCALATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=["PagingRejected"],
)

# Slack: retried without limit (an outage only delays the message), backing off to a minute;
# rate limits wait what Slack says (the activity sets the next retry delay). Set-up errors
# (channel not found, revoked token) are not retried.
SLACK_SYNC_TIMEOUT = timedelta(seconds=60)
SLACK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
    non_retryable_error_types=["SlackConfig"],
)

# Self-checks. The control plane's activities are database work, retried like the trail's. The
# probe is one try: what it runs is read-only, but a lost agent is a finding, not a reason to
# run the runbook's commands again; it has its commands' time plus a margin, and heartbeats.
SELF_CHECK_STEP_TIMEOUT = timedelta(seconds=60)
SELF_CHECK_PROBE_MARGIN = timedelta(seconds=60)
SELF_CHECK_PROBE_HEARTBEAT = timedelta(seconds=30)
SELF_CHECK_PROBE_RETRY = RetryPolicy(maximum_attempts=1)
SELF_CHECK_DIGEST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
)
