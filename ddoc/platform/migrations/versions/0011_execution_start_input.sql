-- The transactional outbox of execution starts (ddoc/execution/outbox.py): the exact workflow
-- input is stored with the execution, in the transaction that creates it, so a start that a
-- crash interrupted is finished by the relay from that row. Older rows have none.
ALTER TABLE executions ADD COLUMN start_input jsonb;
CREATE INDEX executions_unstarted ON executions (created_at) WHERE NOT workflow_started;
