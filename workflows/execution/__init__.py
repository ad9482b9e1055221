"""The runbook execution workflow, split by concern (see `workflow.py`)."""

from workflows.execution.workflow import RunbookExecutionWorkflow

__all__ = ["RunbookExecutionWorkflow"]
