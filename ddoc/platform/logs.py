"""Logging set-up: text for people, JSON lines for log pipelines (DDOC_LOG_FORMAT=json).

A JSON line carries time, level, logger and message, the exception if any, and the ids it is
about: `tenant_id`, `incident_id`, `execution_id` when the call passed them (`extra=`), and
inside an activity the execution (the workflow id) it runs for.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT_FIELDS = ("tenant_id", "incident_id", "execution_id", "step_id", "source")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if "execution_id" not in line:
            workflow_id = _activity_workflow_id()
            if workflow_id:
                line["execution_id"] = workflow_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _activity_workflow_id() -> str | None:
    try:
        from temporalio import activity

        return activity.info().workflow_id if activity.in_activity() else None
    except Exception:
        return None


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
