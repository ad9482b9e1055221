-- Breakpoints on a runbook's steps (docs/API.md, issue 21): step id -> who set it. Every new
-- execution of the runbook (by hand or from an alert, any mode) pauses before those steps until
-- a human says continue. Steps missing from a later version are ignored at the start.
ALTER TABLE runbooks ADD COLUMN breakpoints jsonb NOT NULL DEFAULT '{}'::jsonb;

-- The parallel group a step of an execution walks in (its runbook's `parallel`), so the trail,
-- Slack and the console show the group's steps side by side.
ALTER TABLE execution_steps ADD COLUMN parallel text;
