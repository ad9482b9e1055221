"""Alembic's environment as `ddoc.platform.db.migrate` runs it: on migrate's connection, inside
its transaction and advisory lock, so it opens no connection and commits nothing itself."""

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    on_version_apply=context.config.attributes["on_version_apply"],
)
context.run_migrations()
