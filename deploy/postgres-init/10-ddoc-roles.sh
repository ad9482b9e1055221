#!/usr/bin/env bash
# Creates the roles dd0c/run's API and workers connect as. Run by the postgres image's entrypoint
# from /docker-entrypoint-initdb.d, once, when the data volume is first initialised (an existing
# volume is never touched again: see docs/DEPLOYMENT.md to add the roles by hand).
#
#   ddoc_app  NOLOGIN  the privileges: `ddoc migrate` grants it everything except UPDATE, DELETE
#                      and TRUNCATE on audit_events and runbook_versions (ddoc/platform/db.py)
#   ddoc_api  LOGIN    member of ddoc_app; DDOC_DATABASE_URL of the API and the workers
#
# The schema owner is POSTGRES_USER (ddoc); only `ddoc migrate` connects as it.
set -Eeo pipefail

if [ -z "${DDOC_API_DB_PASSWORD:-}" ]; then
    echo "10-ddoc-roles.sh: DDOC_API_DB_PASSWORD is not set; cannot create role ddoc_api" >&2
    exit 1
fi

# The password goes in as a psql variable (:'api_password' quotes it as a literal), never
# spliced into the SQL text.
psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB}" \
    --set api_password="${DDOC_API_DB_PASSWORD}" <<'SQL'
CREATE ROLE ddoc_app NOLOGIN;
CREATE ROLE ddoc_api LOGIN PASSWORD :'api_password' IN ROLE ddoc_app;
SQL
echo "10-ddoc-roles.sh: created roles ddoc_app (NOLOGIN) and ddoc_api (LOGIN, in ddoc_app)"
