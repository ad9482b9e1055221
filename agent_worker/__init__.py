"""The agent worker: runs inside the customer's network, connects outbound to Temporal only, and
executes runbook commands from its tenant's task queue. Stdlib + temporalio + PyYAML only."""
