"""Temporal activities. `commands` runs on agents (stdlib + temporalio only); `store` runs on the
control-plane worker and talks to Postgres. Import the one you need, never this package's
contents wholesale: the agent must not import the database stack."""
