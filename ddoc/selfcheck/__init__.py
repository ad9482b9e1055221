"""Self-checks: a tenant's runbooks probed every night where they would run, so a renamed tool,
a moved namespace or a tightened agent policy shows before the incident that needs the runbook.

- `config`: the tenant setting `self_check` (time, time zone, agent environment, whether
  read-only steps run) and its validation;
- `schedules`: the tenant's Temporal Schedule, created, updated or deleted as the setting
  changes, and a run started by hand;
- `probes`: what the agent is sent for each runbook (programs, what may run: from the
  classifier, never anything but a read-only command or a dry-run form);
- `store`: runs and per-runbook results, drift, and the views (a runbook's `self_check`, its
  quality flags, the health line, the weekly digest's text).

Imports ddoc.runbooks and ddoc.platform (and the contracts); ddoc.trust's health report reads it.
"""
