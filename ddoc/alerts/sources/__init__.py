"""Alert webhook bodies and their normalisation into one model.

Each source's body is validated by a pydantic model, then normalised into `NormalizedAlert`,
which matching and incidents work on.

The models are tolerant: a receiver that refuses an alert loses a page. They take every shape
the sources are documented or known to send — a per-alert status left to the group's, numbers
where strings are usual and the reverse, `null` where a value is usual, absent optional blocks,
unknown fields (ignored), times as ISO text or epoch seconds/milliseconds/nanoseconds — and
coerce them to one form. Each coercion is noted (see `recording_coercions`; the webhook route
counts them in `ddoc_webhook_coerced_total{source,field}`). A body is refused (a 422 naming the
field) only when it cannot be an alert at all: not a JSON object, no alerts in it, an alert
that is not an object, or NaN/Infinity (not JSON). A status that is neither firing nor resolved
is read as the group's, else firing: a page for nothing costs less than a lost one.

One module a source (alertmanager, grafana, pagerduty, opsgenie, generic), and what they share:
model.py (`NormalizedAlert`, the status type, the service and environment labels), coerced.py
(the record of coerced fields), fields.py (the tolerant field validators) and shape.py (what a
body must be to be read, the tolerant base model).
"""

from ddoc.alerts.sources.alertmanager import AlertmanagerWebhook, normalize_alertmanager
from ddoc.alerts.sources.coerced import recording_coercions
from ddoc.alerts.sources.generic import GenericAlert, normalize_generic
from ddoc.alerts.sources.grafana import GrafanaWebhook, normalize_grafana
from ddoc.alerts.sources.model import NormalizedAlert
from ddoc.alerts.sources.opsgenie import OpsgenieWebhook, normalize_opsgenie
from ddoc.alerts.sources.pagerduty import PagerDutyWebhook, normalize_pagerduty

__all__ = [
    "AlertmanagerWebhook",
    "GenericAlert",
    "GrafanaWebhook",
    "NormalizedAlert",
    "OpsgenieWebhook",
    "PagerDutyWebhook",
    "normalize_alertmanager",
    "normalize_generic",
    "normalize_grafana",
    "normalize_opsgenie",
    "normalize_pagerduty",
    "recording_coercions",
]
