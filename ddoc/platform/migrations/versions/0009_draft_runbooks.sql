-- Draft runbooks (docs/decisions/0012): drafted from a terminal session, a shell history, a
-- postmortem or an execution. A draft matches no alert and cannot be picked for an incident
-- until someone publishes it; its origin (what it was drafted from, the incident, the
-- execution) is kept after that.
ALTER TABLE runbooks ADD COLUMN draft boolean NOT NULL DEFAULT false;
ALTER TABLE runbooks ADD COLUMN origin jsonb;
